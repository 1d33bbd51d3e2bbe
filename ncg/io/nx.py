"""networkx interop: an NCG as a ``networkx.DiGraph`` and back."""
from __future__ import annotations

from typing import Any, Hashable, Iterable

import networkx as nx
import torch
from torch import Tensor

from ncg.errors import CycleError, NCGError
from ncg.graph import NCG
from ncg.io._common import graph_of, node_attributes
from ncg.model import FreeNet

__all__ = ["to_networkx", "from_networkx"]


def to_networkx(graph: NCG | FreeNet) -> nx.DiGraph:
    """The NCG (of a FreeNet: its graph, with the model's config in ``G.graph``) as a
    ``networkx.DiGraph`` on nodes ``0 .. N-1``.

    Parameters
    ----------
    graph : NCG or FreeNet

    Returns
    -------
    networkx.DiGraph
        Nodes are added in index order, edges in ``edge_index`` column order. Node attributes:
        ``role`` (``"hidden"``, ``"output"`` or ``"input"``), ``input_index`` (graphs with input
        nodes only), ``output_index`` (place among the outputs in
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
    model = None if isinstance(graph, NCG) else graph
    graph = graph_of(graph, "to_networkx")
    attrs = node_attributes(graph)
    G = nx.DiGraph(**({} if model is None else {"config": model.config()}))
    G.add_nodes_from(enumerate(attrs))
    src, dst = graph.edge_index.tolist()
    weight = graph.weight.double().tolist()
    G.add_edges_from((s, t, {"weight": w, "edge_id": e}) for e, (s, t, w) in enumerate(zip(src, dst, weight)))
    return G

def from_networkx(
    G: nx.DiGraph, outputs: Iterable[Hashable] | None = None, return_mapping: bool = False
) -> NCG | tuple[NCG, dict[Hashable, int]]:
    """Build an NCG from a directed acyclic ``networkx`` graph with any hashable node labels.

    Parameters
    ----------
    G : networkx.DiGraph
        A DAG. Optional attributes (as written by :func:`to_networkx`): edge ``weight`` and
        ``edge_id``; node ``bias``, ``role``, ``output_index``, ``input_index`` (input nodes, in
        feature order), ``topo_index``, ``neuron_id``.
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
        inputs=_inputs_of(nodes, mapping),
    )
    return (graph, mapping) if return_mapping else graph


def _inputs_of(nodes: list, mapping: dict[Hashable, int]) -> Tensor:
    """Input nodes in feature order from their ``input_index`` attributes, which must be the
    integers ``0 .. F-1`` once each."""
    marked = [(d["input_index"], mapping[v]) for v, d in nodes if d.get("input_index", -1) != -1]
    indices = [f for f, _ in marked]
    if any(type(f) is not int for f in indices) or sorted(indices) != list(range(len(indices))):
        raise NCGError(f"input_index values must be the integers 0 .. {len(indices) - 1} once each, got {sorted(map(str, indices))[:10]}")
    return torch.tensor([v for _, v in sorted(marked)], dtype=torch.long)


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
