"""GraphML writer and reader for a whole FreeNet.

The graph goes in as nodes and edges, the dense encoder / decoder weights in a side ``.npz`` file
(or inline), and the model config, so ``read_graphml(path)`` rebuilds a model with identical
outputs.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import xml.etree.ElementTree as ET
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

import numpy as np
import torch
from torch import Tensor

from ncg.activations import firing_thresholds
from ncg.atomic import atomic_write
from ncg.bounded import read_npz
from ncg.checkpoint import payload_checksum
from ncg.errors import GraphMLError, NCGError
from ncg.graph import NCG
from ncg.io._common import node_attributes
from ncg.model import FreeNet, state_shapes
from ncg.schedule import find_cycle

__all__ = ["write_graphml", "read_graphml", "GRAPHML_FORMAT", "GRAPHML_VERSION"]

GRAPHML_FORMAT = "ncg.freenet.graphml"
GRAPHML_VERSION = 1
_GRAPHML_NS = "http://graphml.graphdrawing.org/xmlns"
_EDGE_CHUNK = 1 << 16
"""Edges converted to text at a time by :func:`write_graphml`."""
_STANDARD_TYPES = {"boolean", "int", "long", "float", "double", "string"}
_REQUIRED_GRAPH_ATTRS = (
    "format", "format_version", "num_neurons", "num_edges", "in_features", "out_features",
    "num_outputs", "activation", "output_activation", "encoder", "encoder_shape", "decoder",
    "decoder_shape", "dtype", "dense_storage", "config",
)
_REQUIRED_NODE_ATTRS = ("role", "output_index", "topo_index", "neuron_id", "bias")
_DTYPES = {"float32": (torch.float32, "<f4"), "float64": (torch.float64, "<f8")}
_DENSE_STATE = ("encoder.weight", "decoder.weight", "decoder.bias")
"""The dense weights of a FreeNet's state_dict; GraphML names them with ``_`` for ``.``."""

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
    ("graph", "checksum", "string"),
    ("graph", "allowed_layers", "string"),
    ("node", "role", "string"),
    ("node", "output_index", "int"),
    ("node", "input_index", "int"),
    ("node", "generation", "int"),
    ("node", "topo_index", "int"),
    ("node", "neuron_id", "long"),
    ("node", "layer", "int"),
    ("node", "bias", "double"),
    ("node", "activation", "string"),
    ("node", "firing_rate", "double"),
    ("edge", "weight", "double"),
]
_KEY_TYPES = {(scope, name): kind for scope, name, kind in _KEYS}
_TYPE_FAMILY = {"boolean": "bool", "int": "int", "long": "int", "float": "float", "double": "float", "string": "str"}


def _format_value(value: Any, kind: str) -> str:
    return repr(float(value)) if kind == "double" else escape(str(value))


def _dense_arrays(model: FreeNet) -> dict[str, np.ndarray]:
    arrays = {} if model.encoder is None else {"encoder_weight": model.encoder.weight.detach().cpu().numpy()}
    if isinstance(model.decoder, torch.nn.Linear):
        arrays["decoder_weight"] = model.decoder.weight.detach().cpu().numpy()
        arrays["decoder_bias"] = model.decoder.bias.detach().cpu().numpy()
    return arrays


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
        fraction of the ``B`` samples on which each neuron is above its activation's firing
        threshold (:func:`ncg.activations.firing_thresholds`, as the coactivation recorder).
        Give at most one of ``firing_rate`` and ``activations``; with neither, nodes carry no
        ``firing_rate`` attribute (its key is not declared).

    Returns
    -------
    list of Path
        The files written (the GraphML file, then the side file if any).

    Notes
    -----
    Only the GraphML standard types are used (``string``, ``int``, ``long``, ``double``).
    Nodes are written in neuron-index order with ids ``n0 .. n{N-1}`` and edges in ``edge_index``
    column order. Node attributes: ``role`` (``hidden``, ``output`` or ``input``),
    ``output_index`` (``-1`` for non-outputs), ``input_index`` (the input feature an input node
    carries, ``-1`` for neurons; only in graphs with input nodes),
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
        raise GraphMLError(
            f"write_graphml expects a FreeNet (graph, encoder and decoder), got {type(model).__name__}; "
            "for a bare NCG use networkx.write_graphml(ncg.io.to_networkx(graph), path)"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = model.graph
    n = graph.num_neurons
    rate = _firing_rate_argument(firing_rate, activations, model)
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
        "encoder_shape": json.dumps(list(arrays["encoder_weight"].shape) if "encoder_weight" in arrays else []),
        "decoder": model.decoder_kind,
        "decoder_shape": json.dumps(decoder_shape),
        "dtype": dtype,
        "dense_storage": "inline" if inline_dense else "file",
        "config": json.dumps(model.config(), sort_keys=True),
        "checksum": payload_checksum(model.state_dict()),
    }
    if graph.allowed_layers is not None:  # the topology constraint: row a, column b is 1 if a -> b is allowed
        graph_data["allowed_layers"] = json.dumps(graph.allowed_layers.int().tolist())
    little_endian = _DTYPES[dtype][1]
    if inline_dense:
        for name, array in arrays.items():
            graph_data[name] = base64.b64encode(array.astype(little_endian).tobytes()).decode("ascii")
    else:
        graph_data["dense_file"] = side_file.name
    # Parameters are read in the model's own dtype so doubles keep every bit.
    biases = model.neuron_bias().detach().cpu().double().tolist()  # input nodes: 0, they hold no bias
    nodes = node_attributes(graph)
    for v, attrs in enumerate(nodes):
        attrs["bias"] = biases[v]
        attrs["activation"] = {"output": model.output_activation, "input": "identity"}.get(attrs["role"], model.activation)
        if rate is not None:
            attrs["firing_rate"] = rate[v]
    declared = {("graph", name) for name in graph_data} | {("node", name) for name in nodes[0]}
    keys = [(scope, name, kind) for scope, name, kind in _KEYS if (scope, name) in declared or scope == "edge"]
    kinds = {(scope, name): kind for scope, name, kind in keys}

    head = [
        "<?xml version='1.0' encoding='utf-8'?>",
        f'<graphml xmlns="{_GRAPHML_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{_GRAPHML_NS} {_GRAPHML_NS}/1.0/graphml.xsd">',
    ]
    head += [
        f'  <key id="{scope}_{name}" for="{scope}" attr.name="{name}" attr.type="{kind}"/>'
        for scope, name, kind in keys
    ]
    head.append('  <graph id="G" edgedefault="directed">')
    head += [
        f'    <data key="graph_{name}">{_format_value(value, kinds["graph", name])}</data>'
        for name, value in graph_data.items()
    ]

    def node_lines():
        for v, attrs in enumerate(nodes):
            data = "".join(
                f'<data key="node_{name}">{_format_value(value, kinds["node", name])}</data>'
                for name, value in attrs.items()
            )
            yield f'    <node id="n{v}">{data}</node>'

    def edge_lines():  # in chunks, so a graph of millions of edges streams in bounded memory
        for lo in range(0, graph.num_edges, _EDGE_CHUNK):
            src, dst = graph.edge_index[:, lo:lo + _EDGE_CHUNK].tolist()
            weights = model.weight.detach()[lo:lo + _EDGE_CHUNK].cpu().double().tolist()
            yield from (f'    <edge source="n{s}" target="n{t}"><data key="edge_weight">{w!r}</data></edge>'
                        for s, t, w in zip(src, dst, weights))

    def write(handle) -> None:
        lines = itertools.chain(head, node_lines(), edge_lines(), ["  </graph>", "</graphml>"])
        while chunk := list(itertools.islice(lines, 4096)):
            handle.write(("\n".join(chunk) + "\n").encode("utf-8"))

    if not inline_dense:
        atomic_write(side_file, lambda handle: np.savez(handle, **arrays))
    atomic_write(path, write)
    return [path] if inline_dense else [path, side_file]


def _firing_rate_argument(
    firing_rate: np.ndarray | Tensor | None, activations: Tensor | None, model: FreeNet
) -> list[float] | None:
    n = model.num_neurons
    if firing_rate is not None and activations is not None:
        raise GraphMLError("give at most one of firing_rate and activations")
    if activations is not None:
        activations = torch.as_tensor(activations)
        if activations.dim() != 2 or activations.shape[1] != n:
            raise GraphMLError(f"activations must have shape [B, {n}], got {list(activations.shape)}")
        firing_rate = (activations.cpu() > firing_thresholds(model)).double().mean(0)
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


def _read_datum(data: ET.Element, keys: dict[str, tuple[str, str, str]], scope: str, where: str) -> tuple[str, Any]:
    """The attribute name and typed value of one ``<data>`` element of an element of ``scope``."""
    key = data.get("key")
    if key not in keys:
        raise GraphMLError(f"{where} has data for key {key!r}, which no <key> element declares")
    key_scope, name, kind = keys[key]
    if key_scope not in (scope, "all"):
        raise GraphMLError(f"{where} uses key {key!r} declared for {key_scope!r}, not {scope!r}")
    return name, _parse_typed(data.text, kind, f"{where}: attribute {name!r}")


def _read_data(element: ET.Element, keys: dict[str, tuple[str, str, str]], scope: str, where: str,
               defaults: dict[str, Any]) -> dict:
    """The attributes of ``element`` from its ``<data>`` children, over ``defaults``."""
    data = dict(defaults)
    for child in element:
        if _local(child.tag) == "data":
            name, value = _read_datum(child, keys, scope, where)
            data[name] = value
    return data


def _read_key(path: Path, key: ET.Element, keys: dict[str, tuple[str, str, str]],
              defaults: dict[str, dict[str, Any]]) -> None:
    """Declare a ``<key>``: record its scope, name and type in ``keys`` and its ``<default>``
    (if any) in ``defaults``."""
    kind = key.get("attr.type", "string")
    if kind not in _STANDARD_TYPES:
        raise GraphMLError(f"{path}: key {key.get('id')!r} has attr.type {kind!r}, not a GraphML type")
    scope, name = key.get("for", "all"), key.get("attr.name", key.get("id"))
    expected = _KEY_TYPES.get((scope, name))
    if expected is not None and _TYPE_FAMILY[kind] != _TYPE_FAMILY[expected]:
        raise GraphMLError(f"{path}: {scope} attribute {name!r} is declared with attr.type {kind!r}, expected {expected!r}")
    keys[key.get("id")] = (scope, name, kind)
    for default in key:
        if _local(default.tag) == "default":
            value = _parse_typed(default.text, kind, f"{path}: default of key {key.get('id')!r}")
            for target in defaults if scope == "all" else [scope]:
                defaults.setdefault(target, {})[name] = value


def _append(column: array, value: Any, where: str, name: str) -> None:
    """Append ``value`` to a typed ``column``; a value of the wrong type or too large raises."""
    try:
        column.append(value)
    except (TypeError, OverflowError):
        raise GraphMLError(f"{where}: attribute {name!r} is {value!r}, not a 64-bit number") from None


_NODE_COLUMNS = {"output_index": "q", "input_index": "q", "topo_index": "q", "neuron_id": "q", "bias": "d",
                 "layer": "q"}
"""The numeric node attributes :func:`read_graphml` gathers, with their :mod:`array` type codes
(``input_index`` and ``layer`` are ``-1`` where absent)."""


class _Streamed:
    """What :func:`read_graphml` keeps of a GraphML file as it streams past: the keys, the graph
    attributes, and the node and edge attributes as columns in file order.

    Nodes are numbered in file order; an edge keeps the numbers of its ends, or is set aside
    until the end of the file when it names a node not read yet. The first problem of each part
    of the file is kept in :attr:`problems` rather than raised, so that :func:`read_graphml`
    reports problems in a fixed order (see its Notes) whatever the order of the elements.
    """

    def __init__(self, path: Path):
        self.path = path
        self.keys: dict[str, tuple[str, str, str]] = {}
        self.defaults: dict[str, dict[str, Any]] = {"graph": {}, "node": {}, "edge": {}}
        self.graphs = 0
        self.attrs: dict[str, Any] = {}
        self.node_ids: list[str] = []
        self.number: dict[str, int] = {}
        self.roles: list[Any] = []
        self.columns = {name: array(code) for name, code in _NODE_COLUMNS.items()}
        self.edges = 0
        self.ends = (array("q"), array("q"))
        self.weight = array("d")
        self.unresolved: list[tuple[int, str | None, str | None]] = []
        self.problems: dict[str, tuple[int, GraphMLError]] = {}
        """The first problem of each part of the file, with the number of edges read before it
        (which places an edge problem among the edges set aside)."""

    def note(self, part: str, take: Callable[[ET.Element], None], element: ET.Element) -> None:
        """``take(element)``, keeping the :class:`~ncg.errors.GraphMLError` it raises if it is
        the first of ``part``."""
        edges = self.edges
        try:
            take(element)
        except GraphMLError as exc:
            self.problems.setdefault(part, (edges, exc))

    def raise_problems(self, *parts: str) -> None:
        """Raise the kept problem of the first of ``parts`` that has one."""
        for part in parts:
            if part in self.problems:
                raise self.problems[part][1]

    def declare(self, key: ET.Element) -> None:
        """Take in a ``<key>`` once it is read."""
        _read_key(self.path, key, self.keys, self.defaults)

    def open_graph(self, graph: ET.Element) -> None:
        """Count a ``<graph>`` as it opens; the first is the one read."""
        self.graphs += 1
        if self.graphs == 1:
            self.attrs = dict(self.defaults["graph"])
            if graph.get("edgedefault", "directed") != "directed":
                raise GraphMLError(f"{self.path}: the graph is {graph.get('edgedefault')}, an NCG is directed")

    def take(self, element: ET.Element) -> None:
        """Take in a child of the ``<graph>`` once it is read: ``<data>``, ``<node>`` or ``<edge>``."""
        tag = _local(element.tag)
        if tag == "edge":
            self.note("edges", self._add_edge, element)
        elif tag == "node":
            self.note("nodes", self._add_node, element)
        elif tag == "data":
            self.note("graph data", self._add_datum, element)

    def _add_datum(self, data: ET.Element) -> None:
        name, value = _read_datum(data, self.keys, "graph", f"{self.path}: graph")
        self.attrs[name] = value

    def _add_node(self, node: ET.Element) -> None:
        node_id = node.get("id")
        if node_id is None or node_id in self.number:
            raise GraphMLError(f"{self.path}: node number {len(self.node_ids)} has a missing or repeated id {node_id!r}")
        where = f"{self.path}: node {node_id!r}"
        data = _read_data(node, self.keys, "node", where, self.defaults["node"])
        lacking = [name for name in _REQUIRED_NODE_ATTRS if name not in data]
        if lacking:
            raise GraphMLError(f"{where} lacks the attributes {lacking}")
        self.number[node_id] = len(self.node_ids)
        self.node_ids.append(node_id)
        self.roles.append(data["role"])
        for name, column in self.columns.items():
            _append(column, data.get(name, -1), where, name)

    def _add_edge(self, edge: ET.Element) -> None:
        s, t = edge.get("source"), edge.get("target")
        source, target = self.number.get(s, -1), self.number.get(t, -1)
        if source < 0 or target < 0:
            self.unresolved.append((self.edges, s, t))
        self.edges += 1
        where = f"{self.path}: edge {s!r} -> {t!r}"
        data = _read_data(edge, self.keys, "edge", where, self.defaults["edge"])
        if "weight" not in data:
            raise GraphMLError(f"{where} lacks the attribute 'weight'")
        _append(self.weight, data["weight"], where, "weight")
        self.ends[0].append(source)
        self.ends[1].append(target)

    def edge_index(self, neuron_of: np.ndarray) -> Tensor:
        """``edge_index`` ``[2, E]`` in neuron indices, given the neuron index of each node
        number; raises the first problem of the edges (in file order), an edge naming a node
        that no ``<node>`` declares included."""
        last, problem = self.problems.get("edges", (self.edges, None))
        for e, s, t in self.unresolved:
            if e > last:
                break
            for end in (s, t):
                if end not in self.number:
                    raise GraphMLError(f"{self.path}: edge {s!r} -> {t!r} names node {end!r}, which is not declared")
            if problem is None:
                self.ends[0][e], self.ends[1][e] = self.number[s], self.number[t]
        if problem is not None:
            raise problem
        return torch.from_numpy(neuron_of[np.array(self.ends, dtype=np.int64).reshape(2, -1)])


def _xml_events(path: Path, handle: BinaryIO) -> Iterator[tuple[str, ET.Element]]:
    """The ``start`` and ``end`` events of :func:`xml.etree.ElementTree.iterparse`; a file that
    is not XML raises :class:`~ncg.errors.GraphMLError`."""
    try:
        yield from ET.iterparse(handle, events=("start", "end"))
    except (ET.ParseError, LookupError, ValueError) as exc:  # LookupError: an unknown declared encoding
        raise GraphMLError(f"{path} is not an XML file ({exc})") from exc


def _stream(path: Path) -> _Streamed:
    """Read a GraphML file as a stream, and raise its problems up to its graph data.

    Each ``<key>`` and each child of a ``<graph>`` (with its own children) is dropped from the
    partial tree once it is taken in, so the tree never holds more than one of them.
    """
    streamed = _Streamed(path)
    open_elements: list[ET.Element] = []
    top = ""  # the tag of the open child of the root
    with open(path, "rb") as handle:
        for event, element in _xml_events(path, handle):
            if event == "start":
                if not open_elements and _local(element.tag) != "graphml":
                    streamed.problems["root"] = (0, GraphMLError(
                        f"{path} is not GraphML: its root element is <{_local(element.tag)}>, expected <graphml>"
                    ))
                elif len(open_elements) == 1:
                    top = _local(element.tag)
                    if top == "graph":
                        streamed.note("graph", streamed.open_graph, element)
                open_elements.append(element)
                continue
            open_elements.pop()
            if len(open_elements) == 2 and top == "graph":
                if streamed.graphs == 1:
                    streamed.take(element)
                del open_elements[1][:]
            elif len(open_elements) == 1:
                if top == "key":
                    streamed.note("keys", streamed.declare, element)
                del open_elements[0][:]
    if streamed.graphs != 1:
        streamed.problems["graph"] = (0, GraphMLError(f"{path} holds {streamed.graphs} <graph> elements, expected 1"))
    streamed.raise_problems("root", "keys", "graph", "graph data")
    return streamed


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
        model's exactly. The node with id ``n<i>`` is neuron ``i`` (in whatever order the
        elements come) and the ``e``-th ``<edge>`` is column ``e`` of ``edge_index``; ``<default>`` values of ``<key>`` elements apply. The
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

    Notes
    -----
    The file is read as a stream (:func:`xml.etree.ElementTree.iterparse`) and each node and
    edge is dropped once its attributes are gathered into arrays, so the memory used grows with
    the model's arrays, not with the XML tree (reading a 100k-neuron, 1M-edge model takes about
    160 MiB, the whole tree would take 1.7 GiB). The ``<key>`` elements must come before the
    ``<graph>``, as the GraphML schema has it; graph attributes, nodes and edges may come in any
    order. Problems are raised once the whole file is read, in a fixed order: XML syntax, the
    root element, keys, the ``<graph>`` element, graph attributes, nodes (in file order), node
    ids, edges (in file order), then the graph as a whole.

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
    streamed = _stream(path)
    attrs = streamed.attrs
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
    streamed.raise_problems("nodes")

    neuron_of = _neuron_indices(path, streamed.node_ids)
    edge_index = streamed.edge_index(neuron_of)
    order = np.argsort(neuron_of).tolist()  # node numbers in neuron-index order
    node_ids = [streamed.node_ids[k] for k in order]
    roles = [streamed.roles[k] for k in order]
    columns = {name: np.array(column)[order] for name, column in streamed.columns.items()}
    n = len(node_ids)
    cycle = find_cycle(edge_index, n) if n else None
    if cycle is not None:
        raise GraphMLError(
            f"{path}: the edges contain a directed cycle through nodes {[node_ids[v] for v in cycle]}; "
            "an NCG must be acyclic"
        )
    for name, found in (("num_neurons", n), ("num_edges", edge_index.shape[1])):
        if attrs[name] != found:
            raise GraphMLError(f"{path}: graph attribute {name} is {attrs[name]} but the file has {found}")
    outputs, found = _indexed_nodes(path, node_ids, roles, columns["output_index"], "output")
    if found != list(range(len(found))):
        raise GraphMLError(f"{path}: output_index values {found} are not 0 .. {len(found) - 1}")
    inputs, found = _indexed_nodes(path, node_ids, roles, columns["input_index"], "input")
    if found != list(range(len(found))):
        raise GraphMLError(f"{path}: input_index values are not 0 .. {len(found) - 1}")
    position = torch.from_numpy(columns["topo_index"])
    if not torch.equal(torch.sort(position).values, torch.arange(n)):
        raise GraphMLError(f"{path}: the nodes' topo_index values are not a permutation of 0 .. {n - 1}")
    torch_dtype = _DTYPES[attrs["dtype"]][0]
    weight = torch.from_numpy(np.array(streamed.weight)).to(torch_dtype)
    bias = torch.from_numpy(columns["bias"]).to(torch_dtype)
    try:
        graph = NCG(
            edge_index,
            n,
            torch.from_numpy(outputs),
            weight=weight,
            bias=bias,
            order=torch.argsort(position),
            neuron_ids=torch.from_numpy(columns["neuron_id"]),
            unreachable="ignore",
            inputs=torch.from_numpy(inputs),
            **_constraint(path, attrs, columns["layer"]),
        )
    except NCGError as exc:
        raise GraphMLError(f"{path}: the nodes and edges do not form a valid NCG: {exc}") from exc
    model = _model_from_attributes(path, attrs, graph, weight, bias, torch_dtype)
    # files of versions that stored a bias for every node summed the bias column, input nodes included
    sums = {payload_checksum(model.state_dict()), payload_checksum({**model.state_dict(), "bias": bias})}
    if "checksum" in attrs and attrs["checksum"] not in sums:
        raise GraphMLError(
            f"{path}: the model read differs from the one written (checksum mismatch): the file was "
            "altered or damaged; delete the graph attribute 'checksum' to accept deliberate edits"
        )
    return model


def _constraint(path: Path, attrs: dict, layer: np.ndarray) -> dict[str, Tensor | None]:
    """The topology constraint stored as the graph attribute ``allowed_layers`` (a JSON ``L x L``
    matrix of 0 and 1, row ``a`` column ``b`` for edges from layer ``a`` to layer ``b``) and the
    node attribute ``layer``; none if the file has neither."""
    if "allowed_layers" not in attrs:
        if (layer >= 0).any():
            raise GraphMLError(f"{path}: nodes carry a layer but the graph attribute allowed_layers is missing")
        return {"layer": None, "allowed_layers": None}
    try:
        matrix = np.array(json.loads(attrs["allowed_layers"]), dtype=np.int64)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise GraphMLError(f"{path}: graph attribute allowed_layers is not a JSON matrix of 0 and 1: {exc}") from None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or not np.isin(matrix, (0, 1)).all():
        raise GraphMLError(f"{path}: graph attribute allowed_layers must be a square matrix of 0 and 1, got shape "
                           f"{list(matrix.shape)}")
    if (layer < 0).any():
        raise GraphMLError(f"{path}: the graph has allowed_layers but node number {int(np.argmax(layer < 0))} "
                           "has no layer")
    return {"layer": torch.from_numpy(layer), "allowed_layers": torch.from_numpy(matrix.astype(bool))}


def _model_from_attributes(
    path: Path, attrs: dict, graph: NCG, weight: Tensor, bias: Tensor, dtype: torch.dtype
) -> FreeNet:
    try:
        config = json.loads(attrs["config"])
    except json.JSONDecodeError as exc:
        raise GraphMLError(f"{path}: graph attribute config is not JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise GraphMLError(f"{path}: graph attribute config holds a JSON {type(config).__name__}, expected an object")
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
    try:  # the sizes first: the config may declare dense weights the file does not hold
        shapes = state_shapes(graph, config)
    except NCGError as exc:
        raise GraphMLError(f"{path}: config {config} does not build a FreeNet: {exc}") from exc
    expected = {name.replace(".", "_"): shapes[name] for name in _DENSE_STATE if name in shapes}
    arrays = _read_dense(path, attrs, expected)
    for name, shape in expected.items():
        if name not in arrays:
            raise GraphMLError(f"{path}: the dense weights lack {name!r}")
        if tuple(arrays[name].shape) != shape:
            raise GraphMLError(f"{path}: {name} has shape {list(arrays[name].shape)}, the model needs {list(shape)}")
    model = FreeNet(graph, **config).to(dtype)
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias[model.bias_neurons.cpu()])  # an input node's bias attribute is not used
        if model.encoder is not None:
            model.encoder.weight.copy_(torch.from_numpy(arrays["encoder_weight"]))
        if isinstance(model.decoder, torch.nn.Linear):
            model.decoder.weight.copy_(torch.from_numpy(arrays["decoder_weight"]))
            model.decoder.bias.copy_(torch.from_numpy(arrays["decoder_bias"]))
    return model


def _neuron_indices(path: Path, node_ids: list[str]) -> np.ndarray:
    """The neuron index of each node (in file order), read from its id ``n<i>`` (the encoder rows
    and edges are indexed by them), whatever order a tool re-saved the elements in."""
    n = len(node_ids)
    index = [int(i[1:]) if i[:1] == "n" and i[1:].isdecimal() else -1 for i in node_ids]
    if sorted(index) != list(range(n)):
        bad = next((i for i, k in zip(node_ids, index) if k < 0 or k >= n), node_ids[0] if n else None)
        raise GraphMLError(
            f"{path}: node ids must be n0 .. n{n - 1} as write_graphml writes them (they index the "
            f"encoder rows), found {bad!r}"
        )
    return np.array(index, dtype=np.int64)


def _indexed_nodes(path: Path, node_ids: list[str], roles: list[Any], values: np.ndarray,
                   role: str) -> tuple[np.ndarray, list[int]]:
    """The neurons with a ``<role>_index`` (in neuron order: ``values``) of at least 0, sorted by
    it, and their sorted values; a neuron whose role disagrees with its index raises."""
    has_index = values >= 0
    disagree = np.flatnonzero(np.array([r == role for r in roles], dtype=bool) != has_index)
    if disagree.size:
        v = int(disagree[0])
        raise GraphMLError(f"{path}: node {node_ids[v]!r} has role {roles[v]!r} but {role}_index {int(values[v])}")
    members = np.flatnonzero(has_index)
    members = members[np.argsort(values[members], kind="stable")]
    return members, values[members].tolist()


def _read_dense(path: Path, attrs: dict, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The dense arrays, read once the shapes the file declares (``encoder_shape``,
    ``decoder_shape``) agree with ``expected``, the model's; a side file's arrays are checked
    against its bytes before they are allocated (:func:`ncg.bounded.read_npz`)."""
    shapes = {}
    for name in ("encoder_shape", "decoder_shape"):
        try:
            shapes[name] = tuple(int(s) for s in json.loads(attrs[name]))
        except (json.JSONDecodeError, TypeError, ValueError):
            raise GraphMLError(
                f"{path}: graph attribute {name} is {attrs[name]!r}, expected a JSON list of ints"
            ) from None
    wanted = {"encoder_weight": shapes["encoder_shape"]} if shapes["encoder_shape"] else {}
    if shapes["decoder_shape"]:
        wanted["decoder_weight"] = shapes["decoder_shape"]
        wanted["decoder_bias"] = shapes["decoder_shape"][:1]
    if wanted != expected:
        raise GraphMLError(
            f"{path}: graph attributes encoder_shape and decoder_shape declare the dense weights "
            f"{ {name: list(shape) for name, shape in wanted.items()} }, the config and the nodes need "
            f"{ {name: list(shape) for name, shape in expected.items()} }"
        )
    storage = attrs["dense_storage"]
    if storage == "file":
        if "dense_file" not in attrs:
            raise GraphMLError(f"{path} lacks the graph attributes ['dense_file'] (dense_storage is 'file')")
        name = str(attrs["dense_file"])
        if Path(name).name != name or name in ("", ".", ".."):
            raise GraphMLError(f"{path}: dense_file {name!r} must name a file in the GraphML file's own folder")
        side_file = path.parent / name
        if not side_file.is_file():
            raise GraphMLError(f"{path}: the dense weights file {side_file} does not exist")
        try:
            arrays = read_npz(side_file)
        except NCGError as exc:
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
    for name, array in arrays.items():
        if array.dtype.kind != "f" or not np.isfinite(array).all():
            raise GraphMLError(f"{path}: the dense array {name} holds NaN, infinite or non-float values")
    return {name: np.ascontiguousarray(array).astype(_DTYPES[attrs['dtype']][1]) for name, array in arrays.items()}
