"""An interactive explorer of a FreeNet and its evolution: one self-contained HTML file.

:func:`explore` writes a page that opens from ``file://`` with no network and no server: its
script (plain Canvas 2D, in ``viz/explorer/``) and its data are inlined. The layout is computed
here, once: neurons by topological generation on ``x``, ordered inside each generation by the
barycenter sweeps of :func:`~viz.layout.generation_layout`; the input nodes of an image data set
are drawn as the image grid, each pinned at its pixel's row. The page draws edges coloured by
sign with an opacity growing with ``|w|``, the strongest first up to ``max_drawn_edges`` (the
rest are counted as hidden), and filters them by a weight threshold. A round slider replays the
history: the graph after each round, that round's pruned and added edges marked, one sampling
rate for every kind, counts exact.

:func:`explorer_data` builds what the page shows (:class:`ExplorerData`); its methods give the
numbers the page shows, so tests compare the two.

The data travel as zlib-compressed, base64 typed arrays (the browser inflates them with its
``DecompressionStream``): node and edge columns, and for each round the edit lists (indices of
the edges it pruned and added), never a copy of the graph per round.

Examples
--------
>>> from ncg.build import sparse_start
>>> graph = sparse_start(num_inputs=16, num_hidden=8, num_outputs=2, fan_in=4, seed=0)
>>> data = explorer_data(graph, image_shape=(4, 4))
>>> data.num_nodes, data.num_edges, data.edge_counts(0.0)
(26, 42, (42, 0, 0))
"""
from __future__ import annotations

import base64
import json
import math
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ncg.arrays import is_member
from ncg.checkpoint import load_freenet
from ncg.errors import NCGError
from ncg.evolve.history import History
from ncg.graph import NCG
from ncg.io import read_graphml
from ncg.io import summary as graph_summary
from ncg.io._common import graph_of
from ncg.model import FreeNet
from ncg.run_folder import RunFolder
from ncg.schedule import topological_generations
from viz.analysis import input_weights
from viz.evolution import _layout_graph
from viz.layout import generation_layout

__all__ = ["ExplorerData", "explorer_data", "write_explorer", "explore", "MAX_DRAWN_EDGES"]

MAX_DRAWN_EDGES = 50_000
"""Edges the page draws at most (the strongest); the others are counted as hidden."""

MAX_ENCODER_VALUES = 2_000_000
"""A dense encoder's rows (receptive fields of a model without input nodes) ship up to this size."""

WIDTH = 2.0
"""Width of the generation columns, in units of the plot's height."""

GRID_HEIGHT, GRID_GAP = 0.6, 0.15
"""Height of the input image grid (centred) and its gap to generation 0, in units of the plot's height."""

PAGE = Path(__file__).with_name("explorer")


@dataclass
class ExplorerData:
    """What the explorer page shows, as arrays.

    Nodes are the final graph's neurons (in the model's index order), then the neurons that
    earlier rounds removed. Node columns (``nodes``): ``id`` (stable neuron id), ``x``, ``y``
    (plot coordinates: ``y`` in ``(0, 1)``, down), ``generation``, ``role`` (``NCG.HIDDEN``,
    ``OUTPUT``, ``INPUT``), ``output_index`` and ``input_index`` (-1 if none), ``bias`` (NaN for a
    removed neuron), ``firing_rate`` (NaN where not recorded), ``born`` and ``died`` (the first
    round with the neuron, the first without it after that; ``len(rounds)``, or 1 without a
    history, if it stays).

    Edges are every edge of any round, as node indices ``src``, ``dst``: first the final graph's,
    strongest ``|weight|`` first (``weight`` holds theirs), then the others. ``rounds`` has one
    dict per round of the history (none without one): ``round``, ``phase``, ``num_edges``,
    ``num_neurons``, ``depth``, ``metrics``, and ``pruned`` / ``added``, the sorted indices of the
    edges present before / after the round only (round 0: none).
    """

    nodes: dict[str, np.ndarray]
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    rounds: list[dict[str, Any]] = field(default_factory=list)
    image_shape: tuple[int, int] | None = None
    encoder: np.ndarray | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    title: str = "FreeNet"
    max_drawn_edges: int = MAX_DRAWN_EDGES

    @property
    def num_nodes(self) -> int:
        """Nodes of the page: the final graph's and the removed ones."""
        return int(self.nodes["id"].size)

    @property
    def num_edges(self) -> int:
        """Edges of the final graph."""
        return int(self.weight.size)

    def edge_counts(self, threshold: float) -> tuple[int, int, int]:
        """``(drawn, hidden, below)`` for the final graph at weight ``threshold``: edges drawn,
        edges with ``|w| >= threshold`` left out by the level of detail (beyond the strongest
        ``max_drawn_edges``), and edges below the threshold. The page shows the same three.

        Examples
        --------
        >>> data = ExplorerData({"id": np.arange(2)}, np.zeros(3, np.int32), np.ones(3, np.int32),
        ...                     np.array([0.5, -0.3, 0.1], np.float32), max_drawn_edges=1)
        >>> data.edge_counts(0.2)
        (1, 1, 1)
        """
        passing = int((np.abs(self.weight) >= threshold).sum())
        drawn = min(passing, self.max_drawn_edges)
        return drawn, passing - drawn, self.num_edges - passing

    def round_edges(self, k: int) -> np.ndarray:
        """Indices of the edges present after round ``k``, replayed back from the final graph
        through the edit lists (what the page does when the round slider moves)."""
        present = np.zeros(self.src.size, dtype=bool)
        present[: self.num_edges] = True
        for record in reversed(self.rounds[k + 1:]):
            present[record["added"]] = False
            present[record["pruned"]] = True
        return np.flatnonzero(present)

    def degrees(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fan-in and fan-out of every node after round ``k`` (default: the final graph)."""
        edges = np.arange(self.num_edges) if k is None else self.round_edges(k)
        return (np.bincount(self.dst[edges], minlength=self.num_nodes),
                np.bincount(self.src[edges], minlength=self.num_nodes))


def _pack(values: np.ndarray, delta: bool = False) -> dict[str, Any]:
    """A typed array for the page: ``{"type", "n", "delta", "z"}``, ``z`` the base64 of the
    zlib-compressed little-endian bytes; ``delta`` stores differences (sorted index lists
    shrink to a few bits an entry), which the page sums back."""
    values = np.ascontiguousarray(values)
    if delta:
        values = np.diff(values.astype(np.int64), prepend=0).astype(np.int32)
    kinds = {np.dtype(np.int32): "Int32", np.dtype(np.float32): "Float32", np.dtype(np.uint8): "Uint8",
             np.dtype(np.int16): "Int16"}
    raw = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
    return {"type": kinds[values.dtype], "n": int(values.size), "delta": delta,
            "z": base64.b64encode(zlib.compress(raw, 1)).decode("ascii")}


def _column_step(num_generations: int) -> float:
    return min(WIDTH / max(num_generations - 1, 1), 0.5)


def _grid_positions(graph: NCG, image_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``x``, ``y`` of each input node (in ``graph.inputs`` order) on the image grid, left of
    generation 0: pixel ``(row, col)`` of feature ``row * width + col``, square cells."""
    height, width = image_shape
    feature = np.arange(graph.num_inputs)
    cell = GRID_HEIGHT / height
    x = -GRID_GAP - width * cell + (feature % width + 0.5) * cell
    y = 0.5 - GRID_HEIGHT / 2 + (feature // width + 0.5) * cell
    return x, y


def _check_image_shape(image_shape: Sequence[int] | None, in_features: int) -> tuple[int, int] | None:
    if image_shape is None:
        return None
    if len(image_shape) != 2 or int(image_shape[0]) * int(image_shape[1]) != in_features:
        raise NCGError(f"image_shape {tuple(image_shape)} must be (height, width) with height * width = "
                       f"{in_features} (the model's input features)")
    return int(image_shape[0]), int(image_shape[1])


def _history_nodes(history: History, graph: NCG) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable ids, generations and layout edges (node indices) of the page's nodes: the
    final graph's in index order, then the neurons earlier rounds removed; checks that the
    history ends with ``graph``."""
    final = history.rounds[-1]
    ids = graph.neuron_ids.numpy()
    found = np.sort(ids[graph.edge_index.numpy()].T.copy().view(np.dtype((np.void, 16))).ravel())
    recorded = np.sort(final.edges.T.copy().view(np.dtype((np.void, 16))).ravel())
    if found.size != recorded.size or not np.array_equal(found, recorded):
        raise NCGError(f"the history's last round (round {final.round}, {final.num_edges:,} edges) is not the graph "
                       f"given ({graph.num_edges:,} edges); pass the history this graph ends")
    layout_ids, generation, edges = _layout_graph(history)
    where = np.full(int(layout_ids.max()) + 1, -1, dtype=np.int64)
    where[layout_ids] = np.arange(layout_ids.size)
    perm = np.concatenate([where[ids], np.arange(ids.size, layout_ids.size)])
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(perm.size)
    return layout_ids[perm], generation[perm], inverse[edges]


def _edge_keys(edges: np.ndarray, index: np.ndarray, num_nodes: int) -> np.ndarray:
    """Sorted keys ``src * num_nodes + dst`` of ``edges`` given in stable ids."""
    local = index[edges]
    return np.sort(local[0] * num_nodes + local[1])


def _rounds(history: History, ids: np.ndarray, final_keys: np.ndarray) -> tuple[list[dict], np.ndarray, dict]:
    """Per-round records with edit lists, the keys of the edges no longer in the final graph,
    and per-node ``born`` / ``died`` rounds."""
    num_nodes = ids.size
    index = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
    index[ids] = np.arange(num_nodes)
    keys = [_edge_keys(r.edges, index, num_nodes) for r in history.rounds]
    every = np.unique(np.concatenate(keys))
    extra = every[~is_member(every, final_keys)]
    union = np.concatenate([final_keys, extra])
    sorter = np.argsort(union, kind="stable")

    def position(values: np.ndarray) -> np.ndarray:
        return np.sort(sorter[np.searchsorted(union, values, sorter=sorter)]).astype(np.int32)

    records, previous = [], keys[0]
    present = np.zeros((len(history), num_nodes), dtype=bool)
    for k, (record, current) in enumerate(zip(history.rounds, keys)):
        present[k, index[record.order]] = True
        records.append({
            "round": record.round, "phase": record.phase, "num_edges": record.num_edges,
            "num_neurons": record.num_neurons, "depth": record.depth, "metrics": dict(record.metrics),
            "pruned": position(previous[~is_member(previous, current)]),
            "added": position(current[~is_member(current, previous)]),
        })
        previous = current
    born = present.argmax(0)
    gone = ~present & (np.arange(len(history))[:, None] > born)
    died = np.where(gone.any(0), gone.argmax(0), len(history))
    return records, extra, {"born": born.astype(np.int16), "died": died.astype(np.int16)}


def explorer_data(
    graph_or_model: NCG | FreeNet,
    history: History | None = None,
    firing_rate: np.ndarray | None = None,
    image_shape: Sequence[int] | None = None,
    summary: dict[str, Any] | None = None,
    title: str | None = None,
    max_drawn_edges: int = MAX_DRAWN_EDGES,
    sweeps: int = 4,
) -> ExplorerData:
    """The data of the explorer page of a graph, and of its run's history if given.

    Parameters
    ----------
    graph_or_model : NCG or FreeNet
        The final graph; its weights colour the edges.
    history : History, optional
        The run's rounds; its last round must be this graph.
    firing_rate : ndarray ``[N]``, optional
        Per neuron, in the graph's index order (e.g. ``Coactivation.firing_rate``).
    image_shape : (height, width), optional
        Draw the input nodes (or, for a dense encoder, the receptive fields) on this grid.
    summary : dict, optional
        The run's ``summary.json``: the page's summary panel takes the data set and the test
        accuracy from it; sizes come from the graph.
    title : str, optional
    max_drawn_edges : int
        Level of detail: the page draws at most this many edges, the strongest.
    sweeps : int
        Barycenter sweeps of the layout.

    Returns
    -------
    ExplorerData

    Raises
    ------
    NCGError
        If ``image_shape`` does not match the input features, ``firing_rate`` has another
        length than the graph's neuron count, or the history does not end with this graph.
    """
    graph = graph_of(graph_or_model, "explorer_data")
    model = graph_or_model if isinstance(graph_or_model, FreeNet) else None
    n = graph.num_neurons
    in_features = model.in_features if model is not None else graph.num_inputs
    image_shape = _check_image_shape(image_shape, in_features)
    edge_index = graph.edge_index.numpy()
    if history is not None and len(history):
        ids, generation, layout_edges = _history_nodes(history, graph)
    else:
        ids, layout_edges = graph.neuron_ids.numpy(), edge_index
        generation = topological_generations(graph.edge_index, n).numpy()
    num_nodes = ids.size
    role = np.full(num_nodes, NCG.HIDDEN, dtype=np.uint8)
    role[:n] = graph.roles.numpy()
    if history is not None:
        ever_output = np.concatenate([r.outputs for r in history.rounds])
        role[n:][is_member(ids[n:], ever_output)] = NCG.OUTPUT
    fixed_y = np.full(num_nodes, np.nan)
    grid = image_shape is not None and graph.num_inputs == in_features and graph.num_inputs > 0
    if grid:
        grid_x, grid_y = _grid_positions(graph, image_shape)
        fixed_y[graph.inputs.numpy()] = grid_y
    _, y = generation_layout(layout_edges, num_nodes, generation=generation, sweeps=sweeps, fixed_y=fixed_y)
    x = generation * _column_step(int(generation.max()) + 1)
    if grid:
        x[graph.inputs.numpy()] = grid_x
    output_index = np.full(num_nodes, -1, dtype=np.int32)
    output_index[graph.outputs.numpy()] = np.arange(graph.num_outputs)
    input_index = np.full(num_nodes, -1, dtype=np.int32)
    input_index[graph.inputs.numpy()] = np.arange(graph.num_inputs)
    bias = np.full(num_nodes, np.nan, dtype=np.float32)
    bias[:n] = (model.neuron_bias() if model is not None else graph.bias).detach().float().numpy()
    rate = np.full(num_nodes, np.nan, dtype=np.float32)
    if firing_rate is not None:
        firing_rate = np.asarray(firing_rate, dtype=np.float32).reshape(-1)
        if firing_rate.size != n:
            raise NCGError(f"firing_rate has {firing_rate.size} values, the graph {n} neurons; record it on this graph")
        rate[:n] = firing_rate
    weight = graph.weight.detach().float().numpy()
    strongest = np.argsort(-np.abs(weight), kind="stable")
    src, dst = edge_index[:, strongest]
    rounds: list[dict] = []
    lifetime = {"born": np.zeros(num_nodes, np.int16), "died": np.ones(num_nodes, np.int16)}
    if history is not None and len(history):
        rounds, extra, lifetime = _rounds(history, ids, src * num_nodes + dst)
        src = np.concatenate([src, extra // num_nodes])
        dst = np.concatenate([dst, extra % num_nodes])
    encoder = None
    if model is not None and model.encoder_kind != "graph" and image_shape is not None \
            and n * in_features <= MAX_ENCODER_VALUES:
        encoder = input_weights(model)
    stats = graph_summary(graph_or_model)
    panel = _panel(stats, summary or {}, rounds, graph)
    nodes = {"id": ids.astype(np.int32), "x": x.astype(np.float32), "y": y.astype(np.float32),
             "generation": generation.astype(np.int32), "role": role, "output_index": output_index,
             "input_index": input_index, "bias": bias, "firing_rate": rate, **lifetime}
    default_title = f"{panel.get('data set', 'FreeNet')}: {n:,} neurons, {graph.num_edges:,} edges"
    return ExplorerData(nodes=nodes, src=src.astype(np.int32), dst=dst.astype(np.int32), weight=weight[strongest],
                        rounds=rounds, image_shape=image_shape if grid or encoder is not None else None,
                        encoder=encoder, summary=panel, title=title or default_title,
                        max_drawn_edges=int(max_drawn_edges))


def _panel(stats: dict, summary: dict, rounds: list[dict], graph: NCG) -> dict[str, Any]:
    """The summary panel: label -> value (numbers stay numbers; the page formats them)."""
    panel: dict[str, Any] = {}
    if "dataset" in summary:
        panel["data set"] = summary["dataset"]
    metrics = rounds[-1]["metrics"] if rounds else {}
    for name, label in (("test_accuracy", "test accuracy"), ("val_accuracy", "validation accuracy")):
        value = summary.get(name, metrics.get(name))
        if value is not None:
            panel[label] = float(value)
            break
    panel.update({"parameters": stats["parameters"], "edges": stats["edges"], "neurons": stats["neurons"],
                  "input nodes": graph.num_inputs, "outputs": stats["outputs"], "depth": stats["depth"],
                  "generations": stats["generations"]})
    if rounds:
        panel["rounds"] = len(rounds)
    return panel


def _payload(data: ExplorerData) -> dict[str, Any]:
    """The page's JSON: the summary and sizes as they are, the arrays packed (:func:`_pack`)."""
    return {
        "title": data.title,
        "summary": data.summary,
            "imageShape": list(data.image_shape) if data.image_shape else None,
        "cell": GRID_HEIGHT / data.image_shape[0] if data.image_shape else 0,
        "maxDrawnEdges": data.max_drawn_edges,
        "numEdges": data.num_edges,
        "nodes": {name: _pack(values) for name, values in data.nodes.items()},
        "src": _pack(data.src),
        "dst": _pack(data.dst),
        "weight": _pack(data.weight.astype(np.float32)),
        "rounds": [{**{k: v for k, v in r.items() if k not in ("pruned", "added")},
                    "pruned": _pack(r["pruned"], delta=True), "added": _pack(r["added"], delta=True)}
                   for r in data.rounds],
        "encoder": None if data.encoder is None else {
            "rows": int(data.encoder.shape[0]), "cols": int(data.encoder.shape[1]),
            "values": _pack(data.encoder.astype(np.float32))},
    }


def write_explorer(data: ExplorerData, path: str | os.PathLike) -> Path:
    """Write the page of ``data`` to ``path`` (one HTML file; the folder is created)."""
    path = Path(path)
    text = (PAGE / "page.html").read_text()
    payload = json.dumps(_payload(data), separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    for key, value in (("STYLE", (PAGE / "page.css").read_text()), ("SCRIPT", (PAGE / "page.js").read_text()),
                       ("TITLE", _escape(data.title)), ("DATA", payload)):
        text = text.replace("{{" + key + "}}", value)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _image_shape(config: dict, extra: dict, in_features: int) -> tuple[int, int] | None:
    for source in (extra, config):
        shape = source.get("image_shape")
        if shape and len(shape) == 2 and shape[0] * shape[1] == in_features:
            return int(shape[0]), int(shape[1])
    side = math.isqrt(in_features)
    return (side, side) if side * side == in_features and side > 1 else None


def _load(source: str | os.PathLike) -> tuple[FreeNet, dict[str, Any], Path]:
    """The model and the keyword arguments of :func:`explorer_data` read from a run folder or
    a graph file (``.pt`` checkpoint or ``.graphml``), and the default page path."""
    source = Path(source)
    if source.is_dir():
        folder = RunFolder(source)
        model, extra, found = folder.load_model()
        if model is None:
            raise NCGError(f"run folder {source} holds no model.pt or graph.graphml to explore")
        config = folder.read_config() if folder.file("config.json").is_file() else {}
        coactivation = folder.load_coactivation()
        kwargs = {
            "history": folder.load_history(),
            "firing_rate": coactivation.firing_rate if coactivation is not None
            and coactivation.num_neurons == model.num_neurons else None,
            "image_shape": _image_shape(config, extra, model.in_features),
            "summary": folder.read_summary() if folder.file("summary.json").is_file() else None,
        }
        return model, kwargs, source / "explorer.html"
    if source.suffix == ".graphml":
        model, extra = read_graphml(source), {}
    elif source.suffix == ".pt":
        model, extra = load_freenet(source, map_location="cpu")
    elif not source.exists():
        raise NCGError(f"{source} does not exist: give a run folder, a .pt checkpoint or a .graphml file")
    else:
        raise NCGError(f"{source} is neither a run folder, a .pt checkpoint nor a .graphml file")
    return model, {"image_shape": _image_shape({}, extra, model.in_features)}, source.with_suffix(".html")


def explore(
    net_or_run: NCG | FreeNet | str | os.PathLike,
    path: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Path:
    """Write the explorer page of a graph, a model, a run folder or a graph file.

    Parameters
    ----------
    net_or_run : NCG, FreeNet, str or PathLike
        A graph or model, or the path of a run folder (its model, history, firing rates,
        image shape and summary are read) or of a ``.pt`` checkpoint or ``.graphml`` file.
    path : str or PathLike, optional
        The HTML file; default ``RUN/explorer.html`` for a run folder, the graph file with the
        suffix ``.html``. Required for a graph or model.
    **kwargs
        Passed to :func:`explorer_data` (they override what a run folder gives).

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile
    >>> from ncg import NCG
    >>> page = explore(NCG.random_dag(10, density=0.5, seed=0), Path(tempfile.mkdtemp()) / "net.html")
    >>> page.read_text().startswith("<!DOCTYPE html>")
    True
    """
    if isinstance(net_or_run, (NCG, FreeNet)):
        if path is None:
            raise NCGError("explore needs a path for the page of a graph or model, e.g. explore(net, 'net.html')")
        return write_explorer(explorer_data(net_or_run, **kwargs), path)
    model, found, default = _load(net_or_run)
    return write_explorer(explorer_data(model, **{**found, **kwargs}), path or default)
