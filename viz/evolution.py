"""Replay a Free-Evolve run: one frame per round, and the curves of size, depth and accuracy.

Every frame uses the same neuron positions (neurons keyed by their stable ids), laid out by
generation in the run's final graph (:func:`evolution_layout`), so a neuron stays put while edges
disappear (red, dashed) and appear (green) around it. Large graphs are drawn from a fixed random
sample of at most ``max_neurons`` neurons (all outputs included) and of the edges among them, the
same in every frame, at most ``max_edges`` of each kind per frame. Replaying the edges is
vectorised (sorted edge keys per round), O(E log E) per round.

Examples
--------
>>> from ncg import NCG
>>> from ncg.evolve.history import History
>>> history = History()
>>> _ = history.append_graph(NCG.complete(4, seed=0))
>>> _ = history.append_graph(NCG.random_dag(4, num_edges=4, seed=0))
>>> [frame.pruned.shape[1] for frame in evolution_frames(history)]
[0, 2]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator
from PIL import Image

from ncg.arrays import is_member
from ncg.errors import NCGError
from ncg.evolve.history import History, RoundRecord
from ncg.figure import new_figure, save_figure
from ncg.schedule import topological_generations
from viz.layout import arc_y_range, edge_paths, generation_layout
from viz.sample import MAX_NEURONS, induced_edges, sample_caption, sample_neurons
from viz.topology import draw_neurons, edge_style, neuron_handles

__all__ = ["Frame", "evolution_frames", "evolution_layout", "draw_frame", "render_evolution", "plot_evolution_summary"]

KEPT_COLOR, PRUNED_COLOR, ADDED_COLOR = "#8c8c8c", "#d62728", "#2ca02c"


@dataclass(frozen=True)
class Frame:
    """What changed in one round, in stable neuron ids.

    ``kept``, ``pruned`` and ``added`` are ``[2, *]`` edge arrays: edges present before and
    after the round, present before only, present after only (round 0 keeps every edge).
    ``neurons``, ``outputs``, ``inputs`` (input nodes), ``removed_neurons`` and ``added_neurons``
    are id arrays. Frames of
    a neuron sample hold only those neurons and the edges among them; the ``num_*`` counts are
    those of the whole graph.
    """

    record: RoundRecord
    kept: np.ndarray
    pruned: np.ndarray
    added: np.ndarray
    neurons: np.ndarray
    outputs: np.ndarray
    inputs: np.ndarray
    removed_neurons: np.ndarray
    added_neurons: np.ndarray
    num_pruned: int
    num_added: int
    num_removed_neurons: int
    num_added_neurons: int


def _id_base(history: History) -> int:
    """One more than the largest stable neuron id of ``history``."""
    return 1 + max((int(np.max(r.order, initial=0)) for r in history.rounds), default=0)


def _edge_array(record: RoundRecord) -> np.ndarray:
    """The edges ``[2, E]`` of a round, in stable ids."""
    return np.asarray(record.edges, dtype=np.int64).reshape(2, -1)


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct ``values``, by sorting (``np.unique`` takes a hash path in numpy >= 2.3 that
    is some 50 times slower on a million int64 edge keys)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def _in_sorted(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``sorted_set`` (sorted, distinct), by binary search.

    Examples
    --------
    >>> _in_sorted(np.array([3, 1, 4]), np.array([1, 3, 5])).tolist()
    [True, True, False]
    """
    if sorted_set.size == 0:
        return np.zeros(values.shape, dtype=bool)
    return sorted_set[np.minimum(np.searchsorted(sorted_set, values), sorted_set.size - 1)] == values


def _drawn_edges(keys: np.ndarray, base: int, drawn: np.ndarray) -> np.ndarray:
    """Edges ``[2, *]`` of the keys ``source * base + target`` whose two ends are ``drawn``."""
    edges = np.stack([keys // base, keys % base])
    return edges[:, drawn[edges[0]] & drawn[edges[1]]]


def evolution_frames(history: History, neurons: np.ndarray | None = None) -> list[Frame]:
    """One :class:`Frame` per round of ``history``: edges kept, pruned and added.

    Parameters
    ----------
    history : History
    neurons : ndarray of int, optional
        Stable ids: the frames then hold only these neurons and the edges among them (their
        ``num_*`` counts stay those of the whole graph). Default: every neuron.

    Returns
    -------
    list of Frame

    Examples
    --------
    >>> from ncg import NCG
    >>> history = History()
    >>> _ = history.append_graph(NCG.complete(4, seed=0))
    >>> [frame.kept.tolist() for frame in evolution_frames(history, neurons=np.array([0, 2, 3]))]
    [[[0, 0, 2], [2, 3, 3]]]
    """
    base = _id_base(history)
    drawn = np.ones(base, dtype=bool) if neurons is None else is_member(np.arange(base), neurons)
    frames, before_edges, before_neurons = [], None, None
    for record in history.rounds:
        edges = _edge_array(record)
        keys = _distinct(edges[0] * base + edges[1])
        order = np.asarray(record.order, dtype=np.int64)
        neurons_now = _distinct(order)
        if before_edges is None:
            before_edges, before_neurons = keys, neurons_now
        stays = _in_sorted(before_edges, keys)
        pruned, added = before_edges[~stays], keys[~_in_sorted(keys, before_edges)]
        removed_neurons = before_neurons[~_in_sorted(before_neurons, neurons_now)]
        added_neurons = neurons_now[~_in_sorted(neurons_now, before_neurons)]
        outputs = np.asarray(record.outputs, dtype=np.int64)
        inputs = np.asarray(record.inputs, dtype=np.int64)
        frames.append(Frame(
            record=record,
            kept=_drawn_edges(before_edges[stays], base, drawn),
            pruned=_drawn_edges(pruned, base, drawn),
            added=_drawn_edges(added, base, drawn),
            neurons=order[drawn[order]],
            outputs=outputs[drawn[outputs]],
            inputs=inputs[drawn[inputs]],
            removed_neurons=removed_neurons[drawn[removed_neurons]],
            added_neurons=added_neurons[drawn[added_neurons]],
            num_pruned=pruned.size,
            num_added=added.size,
            num_removed_neurons=removed_neurons.size,
            num_added_neurons=added_neurons.size,
        ))
        before_edges, before_neurons = keys, neurons_now
    return frames


def _place_after_predecessors(generation: np.ndarray, num_new: int, edges: np.ndarray) -> np.ndarray:
    """``generation`` extended by ``num_new`` nodes, each one generation after its furthest
    predecessor along ``edges`` (0 without one); relaxed until stable, as new nodes may feed new nodes.

    Examples
    --------
    >>> _place_after_predecessors(np.array([0, 1]), 2, np.array([[1, 2], [2, 3]])).tolist()
    [0, 1, 2, 3]
    """
    start = generation.size
    out = np.concatenate([generation, np.zeros(num_new, dtype=np.int64)])
    into = edges[:, edges[1] >= start]
    while True:
        placed = np.zeros(num_new, dtype=np.int64)
        np.maximum.at(placed, into[1] - start, out[into[0]] + 1)
        if np.array_equal(placed, out[start:]):
            return out
        out[start:] = placed


def _layout_graph(history: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every neuron id of ``history``, its generation, and the edges to lay them out by.

    The final round's neurons come first with their generations and edges; then, latest round
    first, the neurons that round still had, one generation after their furthest predecessor
    in it, with its edges touching them. Edges are in positions of the returned ids.
    """
    final = history.rounds[-1]
    index = np.full(_id_base(history), -1, dtype=np.int64)
    ids = np.asarray(final.order, dtype=np.int64)
    index[ids] = np.arange(ids.size)
    edges = [index[_edge_array(final)]]
    generation = topological_generations(torch.from_numpy(edges[0]), ids.size).numpy()
    for record in reversed(history.rounds[:-1]):
        order = np.asarray(record.order, dtype=np.int64)
        removed = order[index[order] < 0]
        if not removed.size:
            continue
        start = ids.size
        index[removed] = start + np.arange(removed.size)
        ids = np.concatenate([ids, removed])
        round_edges = index[_edge_array(record)]
        edges.append(round_edges[:, (round_edges >= start).any(0)])
        generation = _place_after_predecessors(generation, removed.size, edges[-1])
    return ids, generation, np.concatenate(edges, axis=1)


def evolution_layout(
    history: History, sweeps: int = 4, max_neurons: int | None = None, seed: int = 0
) -> dict[int, tuple[float, float]]:
    """Positions ``{neuron id: (x, y)}`` shared by every frame, from the **final** round's graph.

    ``x`` is a neuron's topological generation in the last round's graph, so the frames show the
    structure the run ends with (a complete DAG at round 0 would put every neuron in its own
    generation, on one line). A neuron removed earlier is placed as if it were still there: one
    generation after the furthest of its predecessors in the last round it existed. ``y`` orders
    the neurons of each generation by the barycenter sweeps of
    :func:`~viz.layout.generation_layout` over the final edges plus each removed neuron's edges
    in its last round. Vectorised: O(N + E) per round.

    Parameters
    ----------
    history : History
    sweeps : int, default 4
    max_neurons : int or None, default None
        Place only a fixed random sample of this many neurons, every round's outputs included
        (:func:`~viz.sample.sample_neurons`), ordered by the edges among them. ``None``: all.
    seed : int, default 0
        Seed of that sample.

    Examples
    --------
    >>> from ncg import NCG
    >>> history = History()
    >>> _ = history.append_graph(NCG.complete(50, num_outputs=2, seed=0))
    >>> layout = evolution_layout(history, max_neurons=10)
    >>> len(layout), {48, 49} <= set(layout)
    (10, True)
    """
    ids, generation, edges = _layout_graph(history)
    outputs = np.concatenate([np.asarray(r.outputs, dtype=np.int64) for r in history.rounds])
    neurons = sample_neurons(ids.size, max_neurons, keep=np.flatnonzero(is_member(ids, outputs)), seed=seed)
    _, local = induced_edges(edges, ids.size, neurons)
    x, y = generation_layout(local, neurons.size, generation=generation[neurons], sweeps=sweeps)
    return dict(zip(ids[neurons].tolist(), zip(x.tolist(), y.tolist())))


def _points(xy: dict, neurons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` of the neuron ids ``neurons`` in the layout ``xy``."""
    coords = np.array([xy[v] for v in neurons.tolist()], dtype=np.float64).reshape(-1, 2)
    return coords[:, 0], coords[:, 1]


def _edge_points(xy: dict, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x``, ``y`` of the neurons on ``edges`` ``[2, E]`` (ids), and the edges' ends as indices into them."""
    ends, inverse = np.unique(edges, return_inverse=True)
    x, y = _points(xy, ends)
    src, dst = inverse.reshape(2, -1)
    return x, y, src, dst


def _draw_edges(ax: Axes, xy: dict, edges: np.ndarray, color: str, width: float, alpha: float,
                max_span: float, linestyle: str = "solid", zorder: int = 2) -> None:
    if edges.shape[1] == 0:
        return
    paths = edge_paths(*_edge_points(xy, edges), max_span=max_span)
    ax.add_collection(LineCollection(paths, colors=color, linewidths=width, alpha=alpha, linestyles=linestyle,
                                     zorder=zorder))


def _unit_hash(edges: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random number in ``[0, 1)`` per edge ``(source id, target id)`` (splitmix64)."""
    z = (edges[0].astype(np.uint64) << np.uint64(32)) ^ edges[1].astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _subsample(edges: np.ndarray, rate: float) -> np.ndarray:
    """The edges whose fixed hash is below ``rate``: the same edge is drawn in every frame."""
    if rate >= 1.0 or edges.shape[1] == 0:
        return edges
    return edges[:, _unit_hash(edges) < rate]


EDGE_KINDS = ("kept", "pruned", "added")


def _sample_rates(frames: list[Frame], max_edges: int | None) -> dict[str, float]:
    """Per edge kind, the fraction drawn in every frame: at most ``max_edges`` in the busiest one.

    Kept and pruned edges share one rate, so the red edges of a frame are the grey ones of the
    previous frame that went, and their proportion is the true one; added edges (usually few)
    get their own. ``"<kind>_drawn"`` is about how many edges of a kind the busiest frame draws.
    """
    largest = {kind: max((getattr(frame, kind).shape[1] for frame in frames), default=0) for kind in EDGE_KINDS}
    rates = {}
    for kinds in (("kept", "pruned"), ("added",)):
        most = max(largest[kind] for kind in kinds)
        rate = 1.0 if max_edges is None or most <= max_edges else max_edges / most
        for kind in kinds:
            rates[kind] = rate
            rates[f"{kind}_drawn"] = rate * largest[kind]
    return rates


def _rate_text(rate: float) -> str:
    return "all" if rate >= 1.0 else f"{100 * rate:.2g}%"


def _metric_text(metrics: dict) -> str:
    for name in ("val_accuracy", "train_accuracy", "val_loss", "train_loss"):
        if name in metrics:
            return f", {name.replace('_', ' ')} {metrics[name]:.3f}"
    return ""


def _extent(frames: list[Frame], xy: dict) -> tuple[float, float, float, float, float]:
    """Axis limits covering every neuron of ``xy`` and the arcs of every edge of the frames
    (round 0's and every added one), and the longest edge span."""
    x, y = _points(xy, np.fromiter(xy, dtype=np.int64, count=len(xy)))
    edges = np.concatenate([frames[0].kept, *(frame.added for frame in frames)], axis=1)
    max_span, low, high = 1.0, 0.0, 1.0
    if edges.size:
        edge_x, edge_y, src, dst = _edge_points(xy, edges)
        max_span = float(np.abs(edge_x[dst] - edge_x[src]).max())
        low, high = arc_y_range(edge_x, edge_y, src, dst, max_span=max_span)
    low, high = min(float(y.min()), low), max(float(y.max()), high)
    pad_x, pad_y = 0.03 * max(x.max() - x.min(), 1.0), 0.05 * (high - low)
    return x.min() - pad_x, x.max() + pad_x, low - pad_y, high + pad_y, max_span


def draw_frame(ax: Axes, frame: Frame, xy: dict, extent: tuple, max_edges: int | None = 3000,
               rates: dict[str, float] | None = None) -> None:
    """Draw one round: kept edges grey, pruned red dashed, added green, neurons by role (input
    nodes, hidden and output neurons marked as in :func:`~viz.topology.draw_topology`).

    ``extent`` is ``(x_min, x_max, y_min, y_max, max_span)`` shared by all frames. ``rates``
    gives, per kind (``"kept"``, ``"pruned"``, ``"added"``), the fraction of edges drawn, a fixed
    pseudo-random subset chosen by hashing each edge's ids; by default each kind is capped at
    ``max_edges`` in this frame. :func:`render_evolution` passes rates shared by all frames, so
    the drawn density follows the real edge count, and a kept edge drawn in one frame stays
    drawn until it is pruned, then shows red. A frame of a neuron sample (see
    :func:`evolution_frames`) says so in its title.
    """
    record = frame.record
    max_span = extent[4]
    if rates is None:
        rates = _sample_rates([frame], max_edges)
    kept = _subsample(frame.kept, rates["kept"])
    pruned = _subsample(frame.pruned, rates["pruned"])
    added = _subsample(frame.added, rates["added"])
    # Line style for the most kept edges any frame draws, so that sparser frames look sparser.
    width, alpha = edge_style(max(int(rates.get("kept_drawn", kept.shape[1])), 1))
    _draw_edges(ax, xy, kept, KEPT_COLOR, width, alpha, max_span)
    _draw_edges(ax, xy, pruned, PRUNED_COLOR, width, min(1.0, 2 * alpha), max_span, linestyle="--", zorder=3)
    added_width, added_alpha = edge_style(max(int(rates.get("added_drawn", added.shape[1])), 1))
    _draw_edges(ax, xy, added, ADDED_COLOR, float(np.clip(added_width, 0.7, 1.2)), max(added_alpha, 0.7), max_span,
                zorder=4)
    is_input = is_member(frame.neurons, frame.inputs)
    draw_neurons(ax, *_points(xy, frame.neurons), is_member(frame.neurons, frame.outputs), labels=frame.neurons,
                 is_input=is_input)
    for neurons, color, marker in ((frame.removed_neurons, PRUNED_COLOR, "x"),
                                   (frame.added_neurons, ADDED_COLOR, "+")):
        if neurons.size:
            ax.scatter(*_points(xy, neurons), s=60, c=color, marker=marker, linewidths=1.5, zorder=5)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks([])
    ax.set_xlabel("topological generation in the final round's graph")
    ax.set_ylabel("position within generation")
    sampled = any(rates[kind] < 1.0 for kind in EDGE_KINDS)
    shown = "; a fixed random sample of each edge kind drawn" if sampled else ""
    if frame.neurons.size < record.num_neurons:
        shown += f"\n{sample_caption(frame.neurons.size, record.num_neurons)}, with edges among them"
    changes = (f"{frame.num_pruned:,} edges pruned, {frame.num_added:,} added; "
               f"{frame.num_removed_neurons:,} neurons removed, {frame.num_added_neurons:,} added")
    if record.round == 0 and not (frame.num_pruned or frame.num_added):
        changes = "starting graph"
    ax.set_title(
        f"round {record.round}: {record.num_edges:,} edges, {record.num_neurons:,} neurons, depth {record.depth}"
        f"{_metric_text(record.metrics)}\n{changes}{shown}",
        fontsize=10,
    )
    handles = [
        Line2D([], [], color=KEPT_COLOR, lw=1.5, label=f"kept edge ({_rate_text(rates['kept'])} drawn)"),
        Line2D([], [], color=PRUNED_COLOR, lw=1.5, linestyle="--",
               label=f"pruned this round ({_rate_text(rates['pruned'])} drawn)"),
        Line2D([], [], color=ADDED_COLOR, lw=1.5, label=f"added this round ({_rate_text(rates['added'])} drawn)"),
        *neuron_handles(bool(is_input.any())),
        Line2D([], [], linestyle="", marker="x", color=PRUNED_COLOR, markersize=7, label="neuron removed"),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=8,
              frameon=False)


def render_evolution(
    history: History,
    out_dir: str | os.PathLike,
    gif: bool = True,
    png_strip: bool = True,
    figsize: tuple[float, float] = (10, 6),
    dpi: int = 80,
    max_edges: int | None = 3000,
    frame_ms: int = 800,
    max_neurons: int | None = MAX_NEURONS,
    seed: int = 0,
) -> list[Path]:
    """Render one frame per round as an animated GIF and / or a strip of PNGs.

    Parameters
    ----------
    history : History
    out_dir : str or PathLike
        Receives ``evolution.gif`` and ``frame_000.png``, ``frame_001.png``, ...
    gif, png_strip : bool
        Which outputs to write.
    figsize, dpi
        Frame size: ``figsize * dpi`` pixels.
    max_edges : int or None, default 3000
        At most this many kept / pruned / added edges per frame, among the drawn neurons. Each
        kind is drawn at one rate in all frames (``max_edges`` over that kind's largest count), on
        a fixed pseudo-random subset of edges (kept and pruned edges share their rate), so the
        drawn density follows the real one and edges do not flicker between frames; the legend
        gives each rate. ``None`` draws every edge.
    frame_ms : int
        GIF frame duration in milliseconds (the last frame shows three times as long).
    max_neurons : int or None, default 3000
        A run with more neurons is drawn from a fixed random sample of this many, every round's
        outputs included, the same in every frame (:func:`evolution_layout`); the titles say so.
        ``None`` draws every neuron.
    seed : int, default 0
        Seed of that sample.

    Returns
    -------
    list of Path
        The files written: the GIF first, then the frames.
    """
    if len(history) == 0:
        raise NCGError("render_evolution needs a history with at least one round")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    xy = evolution_layout(history, max_neurons=max_neurons, seed=seed)
    frames = evolution_frames(history, neurons=np.fromiter(xy, dtype=np.int64, count=len(xy)))
    extent = _extent(frames, xy)
    rates = _sample_rates(frames, max_edges)
    images, frame_paths = [], []
    for frame in frames:
        fig, ax = new_figure(figsize, dpi)
        draw_frame(ax, frame, xy, extent, max_edges, rates)
        fig.canvas.draw()
        image = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
        images.append(image)
        if png_strip:
            frame_path = out_dir / f"frame_{frame.record.round:03d}.png"
            image.save(frame_path)
            frame_paths.append(frame_path)
    written = []
    if gif:
        gif_path = out_dir / "evolution.gif"
        durations = [frame_ms] * (len(images) - 1) + [3 * frame_ms]
        images[0].save(gif_path, save_all=True, append_images=images[1:], duration=durations, loop=0)
        written.append(gif_path)
    return written + frame_paths


def _plot_series(ax: Axes, rounds: np.ndarray, values: dict[str, list], styles: dict | None = None) -> list:
    lines = []
    for name, series in values.items():
        y = np.array(series, dtype=float)
        if np.isfinite(y).any():
            lines += ax.plot(rounds, y, marker="o", markersize=3, label=name.replace("_", " "),
                             **(styles or {}).get(name, {}))
    return lines


_LEGEND_SPOTS = {  # loc: its box (x0, y0, x1, y1) in axes fraction for a legend of size w x h
    "upper left": lambda w, h: (0, 1 - h, w, 1),
    "upper right": lambda w, h: (1 - w, 1 - h, 1, 1),
    "lower left": lambda w, h: (0, 0, w, h),
    "lower right": lambda w, h: (1 - w, 0, 1, h),
    "center left": lambda w, h: (0, 0.5 - h / 2, w, 0.5 + h / 2),
    "center right": lambda w, h: (1 - w, 0.5 - h / 2, 1, 0.5 + h / 2),
    "upper center": lambda w, h: (0.5 - w / 2, 1 - h, 0.5 + w / 2, 1),
    "lower center": lambda w, h: (0.5 - w / 2, 0, 0.5 + w / 2, h),
}


def _artist_points(ax: Axes) -> np.ndarray:
    """Points ``[P, 2]`` in axes fraction covering the lines, bars and texts drawn on ``ax``."""
    ax.autoscale_view()
    to_axes = ax.transScale + ax.transLimits
    points = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        xy = xy[np.isfinite(xy).all(1)]
        if len(xy) == 0:
            continue
        frac = to_axes.transform(xy)
        t = np.linspace(0, 1, 16)[:, None, None]
        points.append(frac[:1])
        if len(frac) > 1:  # sample along each segment, not only at the markers
            points.append(((1 - t) * frac[:-1] + t * frac[1:]).reshape(-1, 2))
    for patch in ax.patches:
        x0, y0 = patch.get_x(), max(patch.get_y(), 1e-300) if ax.get_yscale() == "log" else patch.get_y()
        x1, y1 = x0 + patch.get_width(), patch.get_y() + patch.get_height()
        corners = to_axes.transform([[x0, y0], [x1, y1]])
        gx, gy = np.meshgrid(np.linspace(corners[0, 0], corners[1, 0], 3), np.linspace(corners[0, 1], corners[1, 1], 8))
        points.append(np.stack([gx.ravel(), gy.ravel()], 1))
    for text in ax.texts:  # bar labels: a short column above their anchor
        anchor = to_axes.transform([text.get_position()])[0]
        points.append(anchor + np.outer(np.linspace(0, 0.12, 4), [0, 1]))
    return np.concatenate(points) if points else np.zeros((0, 2))


def _legend(ax: Axes, handles: list, data_axes: tuple[Axes, ...] = (), **kwargs) -> None:
    """A legend in the corner or side of ``ax`` that covers the fewest data points of ``ax`` and of
    ``data_axes`` (twin axes, which ``loc="best"`` would ignore); if every spot covers some, the
    y ranges grow to free a band at the top for it."""
    columns = kwargs.get("ncol", 1)
    width = min(0.98, columns * (0.1 + 0.017 * max(len(h.get_label()) for h in handles)))
    height = 0.04 + 0.075 * -(-len(handles) // columns)

    def place() -> tuple[str, int]:
        points = np.clip(np.concatenate([_artist_points(a) for a in (ax, *data_axes)]), -0.01, 1.01)
        best, fewest = "upper left", None
        for loc, box in _LEGEND_SPOTS.items():
            x0, y0, x1, y1 = box(width, height)
            inside = int(((points[:, 0] >= x0) & (points[:, 0] <= x1)
                          & (points[:, 1] >= y0) & (points[:, 1] <= y1)).sum())
            if fewest is None or inside < fewest:
                best, fewest = loc, inside
        return best, fewest

    best, fewest = place()
    if fewest and height < 0.6:
        for a in (ax, *data_axes):
            low, high = a.get_ylim()
            if a.get_yscale() == "log":
                a.set_ylim(low, low * (high / low) ** (1 / (1 - height - 0.03)))
            else:
                a.set_ylim(low, low + (high - low) / (1 - height - 0.03))
        best, _ = place()
    legend = ax.legend(handles=handles, loc=best, fontsize=8, framealpha=0.85, **kwargs)
    legend.set_zorder(10)


def _thousands(ax: Axes) -> None:
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))


def plot_evolution_summary(
    history: History,
    path: str | os.PathLike | None = None,
    figsize: tuple[float, float] = (12, 8),
    dpi: int = 100,
) -> Figure:
    """Per-round curves of a run in four panels.

    Panels: edges (left axis) and neurons (right axis); depth (longest path, left axis) and mean
    neurons per generation (right axis); edits per round (edges pruned / added, neurons removed /
    added) as bars on a log scale, each labelled with its count; accuracies (solid, left axis) and
    losses (dashed, right axis) from each round's metrics. Metrics missing in a round (e.g. round
    0) leave a gap. Each legend sits where it hides the fewest points of its panel.
    """
    if len(history) == 0:
        raise NCGError("plot_evolution_summary needs a history with at least one round")
    records = history.rounds
    rounds = np.array([r.round for r in records])
    fig, axes = new_figure(figsize, dpi, 2, 2, sharex=True)
    (size_ax, depth_ax), (edit_ax, metric_ax) = axes

    edges = _plot_series(size_ax, rounds, {"edges": [r.num_edges for r in records]}, {"edges": {"color": "C0"}})
    neuron_ax = size_ax.twinx()
    neurons = _plot_series(neuron_ax, rounds, {"neurons": [r.num_neurons for r in records]},
                           {"neurons": {"color": "C1", "linestyle": "--"}})
    size_ax.set_ylabel("edges")
    neuron_ax.set_ylabel("neurons (dashed)")
    _thousands(size_ax)
    neuron_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _thousands(neuron_ax)
    _legend(size_ax, edges + neurons, (neuron_ax,))
    size_ax.set_title("Graph size")

    # generations = depth + 1 always, so the right axis shows the width instead.
    depth = _plot_series(depth_ax, rounds, {"depth (longest path)": [r.depth for r in records]},
                         {"depth (longest path)": {"color": "C2"}})
    width_ax = depth_ax.twinx()
    width = _plot_series(width_ax, rounds,
                         {"neurons per generation": [r.num_neurons / max(r.num_generations, 1) for r in records]},
                         {"neurons per generation": {"color": "C4", "linestyle": "--"}})
    depth_ax.set_ylabel("depth (edges on the longest path)")
    depth_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    _thousands(depth_ax)
    width_ax.set_ylabel("mean neurons per generation (dashed)")
    _legend(depth_ax, depth + width, (width_ax,))
    depth_ax.set_title("Depth")

    bar_width = 0.2
    counts = {}
    for k, (op, label, color) in enumerate((
        ("prune_edge", "edges pruned", "#d62728"), ("add_edge", "edges added", "#2ca02c"),
        ("remove_neuron", "neurons removed", "#9467bd"), ("add_neuron", "neurons added", "#17becf"),
    )):
        values = np.array([r.count(op) for r in records])
        counts[label] = values
        shown = values > 0
        bars = edit_ax.bar(rounds[shown] + (k - 1.5) * bar_width, values[shown], bar_width, label=label, color=color)
        if shown.any():
            edit_ax.bar_label(bars, labels=[f"{v:,}" for v in values[shown]], rotation=90, fontsize=7, padding=2)
    edit_ax.set_yscale("log")
    largest = max((int(v.max()) for v in counts.values()), default=0)
    edit_ax.set_ylim(0.7, max(largest, 1) * 200)  # headroom: the tallest count label ends below the legend
    edit_ax.set_ylabel("edits applied (log scale)")
    edit_handles = [Patch(color=c, label=l) for l, c in zip(counts, ("#d62728", "#2ca02c", "#9467bd", "#17becf"))]
    _legend(edit_ax, edit_handles, ncol=2)
    edit_ax.set_title("Edits per round")

    names = sorted({name for r in records for name in r.metrics})
    accuracy = {name: [r.metrics.get(name, np.nan) for r in records] for name in names if "acc" in name}
    losses = {name: [r.metrics.get(name, np.nan) for r in records] for name in names if "loss" in name}
    lines = _plot_series(metric_ax, rounds, accuracy)
    metric_ax.set_ylabel("accuracy")
    twins: tuple[Axes, ...] = ()
    if losses:
        loss_ax = metric_ax.twinx()
        loss_styles = {name: {"linestyle": "--", "color": f"C{k + len(accuracy)}"} for k, name in enumerate(losses)}
        lines += _plot_series(loss_ax, rounds, losses, loss_styles)
        loss_ax.set_ylabel("loss (dashed)")
        twins = (loss_ax,)
    if lines:
        _legend(metric_ax, lines, twins, ncol=2 if len(lines) > 3 else 1)
    else:
        metric_ax.text(0.5, 0.5, "no metrics recorded", ha="center", va="center", transform=metric_ax.transAxes)
    metric_ax.set_title("Training metrics")
    for ax in (edit_ax, metric_ax):
        ax.set_xlabel("round")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    evolved = sum(record.phase == "evolve" for record in records)  # as summary.json counts them
    fig.suptitle(f"Free-Evolve run: {evolved} rounds{' + fine-tuning' if records[-1].phase == 'finetune' else ''}, "
                 f"{records[0].num_edges:,} -> {records[-1].num_edges:,} edges")
    save_figure(fig, path)
    return fig
