"""Replay a Free-Evolve run: one frame per round, and the curves of size, depth and accuracy.

Every frame uses the same neuron positions (neurons keyed by their stable ids), laid out by
generation in the run's final graph (:func:`evolution_layout`), so a neuron stays put while edges
disappear (red, dashed) and appear (green) around it. Large graphs are drawn from a fixed random
sample of edges, the same in every frame, at most ``max_edges`` of each kind per frame.

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

from ncg.errors import NCGError
from ncg.evolve.history import History, RoundRecord
from ncg.schedule import topological_generations
from viz.figure import HIDDEN_STYLE, OUTPUT_STYLE, new_figure, save_figure
from viz.layout import edge_paths, generation_layout
from viz.topology import draw_neurons, edge_style

__all__ = ["Frame", "evolution_frames", "evolution_layout", "draw_frame", "render_evolution", "plot_evolution_summary"]

KEPT_COLOR, PRUNED_COLOR, ADDED_COLOR = "#8c8c8c", "#d62728", "#2ca02c"


@dataclass(frozen=True)
class Frame:
    """What changed in one round, in stable neuron ids.

    ``kept``, ``pruned`` and ``added`` are ``[2, *]`` edge arrays: edges present before and
    after the round, present before only, present after only (round 0 keeps every edge).
    ``neurons``, ``outputs``, ``removed_neurons`` and ``added_neurons`` are id arrays.
    """

    record: RoundRecord
    kept: np.ndarray
    pruned: np.ndarray
    added: np.ndarray
    neurons: np.ndarray
    outputs: np.ndarray
    removed_neurons: np.ndarray
    added_neurons: np.ndarray


def _edge_keys(edges: list[list[int]], base: int) -> np.ndarray:
    src, dst = np.asarray(edges, dtype=np.int64).reshape(2, -1)
    return src * base + dst


def _keys_to_edges(keys: np.ndarray, base: int) -> np.ndarray:
    return np.stack([keys // base, keys % base])


def evolution_frames(history: History) -> list[Frame]:
    """One :class:`Frame` per round of ``history``: edges kept, pruned and added."""
    base = 1 + max((max(r.order, default=0) for r in history.rounds), default=0)
    frames, before_edges, before_neurons = [], None, None
    for record in history.rounds:
        keys = _edge_keys(record.edges, base)
        neurons = np.asarray(record.order, dtype=np.int64)
        if before_edges is None:
            before_edges, before_neurons = keys, neurons
        frames.append(Frame(
            record=record,
            kept=_keys_to_edges(np.intersect1d(keys, before_edges), base),
            pruned=_keys_to_edges(np.setdiff1d(before_edges, keys), base),
            added=_keys_to_edges(np.setdiff1d(keys, before_edges), base),
            neurons=neurons,
            outputs=np.asarray(record.outputs, dtype=np.int64),
            removed_neurons=np.setdiff1d(before_neurons, neurons),
            added_neurons=np.setdiff1d(neurons, before_neurons),
        ))
        before_edges, before_neurons = keys, neurons
    return frames


def evolution_layout(history: History, sweeps: int = 4) -> dict[int, tuple[float, float]]:
    """Positions ``{neuron id: (x, y)}`` shared by every frame, from the **final** round's graph.

    ``x`` is a neuron's topological generation in the last round's graph, so the frames show the
    structure the run ends with (a complete DAG at round 0 would put every neuron in its own
    generation, on one line). A neuron removed earlier is placed as if it were still there: one
    generation after the furthest of its predecessors in the last round it existed (neurons are
    placed latest round first, so those predecessors already have a place). ``y`` orders the
    neurons of each generation by the barycenter sweeps of :func:`~viz.layout.generation_layout`
    over the final edges plus each removed neuron's edges in its last round.
    """
    final = history.rounds[-1]
    ids = list(final.order)
    index = {neuron: i for i, neuron in enumerate(ids)}
    src, dst = (np.asarray(side, dtype=np.int64) for side in np.asarray(final.edges, dtype=np.int64).reshape(2, -1))
    final_edges = np.stack([[index[v] for v in src.tolist()], [index[v] for v in dst.tolist()]]).reshape(2, -1)
    generation = topological_generations(torch.from_numpy(final_edges), len(ids)).numpy().tolist()
    extra: list[tuple[int, int]] = []
    for record in reversed(history.rounds[:-1]):
        removed = [neuron for neuron in record.order if neuron not in index]
        if not removed:
            continue
        for neuron in removed:
            index[neuron] = len(ids)
            ids.append(neuron)
        removed_set = set(removed)
        predecessors: dict[int, list[int]] = {neuron: [] for neuron in removed}
        for s, t in zip(*record.edges):
            if t in removed_set:
                predecessors[t].append(s)
            if s in removed_set or t in removed_set:
                extra.append((index[s], index[t]))
        for neuron in removed:  # record.order is topological: predecessors are placed first
            generation.append(max((generation[index[u]] + 1 for u in predecessors[neuron]), default=0))
    edges = final_edges
    if extra:
        edges = np.concatenate([final_edges, np.array(extra, dtype=np.int64).T], axis=1)
    x, y = generation_layout(edges, len(ids), generation=np.array(generation, dtype=np.int64), sweeps=sweeps)
    return {neuron: (float(x[i]), float(y[i])) for neuron, i in index.items()}


def _draw_edges(ax: Axes, xy: dict, edges: np.ndarray, color: str, width: float, alpha: float,
                max_span: float, linestyle: str = "solid", zorder: int = 2) -> None:
    if edges.shape[1] == 0:
        return
    ids = np.unique(edges)
    local = {neuron: i for i, neuron in enumerate(ids.tolist())}
    x = np.array([xy[v][0] for v in ids.tolist()])
    y = np.array([xy[v][1] for v in ids.tolist()])
    src = np.array([local[v] for v in edges[0].tolist()])
    dst = np.array([local[v] for v in edges[1].tolist()])
    paths = edge_paths(x, y, src, dst, max_span=max_span)
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


def _extent(history: History, xy: dict) -> tuple[float, float, float, float, float]:
    """Axis limits covering every round's neurons and edge arcs, and the longest edge span."""
    ids = np.array(list(xy))
    x = np.array([xy[v][0] for v in ids.tolist()])
    y = np.array([xy[v][1] for v in ids.tolist()])
    local = {v: i for i, v in enumerate(ids.tolist())}
    union = np.array(sorted({(local[s], local[t]) for r in history.rounds for s, t in zip(*r.edges)}),
                     dtype=np.int64).reshape(-1, 2).T
    max_span = float(np.abs(x[union[1]] - x[union[0]]).max()) if union.size else 1.0
    paths = edge_paths(x, y, union[0], union[1], max_span=max_span)
    low = min(float(y.min()), float(paths[..., 1].min()) if union.size else 0.0)
    high = max(float(y.max()), float(paths[..., 1].max()) if union.size else 1.0)
    pad_x, pad_y = 0.03 * max(x.max() - x.min(), 1.0), 0.05 * (high - low)
    return x.min() - pad_x, x.max() + pad_x, low - pad_y, high + pad_y, max_span


def draw_frame(ax: Axes, frame: Frame, xy: dict, extent: tuple, max_edges: int | None = 3000,
               rates: dict[str, float] | None = None) -> None:
    """Draw one round: kept edges grey, pruned red dashed, added green, neurons by role.

    ``extent`` is ``(x_min, x_max, y_min, y_max, max_span)`` shared by all frames. ``rates``
    gives, per kind (``"kept"``, ``"pruned"``, ``"added"``), the fraction of edges drawn, a fixed
    pseudo-random subset chosen by hashing each edge's ids; by default each kind is capped at
    ``max_edges`` in this frame. :func:`render_evolution` passes rates shared by all frames, so
    the drawn density follows the real edge count, and a kept edge drawn in one frame stays
    drawn until it is pruned, then shows red.
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
    x = np.array([xy[v][0] for v in frame.neurons.tolist()])
    y = np.array([xy[v][1] for v in frame.neurons.tolist()])
    draw_neurons(ax, x, y, np.isin(frame.neurons, frame.outputs), labels=frame.neurons)
    for neurons, color, marker in ((frame.removed_neurons, PRUNED_COLOR, "x"),
                                   (frame.added_neurons, ADDED_COLOR, "+")):
        if neurons.size:
            ax.scatter([xy[v][0] for v in neurons.tolist()], [xy[v][1] for v in neurons.tolist()],
                       s=60, c=color, marker=marker, linewidths=1.5, zorder=5)
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks([])
    ax.set_xlabel("topological generation in the final round's graph")
    ax.set_ylabel("position within generation")
    sampled = any(rates[kind] < 1.0 for kind in EDGE_KINDS)
    shown = "; a fixed random sample of each edge kind drawn" if sampled else ""
    changes = (f"{frame.pruned.shape[1]:,} edges pruned, {frame.added.shape[1]:,} added; "
               f"{frame.removed_neurons.size} neurons removed, {frame.added_neurons.size} added")
    if record.round == 0 and not (frame.pruned.size or frame.added.size):
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
        Line2D([], [], linestyle="", markersize=6, **HIDDEN_STYLE),
        Line2D([], [], linestyle="", markersize=7, markeredgecolor="black", **OUTPUT_STYLE),
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
        At most this many kept / pruned / added edges per frame. Each kind is drawn at one rate
        in all frames (``max_edges`` over that kind's largest count), on a fixed pseudo-random
        subset of edges (kept and pruned edges share their rate), so the drawn density follows the
        real one and edges do not flicker between frames; the legend gives each rate. ``None``
        draws every edge.
    frame_ms : int
        GIF frame duration in milliseconds (the last frame shows three times as long).

    Returns
    -------
    list of Path
        The files written: the GIF first, then the frames.
    """
    if len(history) == 0:
        raise NCGError("render_evolution needs a history with at least one round")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    xy = evolution_layout(history)
    extent = _extent(history, xy)
    frames = evolution_frames(history)
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
    edit_ax.set_ylim(0.7, max(largest, 1) * 40)  # headroom for the count labels and the legend
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
    fig.suptitle(f"Free-Evolve run: {len(records)} rounds, "
                 f"{records[0].num_edges:,} -> {records[-1].num_edges:,} edges")
    save_figure(fig, path)
    return fig
