"""Readers, writers and interop: networkx, PyTorch Geometric, GraphML, and a size summary.

Conversions keep everything an :class:`~ncg.graph.NCG` holds (edges in column order, weights,
biases, outputs in decoder order, topological order, stable neuron ids), so a round trip gives
back the same graph. GraphML files hold a whole :class:`~ncg.model.FreeNet`: the graph as nodes
and edges, the dense encoder / decoder weights in a side ``.npz`` file (or inline), and the model
config, so ``read_graphml(path)`` rebuilds a model with identical outputs.

Examples
--------
>>> from ncg import NCG
>>> from ncg.io import from_networkx, summary, to_networkx
>>> g = NCG.complete(4, num_outputs=1, seed=0)
>>> G = to_networkx(g)
>>> G.nodes[3]["role"], round(G.edges[0, 1]["weight"], 4)
('output', -0.0075)
>>> from_networkx(G).edge_index.tolist() == g.edge_index.tolist()
True
>>> summary(g)["density"]
1.0
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Hashable, Iterable
from xml.sax.saxutils import escape

import networkx as nx
import numpy as np
import torch
from torch import Tensor

from ncg.errors import CycleError, GraphMLError, NCGError
from ncg.graph import NCG
from ncg.model import FreeNet
from ncg.schedule import find_cycle, topological_generations

__all__ = [
    "to_networkx",
    "from_networkx",
    "to_pyg",
    "from_pyg",
    "summary",
    "write_graphml",
    "read_graphml",
    "GRAPHML_FORMAT",
    "GRAPHML_VERSION",
]

GRAPHML_FORMAT = "ncg.freenet.graphml"
GRAPHML_VERSION = 1
ROLE_NAMES = {NCG.HIDDEN: "hidden", NCG.OUTPUT: "output"}


# ---------------------------------------------------------------------- networkx
def to_networkx(graph: NCG) -> nx.DiGraph:
    """The NCG as a ``networkx.DiGraph`` on nodes ``0 .. N-1``.

    Parameters
    ----------
    graph : NCG

    Returns
    -------
    networkx.DiGraph
        Nodes are added in index order, edges in ``edge_index`` column order. Node attributes:
        ``role`` (``"hidden"`` or ``"output"``), ``output_index`` (place among the outputs in
        decoder order, ``-1`` for hidden neurons), ``generation``, ``topo_index`` (place in
        ``graph.order``), ``bias`` and ``neuron_id`` (stable id). Edge attributes: ``weight`` and
        ``edge_id`` (the edge's column in ``edge_index``; a ``DiGraph`` lists edges grouped by
        source, so this keeps the column order). Values are Python ``int`` / ``float`` / ``str``.

    See Also
    --------
    from_networkx

    Examples
    --------
    >>> from ncg import NCG
    >>> G = to_networkx(NCG.complete(3))
    >>> G
    <networkx.classes.digraph.DiGraph object at ...>
    >>> G.nodes[2]
    {'role': 'output', 'output_index': 0, 'generation': 2, 'topo_index': 2, 'bias': 0.0, 'neuron_id': 2}
    """
    attrs = _node_attributes(graph)
    G = nx.DiGraph()
    G.add_nodes_from(enumerate(attrs))
    src, dst = graph.edge_index.tolist()
    weight = graph.weight.double().tolist()
    G.add_edges_from((s, t, {"weight": w, "edge_id": e}) for e, (s, t, w) in enumerate(zip(src, dst, weight)))
    return G


def _node_attributes(graph: NCG) -> list[dict[str, Any]]:
    n = graph.num_neurons
    output_index = [-1] * n
    for k, v in enumerate(graph.outputs.tolist()):
        output_index[v] = k
    generation = topological_generations(graph.edge_index, n).tolist()
    position = graph.position.tolist()
    bias = graph.bias.double().tolist()
    ids = graph.neuron_ids.tolist()
    return [
        {
            "role": "output" if output_index[v] >= 0 else "hidden",
            "output_index": output_index[v],
            "generation": generation[v],
            "topo_index": position[v],
            "bias": bias[v],
            "neuron_id": ids[v],
        }
        for v in range(n)
    ]


def from_networkx(
    G: nx.DiGraph, outputs: Iterable[Hashable] | None = None, return_mapping: bool = False
) -> NCG | tuple[NCG, dict[Hashable, int]]:
    """Build an NCG from a directed acyclic ``networkx`` graph with any hashable node labels.

    Parameters
    ----------
    G : networkx.DiGraph
        A DAG. Optional attributes (as written by :func:`to_networkx`): edge ``weight`` and
        ``edge_id``; node ``bias``, ``role``, ``output_index``, ``topo_index``, ``neuron_id``.
    outputs : iterable of node labels, optional
        The output neurons in decoder order. If omitted: the nodes with ``role == "output"``
        (ordered by ``output_index`` when every one has it, else by index); if there are none,
        the sinks (nodes without successors) in index order.
    return_mapping : bool, default False
        Also return the ``{label: index}`` mapping.

    Returns
    -------
    NCG or (NCG, dict)
        Labels that are exactly the integers ``0 .. N-1`` keep their value as the neuron index
        (so ``from_networkx(to_networkx(g))`` reproduces ``g``); any other labels are numbered
        ``0 .. N-1`` in a topological order (ties broken by insertion order). Edge weights are
        read when every edge has one and drawn like :meth:`NCG.random_dag`'s when none has;
        missing biases are 0. ``topo_index`` gives the order when every node has one and they
        form a topological permutation of ``0 .. N-1``; ``neuron_id`` gives the stable ids when
        every node has a distinct one; ``edge_id`` orders the ``edge_index`` columns when every
        edge has a distinct one (else ``G``'s edge order is kept). Unreachable hidden neurons
        warn, as in :class:`NCG`.

    Raises
    ------
    CycleError
        If ``G`` has a directed cycle; the message names its nodes by their labels.
    NCGError
        If ``G`` is undirected, a multigraph or empty, only some edges have a weight, or an
        ``outputs`` label is not a node.

    See Also
    --------
    to_networkx

    Examples
    --------
    >>> import networkx as nx
    >>> G = nx.DiGraph([("x", "h"), ("h", "y"), ("x", "y")])
    >>> g, mapping = from_networkx(G, return_mapping=True)
    >>> mapping, g.outputs.tolist()
    ({'x': 0, 'h': 1, 'y': 2}, [2])
    >>> from_networkx(nx.DiGraph([("a", "b"), ("b", "a")]))
    Traceback (most recent call last):
    ...
    ncg.errors.CycleError: G contains a directed cycle through nodes ['a', 'b']; an NCG must be acyclic
    """
    if not G.is_directed() or G.is_multigraph():
        raise NCGError(f"from_networkx needs a networkx.DiGraph, got {type(G).__name__}")
    n = G.number_of_nodes()
    if n == 0:
        raise NCGError("from_networkx needs at least one node, got an empty graph")
    try:
        cycle = nx.find_cycle(G)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle is not None:
        labels = [u for u, _ in cycle]
        raise CycleError(f"G contains a directed cycle through nodes {labels}; an NCG must be acyclic")
    mapping = _index_of_labels(G)
    edges = list(G.edges(data=True))
    edge_ids = [d.get("edge_id") for _, _, d in edges]
    if all(isinstance(e, int) for e in edge_ids) and len(set(edge_ids)) == len(edges):
        edges = [edge for _, edge in sorted(zip(edge_ids, edges), key=lambda item: item[0])]
    src = [mapping[u] for u, _, _ in edges]
    dst = [mapping[v] for _, v, _ in edges]
    edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, len(edges))
    weight = _all_or_none([(d.get("weight"), (u, v)) for u, v, d in edges], "edge", "weight")
    nodes = sorted(G.nodes(data=True), key=lambda item: mapping[item[0]])
    bias = torch.tensor([float(d.get("bias", 0.0)) for _, d in nodes], dtype=torch.float64)
    graph = NCG(
        edge_index,
        n,
        _outputs_of(G, nodes, mapping, outputs),
        weight=None if weight is None else torch.tensor(weight, dtype=torch.float64),
        bias=bias,
        order=_order_from_attribute(nodes, edge_index),
        neuron_ids=_ids_from_attribute(nodes),
    )
    return (graph, mapping) if return_mapping else graph


def _index_of_labels(G: nx.DiGraph) -> dict[Hashable, int]:
    labels = list(G.nodes)
    n = len(labels)
    if all(type(v) is int for v in labels) and set(labels) == set(range(n)):
        return {v: v for v in labels}
    rank = {v: i for i, v in enumerate(labels)}
    return {v: i for i, v in enumerate(nx.lexicographical_topological_sort(G, key=rank.__getitem__))}


def _all_or_none(values: list[tuple[Any, Any]], kind: str, name: str) -> list[float] | None:
    present = [value is not None for value, _ in values]
    if not any(present):
        return None
    if not all(present):
        where = values[present.index(False)][1]
        raise NCGError(f"{kind} {where} has no {name!r} attribute; give every {kind} one or none")
    return [float(value) for value, _ in values]


def _outputs_of(
    G: nx.DiGraph, nodes: list, mapping: dict[Hashable, int], outputs: Iterable[Hashable] | None
) -> Tensor:
    if outputs is not None:
        labels = list(outputs)
        missing = [label for label in labels if label not in mapping]
        if missing:
            raise NCGError(f"outputs names nodes that are not in G: {missing}")
        return torch.tensor([mapping[label] for label in labels], dtype=torch.long)
    marked = [(mapping[v], d) for v, d in nodes if d.get("role") == "output"]
    if marked:
        if all("output_index" in d for _, d in marked):
            marked.sort(key=lambda item: item[1]["output_index"])
        return torch.tensor([v for v, _ in marked], dtype=torch.long)
    return torch.tensor(sorted(mapping[v] for v in G.nodes if G.out_degree(v) == 0), dtype=torch.long)


def _order_from_attribute(nodes: list, edge_index: Tensor) -> Tensor | None:
    n = len(nodes)
    if not all(isinstance(d.get("topo_index"), int) for _, d in nodes):
        return None
    position = torch.tensor([d["topo_index"] for _, d in nodes], dtype=torch.long)
    if not torch.equal(torch.sort(position).values, torch.arange(n)):
        return None
    if edge_index.numel() and (position[edge_index[0]] >= position[edge_index[1]]).any():
        return None
    return torch.argsort(position)


def _ids_from_attribute(nodes: list) -> Tensor | None:
    if not all(isinstance(d.get("neuron_id"), int) for _, d in nodes):
        return None
    ids = torch.tensor([d["neuron_id"] for _, d in nodes], dtype=torch.long)
    return ids if torch.unique(ids).numel() == ids.numel() else None


# ---------------------------------------------------------------------- PyTorch Geometric
def to_pyg(graph: NCG):
    """The NCG as a ``torch_geometric.data.Data``.

    Returns
    -------
    torch_geometric.data.Data
        ``edge_index [2, E]``, ``edge_weight [E]``, ``bias [N]``, ``is_output`` (bool ``[N]``),
        ``output_index [K]`` (the outputs in decoder order; PyG offsets it when batching, like
        ``edge_index``), ``order [N]``, ``neuron_ids [N]`` and ``num_nodes``.

    See Also
    --------
    from_pyg

    Examples
    --------
    >>> from ncg import NCG
    >>> data = to_pyg(NCG.complete(4, num_outputs=2))
    >>> data
    Data(edge_index=[2, 6], edge_weight=[6], bias=[4], is_output=[4], output_index=[2], order=[4],
         neuron_ids=[4], num_nodes=4)
    """
    from torch_geometric.data import Data

    return Data(
        edge_index=graph.edge_index.clone(),
        edge_weight=graph.weight.clone(),
        bias=graph.bias.clone(),
        is_output=graph.roles == NCG.OUTPUT,
        output_index=graph.outputs.clone(),
        order=graph.order.clone(),
        neuron_ids=graph.neuron_ids.clone(),
        num_nodes=graph.num_neurons,
    )


def from_pyg(data) -> NCG:
    """Build an NCG from a ``torch_geometric.data.Data`` (the inverse of :func:`to_pyg`).

    Only ``edge_index`` is required. Weights come from ``edge_weight`` (else a 1-D or ``[E, 1]``
    ``edge_attr``, else fan-in scaled random); outputs from ``output_index``, else the
    ``is_output`` mask in index order, else the sinks; ``bias``, ``order`` and ``neuron_ids``
    are used when present.

    Raises
    ------
    NCGError
        From :class:`NCG` validation (cycles, duplicate edges, bad shapes), or when the graph has
        no nodes.

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> g = from_pyg(Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3))
    >>> g, g.outputs.tolist()
    (NCG(neurons=3, edges=2, outputs=1), [2])
    """
    n = data.num_nodes
    if not n:
        raise NCGError("from_pyg needs a graph with at least one node (data.num_nodes is 0 or None)")
    edge_index = data.edge_index.long().cpu()
    weight = data.get("edge_weight")
    if weight is None and data.get("edge_attr") is not None and data.edge_attr.numel() == edge_index.shape[1]:
        weight = data.edge_attr.reshape(-1)
    outputs = data.get("output_index")
    if outputs is None and data.get("is_output") is not None:
        outputs = torch.nonzero(data.is_output.bool()).flatten()
    if outputs is None:
        has_successor = torch.zeros(n, dtype=torch.bool)
        has_successor[edge_index[0]] = True
        outputs = torch.nonzero(~has_successor).flatten()
    return NCG(
        edge_index,
        int(n),
        outputs.long().cpu(),
        weight=None if weight is None else weight.detach().cpu(),
        bias=None if data.get("bias") is None else data.bias.detach().cpu(),
        order=None if data.get("order") is None else data.order.long().cpu(),
        neuron_ids=None if data.get("neuron_ids") is None else data.neuron_ids.long().cpu(),
    )


# ---------------------------------------------------------------------- summary
def summary(graph_or_model: NCG | FreeNet) -> dict[str, int | float]:
    """Size and shape numbers of an NCG or a FreeNet.

    Returns
    -------
    dict
        ``neurons``, ``edges``, ``outputs``; ``complete_edges`` = ``N (N - 1) / 2`` (the complete
        DAG's edge count); ``density`` = ``edges / complete_edges`` (1.0 for a single neuron,
        which is its own complete DAG) and ``sparsity`` = ``1 - density``; ``depth`` (edges on
        the longest path) and ``generations`` (``depth + 1``); ``graph_parameters`` = edges +
        biases; ``parameters``: the same for an NCG, every parameter of the model (encoder,
        decoder included) for a FreeNet.

    Examples
    --------
    >>> from ncg import NCG, FreeNet
    >>> summary(NCG.complete(5, num_outputs=2))
    {'neurons': 5, 'edges': 10, 'outputs': 2, 'complete_edges': 10, 'density': 1.0, 'sparsity': 0.0,
     'depth': 4, 'generations': 5, 'graph_parameters': 15, 'parameters': 15}
    >>> summary(FreeNet(NCG.complete(5, num_outputs=2), in_features=3))["parameters"]
    30
    """
    if isinstance(graph_or_model, FreeNet):
        graph = graph_or_model.graph
        parameters = sum(p.numel() for p in graph_or_model.parameters())
    elif isinstance(graph_or_model, NCG):
        graph = graph_or_model
        parameters = graph.num_edges + graph.num_neurons
    else:
        raise NCGError(f"summary expects an NCG or a FreeNet, got {type(graph_or_model).__name__}")
    n, e = graph.num_neurons, graph.num_edges
    complete = n * (n - 1) // 2
    density = e / complete if complete else 1.0
    generations = int(topological_generations(graph.edge_index, n).max()) + 1
    return {
        "neurons": n,
        "edges": e,
        "outputs": graph.num_outputs,
        "complete_edges": complete,
        "density": density,
        "sparsity": 1.0 - density,
        "depth": generations - 1,
        "generations": generations,
        "graph_parameters": e + n,
        "parameters": int(parameters),
    }


# ---------------------------------------------------------------------- GraphML
_GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
_STANDARD_TYPES = {"boolean", "int", "long", "float", "double", "string"}
_REQUIRED_GRAPH_ATTRS = (
    "format", "format_version", "num_neurons", "num_edges", "in_features", "out_features",
    "num_outputs", "activation", "output_activation", "encoder", "encoder_shape", "decoder",
    "decoder_shape", "dtype", "dense_storage", "config",
)
_REQUIRED_NODE_ATTRS = ("role", "output_index", "topo_index", "neuron_id", "bias")
_DTYPES = {"float32": (torch.float32, "<f4"), "float64": (torch.float64, "<f8")}

# (scope, name, GraphML type); the key id is "<scope>_<name>".
_KEYS = [
    ("graph", "format", "string"),
    ("graph", "format_version", "int"),
    ("graph", "num_neurons", "int"),
    ("graph", "num_edges", "long"),
    ("graph", "in_features", "int"),
    ("graph", "out_features", "int"),
    ("graph", "num_outputs", "int"),
    ("graph", "activation", "string"),
    ("graph", "output_activation", "string"),
    ("graph", "encoder", "string"),
    ("graph", "encoder_shape", "string"),
    ("graph", "decoder", "string"),
    ("graph", "decoder_shape", "string"),
    ("graph", "dtype", "string"),
    ("graph", "dense_storage", "string"),
    ("graph", "dense_file", "string"),
    ("graph", "encoder_weight", "string"),
    ("graph", "decoder_weight", "string"),
    ("graph", "decoder_bias", "string"),
    ("graph", "config", "string"),
    ("node", "role", "string"),
    ("node", "output_index", "int"),
    ("node", "generation", "int"),
    ("node", "topo_index", "int"),
    ("node", "neuron_id", "long"),
    ("node", "bias", "double"),
    ("node", "activation", "string"),
    ("node", "firing_rate", "double"),
    ("edge", "weight", "double"),
]


def _format_value(value: Any, kind: str) -> str:
    return repr(float(value)) if kind == "double" else escape(str(value))


def _dense_arrays(model: FreeNet) -> dict[str, np.ndarray]:
    arrays = {"encoder_weight": model.encoder.weight.detach().cpu().numpy()}
    if isinstance(model.decoder, torch.nn.Linear):
        arrays["decoder_weight"] = model.decoder.weight.detach().cpu().numpy()
        arrays["decoder_bias"] = model.decoder.bias.detach().cpu().numpy()
    return arrays


def _write_atomically(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_graphml(
    model: FreeNet,
    path: str | os.PathLike,
    inline_dense: bool = False,
    firing_rate: np.ndarray | Tensor | None = None,
    activations: Tensor | None = None,
) -> list[Path]:
    """Write a FreeNet as standard GraphML (plus a side file for the dense weights).

    Parameters
    ----------
    model : FreeNet
    path : str or PathLike
        The ``.graphml`` file.
    inline_dense : bool, default False
        Store the encoder (and a linear decoder's) weights inside the GraphML file as graph
        attributes (base64 of little-endian bytes in the model's dtype). By default they go to a
        side file ``<path stem>.weights.npz`` beside ``path``, which the GraphML file names by
        its relative path in the ``dense_file`` graph attribute.
    firing_rate : array ``[N]``, optional
        Per-neuron firing rate written as the node attribute ``firing_rate``
        (e.g. :attr:`Coactivation.firing_rate <ncg.evolve.coactivation.Coactivation.firing_rate>`).
    activations : Tensor ``[B, N]``, optional
        Neuron activations (e.g. from :meth:`FreeNet.neuron_activations`); the firing rate is the
        fraction of the ``B`` samples on which each neuron is ``> 0``. Give at most one of
        ``firing_rate`` and ``activations``; with neither, nodes carry no ``firing_rate``
        attribute (its key is not declared).

    Returns
    -------
    list of Path
        The files written (the GraphML file, then the side file if any).

    Notes
    -----
    Only the GraphML standard types are used (``string``, ``int``, ``long``, ``double``).
    Nodes are written in neuron-index order with ids ``n0 .. n{N-1}`` and edges in ``edge_index``
    column order. Node attributes: ``role``, ``output_index`` (``-1`` for hidden neurons),
    ``generation``, ``topo_index``, ``neuron_id``, ``bias``, ``activation`` and optionally
    ``firing_rate``; edge attribute ``weight``. Doubles are written with Python's shortest
    round-trip ``repr``, so float32 and float64 values come back exactly. Graph attributes name
    the format and version, sizes, activations, encoder / decoder kinds and shapes, the dtype,
    the dense storage, and ``config`` (the JSON of :meth:`FreeNet.config`). Both files are
    written atomically.

    See Also
    --------
    read_graphml

    Examples
    --------
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from ncg import NCG, FreeNet
    >>> net = FreeNet(NCG.complete(5, num_outputs=2, seed=0), in_features=3, seed=0)
    >>> path = Path(tempfile.mkdtemp()) / "net.graphml"
    >>> [p.name for p in write_graphml(net, path)]
    ['net.graphml', 'net.weights.npz']
    >>> x = torch.randn(4, 3)
    >>> torch.equal(read_graphml(path)(x), net(x))
    True
    """
    if not isinstance(model, FreeNet):
        raise GraphMLError(f"write_graphml expects a FreeNet, got {type(model).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = model.graph
    n = graph.num_neurons
    rate = _firing_rate_argument(firing_rate, activations, n)
    dtype = str(model.weight.dtype).removeprefix("torch.")
    if dtype not in _DTYPES:
        raise GraphMLError(f"write_graphml supports float32 and float64 models, got {dtype}")
    arrays = _dense_arrays(model)
    side_file = path.with_name(f"{path.stem}.weights.npz")
    decoder_shape = list(arrays["decoder_weight"].shape) if "decoder_weight" in arrays else []
    graph_data: dict[str, Any] = {
        "format": GRAPHML_FORMAT,
        "format_version": GRAPHML_VERSION,
        "num_neurons": n,
        "num_edges": graph.num_edges,
        "in_features": model.in_features,
        "out_features": model.out_features,
        "num_outputs": graph.num_outputs,
        "activation": model.activation,
        "output_activation": model.output_activation,
        "encoder": model.encoder_kind,
        "encoder_shape": json.dumps(list(arrays["encoder_weight"].shape)),
        "decoder": model.decoder_kind,
        "decoder_shape": json.dumps(decoder_shape),
        "dtype": dtype,
        "dense_storage": "inline" if inline_dense else "file",
        "config": json.dumps(model.config(), sort_keys=True),
    }
    little_endian = _DTYPES[dtype][1]
    if inline_dense:
        for name, array in arrays.items():
            graph_data[name] = base64.b64encode(array.astype(little_endian).tobytes()).decode("ascii")
    else:
        graph_data["dense_file"] = side_file.name
    # Parameters are read in the model's own dtype so doubles keep every bit.
    weights = model.weight.detach().cpu().double().tolist()
    biases = model.bias.detach().cpu().double().tolist()
    nodes = _node_attributes(graph)
    for v, attrs in enumerate(nodes):
        attrs["bias"] = biases[v]
        attrs["activation"] = model.output_activation if attrs["role"] == "output" else model.activation
        if rate is not None:
            attrs["firing_rate"] = rate[v]
    declared = {("graph", name) for name in graph_data} | {("node", name) for name in nodes[0]}
    keys = [(scope, name, kind) for scope, name, kind in _KEYS if (scope, name) in declared or scope == "edge"]
    kinds = {(scope, name): kind for scope, name, kind in keys}

    lines = [
        "<?xml version='1.0' encoding='utf-8'?>",
        f'<graphml xmlns="{_GRAPHML_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{_GRAPHML_NS} {_GRAPHML_NS}/1.0/graphml.xsd">',
    ]
    lines += [
        f'  <key id="{scope}_{name}" for="{scope}" attr.name="{name}" attr.type="{kind}"/>'
        for scope, name, kind in keys
    ]
    lines.append('  <graph id="G" edgedefault="directed">')
    lines += [
        f'    <data key="graph_{name}">{_format_value(value, kinds["graph", name])}</data>'
        for name, value in graph_data.items()
    ]
    for v, attrs in enumerate(nodes):
        data = "".join(
            f'<data key="node_{name}">{_format_value(value, kinds["node", name])}</data>'
            for name, value in attrs.items()
        )
        lines.append(f'    <node id="n{v}">{data}</node>')
    src, dst = graph.edge_index.tolist()
    lines += [
        f'    <edge source="n{s}" target="n{t}"><data key="edge_weight">{w!r}</data></edge>'
        for s, t, w in zip(src, dst, weights)
    ]
    lines += ["  </graph>", "</graphml>", ""]
    text = "\n".join(lines).encode("utf-8")

    if not inline_dense:
        _write_atomically(side_file, lambda handle: np.savez(handle, **arrays))
    _write_atomically(path, lambda handle: handle.write(text))
    return [path] if inline_dense else [path, side_file]


def _firing_rate_argument(
    firing_rate: np.ndarray | Tensor | None, activations: Tensor | None, n: int
) -> list[float] | None:
    if firing_rate is not None and activations is not None:
        raise GraphMLError("give at most one of firing_rate and activations")
    if activations is not None:
        activations = torch.as_tensor(activations)
        if activations.dim() != 2 or activations.shape[1] != n:
            raise GraphMLError(f"activations must have shape [B, {n}], got {list(activations.shape)}")
        firing_rate = (activations > 0).double().mean(0)
    if firing_rate is None:
        return None
    rate = np.asarray(torch.as_tensor(firing_rate).detach().cpu(), dtype=np.float64)
    if rate.shape != (n,):
        raise GraphMLError(f"firing_rate must have shape [{n}], got {list(rate.shape)}")
    return rate.tolist()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse_typed(text: str | None, kind: str, where: str) -> Any:
    text = text or ""
    if kind != "string":
        text = text.strip()
    try:
        if kind in ("int", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "boolean":
            return {"true": True, "false": False, "1": True, "0": False}[text.lower()]
    except (ValueError, KeyError):
        raise GraphMLError(f"{where} is {text!r}, which is not a valid {kind}") from None
    return text


def _read_data(element: ET.Element, keys: dict[str, tuple[str, str, str]], scope: str, where: str,
               defaults: dict[str, Any]) -> dict:
    data = dict(defaults)
    for child in element:
        if _local(child.tag) != "data":
            continue
        key = child.get("key")
        if key not in keys:
            raise GraphMLError(f"{where} has data for key {key!r}, which no <key> element declares")
        key_scope, name, kind = keys[key]
        if key_scope not in (scope, "all"):
            raise GraphMLError(f"{where} uses key {key!r} declared for {key_scope!r}, not {scope!r}")
        data[name] = _parse_typed(child.text, kind, f"{where}: attribute {name!r}")
    return data


def read_graphml(path: str | os.PathLike) -> FreeNet:
    """Read a FreeNet written by :func:`write_graphml`.

    Parameters
    ----------
    path : str or PathLike
        The ``.graphml`` file; a side file named by its ``dense_file`` attribute is read from the
        same folder.

    Returns
    -------
    FreeNet
        The model, on the CPU, in the dtype it was written in; its outputs equal the written
        model's exactly. The ``i``-th ``<node>`` element is neuron ``i`` and the ``e``-th ``<edge>``
        is column ``e`` of ``edge_index``; ``<default>`` values of ``<key>`` elements apply. The
        graph is restored as written (unreachable neurons do not warn).

    Raises
    ------
    GraphMLError
        The file is missing, not XML, not GraphML, of another format or version; a required
        graph attribute is missing (the message names them); the side file is missing (the
        message names its path); an attribute has the wrong type or an edge names an unknown
        node; the graph has a cycle (the message names its node ids); sizes or shapes disagree.

    See Also
    --------
    write_graphml

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "bad.graphml"
    >>> _ = path.write_text("<html/>")
    >>> read_graphml(path)
    Traceback (most recent call last):
    ...
    ncg.errors.GraphMLError: .../bad.graphml is not GraphML: its root element is <html>, expected <graphml>
    """
    path = Path(path)
    if not path.is_file():
        raise GraphMLError(f"GraphML file {path} does not exist")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise GraphMLError(f"{path} is not an XML file ({exc})") from exc
    if _local(root.tag) != "graphml":
        raise GraphMLError(f"{path} is not GraphML: its root element is <{_local(root.tag)}>, expected <graphml>")
    keys: dict[str, tuple[str, str, str]] = {}
    defaults: dict[str, dict[str, Any]] = {"graph": {}, "node": {}, "edge": {}}
    for key in root:
        if _local(key.tag) != "key":
            continue
        kind = key.get("attr.type", "string")
        if kind not in _STANDARD_TYPES:
            raise GraphMLError(f"{path}: key {key.get('id')!r} has attr.type {kind!r}, not a GraphML type")
        scope, name = key.get("for", "all"), key.get("attr.name", key.get("id"))
        keys[key.get("id")] = (scope, name, kind)
        for default in key:
            if _local(default.tag) == "default":
                value = _parse_typed(default.text, kind, f"{path}: default of key {key.get('id')!r}")
                for target in defaults if scope == "all" else [scope]:
                    defaults.setdefault(target, {})[name] = value
    graphs = [child for child in root if _local(child.tag) == "graph"]
    if len(graphs) != 1:
        raise GraphMLError(f"{path} holds {len(graphs)} <graph> elements, expected 1")
    graph_xml = graphs[0]
    if graph_xml.get("edgedefault", "directed") != "directed":
        raise GraphMLError(f"{path}: the graph is {graph_xml.get('edgedefault')}, an NCG is directed")
    attrs = _read_data(graph_xml, keys, "graph", f"{path}: graph", defaults["graph"])
    missing = [name for name in _REQUIRED_GRAPH_ATTRS if name not in attrs]
    if "format" in attrs and attrs["format"] != GRAPHML_FORMAT:
        raise GraphMLError(f"{path} has format {attrs['format']!r}, expected {GRAPHML_FORMAT!r}")
    if missing:
        raise GraphMLError(f"{path} lacks the graph attributes {missing}")
    if attrs["format_version"] != GRAPHML_VERSION:
        raise GraphMLError(
            f"{path} has format version {attrs['format_version']}; this ncg reads version {GRAPHML_VERSION}"
        )
    if attrs["dtype"] not in _DTYPES:
        raise GraphMLError(f"{path}: dtype is {attrs['dtype']!r}, expected one of {sorted(_DTYPES)}")

    node_ids, index_of, node_attrs = [], {}, []
    for element in graph_xml:
        if _local(element.tag) != "node":
            continue
        node_id = element.get("id")
        if node_id is None or node_id in index_of:
            raise GraphMLError(f"{path}: node number {len(node_ids)} has a missing or repeated id {node_id!r}")
        data = _read_data(element, keys, "node", f"{path}: node {node_id!r}", defaults["node"])
        lacking = [name for name in _REQUIRED_NODE_ATTRS if name not in data]
        if lacking:
            raise GraphMLError(f"{path}: node {node_id!r} lacks the attributes {lacking}")
        index_of[node_id] = len(node_ids)
        node_ids.append(node_id)
        node_attrs.append(data)
    src, dst, weights = [], [], []
    for element in graph_xml:
        if _local(element.tag) != "edge":
            continue
        s, t = element.get("source"), element.get("target")
        where = f"{path}: edge {s!r} -> {t!r}"
        for end in (s, t):
            if end not in index_of:
                raise GraphMLError(f"{where} names node {end!r}, which is not declared")
        data = _read_data(element, keys, "edge", where, defaults["edge"])
        if "weight" not in data:
            raise GraphMLError(f"{where} lacks the attribute 'weight'")
        src.append(index_of[s])
        dst.append(index_of[t])
        weights.append(data["weight"])

    n = len(node_ids)
    edge_index = torch.tensor([src, dst], dtype=torch.long).reshape(2, len(src))
    cycle = find_cycle(edge_index, n) if n else None
    if cycle is not None:
        raise GraphMLError(
            f"{path}: the edges contain a directed cycle through nodes {[node_ids[v] for v in cycle]}; "
            "an NCG must be acyclic"
        )
    for name, found in (("num_neurons", n), ("num_edges", len(src))):
        if attrs[name] != found:
            raise GraphMLError(f"{path}: graph attribute {name} is {attrs[name]} but the file has {found}")
    outputs = sorted((d["output_index"], v) for v, d in enumerate(node_attrs) if d["output_index"] >= 0)
    for v, d in enumerate(node_attrs):
        if (d["role"] == "output") != (d["output_index"] >= 0):
            raise GraphMLError(
                f"{path}: node {node_ids[v]!r} has role {d['role']!r} but output_index {d['output_index']}"
            )
    if [k for k, _ in outputs] != list(range(len(outputs))):
        raise GraphMLError(
            f"{path}: output_index values {[k for k, _ in outputs]} are not 0 .. {len(outputs) - 1}"
        )
    position = torch.tensor([d["topo_index"] for d in node_attrs], dtype=torch.long)
    if not torch.equal(torch.sort(position).values, torch.arange(n)):
        raise GraphMLError(f"{path}: the nodes' topo_index values are not a permutation of 0 .. {n - 1}")
    torch_dtype = _DTYPES[attrs["dtype"]][0]
    weight = torch.tensor(weights, dtype=torch.float64).to(torch_dtype)
    bias = torch.tensor([d["bias"] for d in node_attrs], dtype=torch.float64).to(torch_dtype)
    try:
        graph = NCG(
            edge_index,
            n,
            torch.tensor([v for _, v in outputs], dtype=torch.long),
            weight=weight,
            bias=bias,
            order=torch.argsort(position),
            neuron_ids=torch.tensor([d["neuron_id"] for d in node_attrs], dtype=torch.long),
            unreachable="ignore",
        )
    except NCGError as exc:
        raise GraphMLError(f"{path}: the nodes and edges do not form a valid NCG: {exc}") from exc
    return _model_from_attributes(path, attrs, graph, weight, bias, torch_dtype)


def _model_from_attributes(
    path: Path, attrs: dict, graph: NCG, weight: Tensor, bias: Tensor, dtype: torch.dtype
) -> FreeNet:
    try:
        config = json.loads(attrs["config"])
    except json.JSONDecodeError as exc:
        raise GraphMLError(f"{path}: graph attribute config is not JSON ({exc})") from exc
    for name, config_name in (("in_features", "in_features"), ("out_features", "out_features"),
                              ("activation", "activation"), ("output_activation", "output_activation"),
                              ("encoder", "encoder"), ("decoder", "decoder")):
        if config.get(config_name) != attrs[name]:
            raise GraphMLError(
                f"{path}: graph attribute {name} is {attrs[name]!r} but config says {config.get(config_name)!r}"
            )
    if attrs["num_outputs"] != graph.num_outputs:
        raise GraphMLError(
            f"{path}: graph attribute num_outputs is {attrs['num_outputs']} but {graph.num_outputs} nodes are outputs"
        )
    try:
        model = FreeNet(graph, **config)
    except (NCGError, TypeError) as exc:
        raise GraphMLError(f"{path}: config {config} does not build a FreeNet: {exc}") from exc
    model = model.to(dtype)
    arrays = _read_dense(path, attrs, dtype)
    expected = {"encoder_weight": (graph.num_neurons, model.in_features)}
    if isinstance(model.decoder, torch.nn.Linear):
        expected["decoder_weight"] = tuple(model.decoder.weight.shape)
        expected["decoder_bias"] = tuple(model.decoder.bias.shape)
    for name, shape in expected.items():
        if name not in arrays:
            raise GraphMLError(f"{path}: the dense weights lack {name!r}")
        if tuple(arrays[name].shape) != shape:
            raise GraphMLError(f"{path}: {name} has shape {list(arrays[name].shape)}, the model needs {list(shape)}")
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
        model.encoder.weight.copy_(torch.from_numpy(arrays["encoder_weight"]))
        if isinstance(model.decoder, torch.nn.Linear):
            model.decoder.weight.copy_(torch.from_numpy(arrays["decoder_weight"]))
            model.decoder.bias.copy_(torch.from_numpy(arrays["decoder_bias"]))
    return model


def _read_dense(path: Path, attrs: dict, dtype: torch.dtype) -> dict[str, np.ndarray]:
    shapes = {}
    for name in ("encoder_shape", "decoder_shape"):
        try:
            shapes[name] = tuple(int(s) for s in json.loads(attrs[name]))
        except (json.JSONDecodeError, TypeError, ValueError):
            raise GraphMLError(
                f"{path}: graph attribute {name} is {attrs[name]!r}, expected a JSON list of ints"
            ) from None
    wanted = {"encoder_weight": shapes["encoder_shape"]}
    if shapes["decoder_shape"]:
        wanted["decoder_weight"] = shapes["decoder_shape"]
        wanted["decoder_bias"] = shapes["decoder_shape"][:1]
    storage = attrs["dense_storage"]
    if storage == "file":
        if "dense_file" not in attrs:
            raise GraphMLError(f"{path} lacks the graph attributes ['dense_file'] (dense_storage is 'file')")
        side_file = path.parent / attrs["dense_file"]
        if not side_file.is_file():
            raise GraphMLError(f"{path}: the dense weights file {side_file} does not exist")
        try:
            with np.load(side_file) as data:
                arrays = {name: data[name] for name in data.files}
        except Exception as exc:  # numpy raises several types for damaged archives
            raise GraphMLError(f"{path}: the dense weights file {side_file} could not be read ({exc})") from exc
    elif storage == "inline":
        little_endian = np.dtype(_DTYPES[attrs["dtype"]][1])
        arrays = {}
        for name, shape in wanted.items():
            if name not in attrs:
                raise GraphMLError(f"{path} lacks the graph attributes [{name!r}] (dense_storage is 'inline')")
            try:
                raw = base64.b64decode(attrs[name], validate=True)
            except ValueError as exc:
                raise GraphMLError(f"{path}: graph attribute {name} is not base64 ({exc})") from exc
            if len(raw) != little_endian.itemsize * int(np.prod(shape)):
                raise GraphMLError(
                    f"{path}: graph attribute {name} holds {len(raw) // little_endian.itemsize} values, "
                    f"its shape {list(shape)} needs {int(np.prod(shape))}"
                )
            arrays[name] = np.frombuffer(raw, dtype=little_endian).reshape(shape)
    else:
        raise GraphMLError(f"{path}: dense_storage is {storage!r}, expected 'file' or 'inline'")
    for name, shape in wanted.items():
        if name in arrays and tuple(arrays[name].shape) != shape:
            raise GraphMLError(f"{path}: {name} has shape {list(arrays[name].shape)}, the file declares {list(shape)}")
    return {name: np.ascontiguousarray(array).astype(_DTYPES[attrs['dtype']][1]) for name, array in arrays.items()}
