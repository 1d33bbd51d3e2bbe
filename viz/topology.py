"""Draw a FreeNet's topology: neurons by generation, edges coloured by weight.

A graph of more than ``max_neurons`` neurons (3,000 by default) is drawn from a fixed-seed random
sample of its neurons and the edges among them (:mod:`viz.sample`); the title says so.

Examples
--------
>>> from ncg import NCG
>>> fig = draw_topology(NCG.complete(6, num_outputs=2, seed=0), figsize=(4, 3), dpi=50)
>>> fig.axes[0].get_xlabel()
'topological generation'
"""
from __future__ import annotations

import os

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from ncg.graph import NCG
from ncg.io._common import graph_of
from ncg.model import FreeNet
from ncg.schedule import topological_generations
from ncg.figure import new_figure, save_figure
from viz.figure import HIDDEN_STYLE, INPUT_STYLE, OUTPUT_STYLE, edge_cmap
from viz.layout import edge_paths, generation_layout
from viz.sample import MAX_NEURONS, induced_edges, sample_caption, sample_neurons

__all__ = ["draw_topology", "draw_neurons", "neuron_handles", "edge_style"]

LABEL_MAX_NEURONS = 40
"""Graphs up to this size get their neuron ids written beside the markers."""


def edge_style(num_edges: int) -> tuple[float, float]:
    """Base line width and alpha for ``num_edges`` drawn edges: thinner and fainter when many."""
    width = float(np.clip(1.6 * np.sqrt(150 / max(num_edges, 1)), 0.12, 1.6))
    alpha = float(np.clip(np.sqrt(400 / max(num_edges, 1)), 0.08, 0.85))
    return width, alpha


def draw_neurons(
    ax: Axes,
    x: np.ndarray,
    y: np.ndarray,
    is_output: np.ndarray,
    labels: np.ndarray | None = None,
    is_input: np.ndarray | None = None,
) -> None:
    """Scatter hidden neurons as dots, outputs as diamonds and input nodes (where ``is_input``)
    as squares (the styles of :mod:`viz.figure`), sized for the neuron count; the one marker
    drawing shared by :func:`draw_topology` and the evolution frames."""
    n = x.size
    size = float(np.clip(3000 / max(n, 1), 3, 60))
    is_input = np.zeros(n, dtype=bool) if is_input is None else np.asarray(is_input, dtype=bool)
    hidden = ~is_output & ~is_input
    ax.scatter(x[hidden], y[hidden], s=size, c=HIDDEN_STYLE["color"], marker=HIDDEN_STYLE["marker"],
               linewidths=0, zorder=3, label=HIDDEN_STYLE["label"])
    ax.scatter(x[is_output], y[is_output], s=2.5 * size, c=OUTPUT_STYLE["color"], marker=OUTPUT_STYLE["marker"],
               edgecolors="black", linewidths=0.5, zorder=4, label=OUTPUT_STYLE["label"])
    if is_input.any():
        ax.scatter(x[is_input], y[is_input], s=size, c=INPUT_STYLE["color"], marker=INPUT_STYLE["marker"],
                   linewidths=0, zorder=3, label=INPUT_STYLE["label"])
    if labels is not None and n <= LABEL_MAX_NEURONS:
        for xi, yi, label in zip(x, y, labels):
            ax.annotate(str(label), (xi, yi), xytext=(3, 3), textcoords="offset points", fontsize=7, zorder=5)


def neuron_handles(with_inputs: bool) -> list[Line2D]:
    """Legend entries for the markers of :func:`draw_neurons`: input nodes (if ``with_inputs``),
    hidden and output neurons."""
    handles = [Line2D([], [], linestyle="", markersize=6, **INPUT_STYLE)] if with_inputs else []
    return handles + [
        Line2D([], [], linestyle="", markersize=6, **HIDDEN_STYLE),
        Line2D([], [], linestyle="", markersize=7, markeredgecolor="black", **OUTPUT_STYLE),
    ]


def _edges_shown(num_edges: int, among: int, shown: int, sampled: bool) -> str:
    """The caption line saying which edges are drawn."""
    if not sampled:
        return (f"showing {shown:,} of {num_edges:,} edges (largest |w|)" if shown < num_edges
                else f"all {num_edges:,} edges shown")
    if shown < among:
        return f"showing {shown:,} of the {among:,} edges among them (largest |w|), of {num_edges:,} in all"
    return f"showing all {among:,} edges among them, of {num_edges:,} in all"


def draw_topology(
    graph_or_model: NCG | FreeNet,
    path: str | os.PathLike | None = None,
    ax: Axes | None = None,
    max_edges: int | None = 5000,
    title: str | None = None,
    figsize: tuple[float, float] = (12, 7),
    dpi: int = 100,
    sweeps: int = 4,
    max_neurons: int | None = MAX_NEURONS,
    seed: int = 0,
) -> Figure:
    """Draw neurons by topological generation and edges coloured by weight.

    Parameters
    ----------
    graph_or_model : NCG or FreeNet
    path : str or PathLike, optional
        Save the figure there; the extension picks the format (``.png``, ``.svg``, ``.pdf``).
    ax : Axes, optional
        Draw into this axes instead of a new figure (``figsize``, ``dpi`` are then ignored).
    max_edges : int or None, default 5000
        Draw at most this many of the edges between drawn neurons, those of largest ``|weight|``;
        the figure says how many it shows. ``None`` draws every such edge.
    title : str, optional
        Defaults to a line with the neuron, edge and generation counts.
    figsize, dpi
        Size of a new figure: the image is ``figsize * dpi`` pixels.
    sweeps : int, default 4
        Barycenter sweeps of :func:`~viz.layout.generation_layout`.
    max_neurons : int or None, default 3000
        A larger graph is drawn from a random sample of this many neurons, the outputs always
        among them (:func:`~viz.sample.sample_neurons`), and the edges between them; the title
        says so. ``None`` draws every neuron.
    seed : int, default 0
        Seed of that sample.

    Returns
    -------
    Figure

    Notes
    -----
    ``x`` is the generation (longest path from a source, in the whole graph), ``y`` the place
    inside the generation, ordered by barycenter sweeps over the drawn edges to reduce crossings.
    Edges are one :class:`~matplotlib.collections.LineCollection`: colour from a diverging
    colormap centred on zero (red positive, blue negative, without the pale middle so weak edges
    keep their sign; scaled to the 99th percentile of ``|weight|``), width and opacity growing
    with ``|weight|``, the strongest drawn on top; edges that skip generations are arcs
    (:func:`~viz.layout.edge_paths`). Input nodes (graph nodes that hold the input features, in
    generation 0) are squares, hidden neurons dots, outputs diamonds; the legend has an entry for
    input nodes when some are drawn. Neuron ids are written beside the markers up to 40 neurons.
    Time and memory are O(N + E) for the generations and the sample, plus the drawing of at most
    ``max_neurons`` neurons and ``max_edges`` edges: a million neurons take seconds.

    Examples
    --------
    >>> from ncg.build import layered_start
    >>> graph = layered_start(16, 400, 2, depth=4, fan_in=3, seed=0)
    >>> fig = draw_topology(graph, max_neurons=100, figsize=(4, 3), dpi=50)
    >>> print(fig.axes[0].get_title().splitlines()[1])
    a fixed random sample of 100 of 418 neurons is drawn (all outputs included)
    """
    graph = graph_of(graph_or_model, "draw_topology")
    n, num_edges = graph.num_neurons, graph.num_edges
    neurons = sample_neurons(n, max_neurons, keep=graph.outputs.numpy(), seed=seed)
    among, local = induced_edges(graph.edge_index.numpy(), n, neurons)
    generation = topological_generations(graph.edge_index, n).numpy()
    x, y = generation_layout(local, neurons.size, generation=generation[neurons], sweeps=sweeps,
                             initial=graph.position.numpy()[neurons])
    weight = graph.weight.numpy()[among].astype(np.float64)
    keep = np.arange(among.size)
    if max_edges is not None and among.size > max_edges:
        keep = np.argpartition(-np.abs(weight), max_edges)[:max_edges]
    keep = keep[np.argsort(np.abs(weight[keep]), kind="stable")]  # strongest drawn last, on top
    if ax is None:
        fig, ax = new_figure(figsize, dpi)
    else:
        fig = ax.figure
    scale = float(np.quantile(np.abs(weight[keep]), 0.99)) if keep.size else 1.0
    scale = scale if scale > 0 else 1.0
    norm = Normalize(-scale, scale)
    cmap = edge_cmap()
    if keep.size:
        magnitude = np.clip(np.abs(weight[keep]) / scale, 0, 1)
        width, alpha = edge_style(keep.size)
        colors = cmap(norm(weight[keep]))
        colors[:, 3] = alpha * (0.45 + 0.55 * magnitude)
        lines = LineCollection(
            edge_paths(x, y, local[0, keep], local[1, keep]),
            colors=colors, linewidths=width * (0.4 + 1.1 * magnitude), zorder=2, capstyle="round",
        )
        ax.add_collection(lines)
    roles = graph.roles.numpy()[neurons]
    is_input = roles == NCG.INPUT
    draw_neurons(ax, x, y, roles == NCG.OUTPUT, labels=graph.neuron_ids.numpy()[neurons], is_input=is_input)
    ax.autoscale_view()
    ax.margins(x=0.03, y=0.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks([])
    ax.set_xlabel("topological generation")
    ax.set_ylabel("position within generation (barycenter order)")
    num_generations = int(generation.max()) + 1
    inputs = f"{graph.num_inputs:,} input nodes, " if graph.num_inputs else ""
    default = (f"FreeNet topology: {n:,} neurons ({inputs}{graph.num_outputs:,} outputs), {num_edges:,} edges, "
               f"{num_generations:,} generations")
    sampled = neurons.size < n
    shown = _edges_shown(num_edges, among.size, keep.size, sampled)
    if sampled:
        shown = f"{sample_caption(neurons.size, n)}\n{shown}"
    ax.set_title(f"{title or default}\n{shown}", fontsize=11)
    handles = neuron_handles(bool(is_input.any())) + [
        Line2D([], [], color=cmap(0.9), lw=2, label="positive weight"),
        Line2D([], [], color=cmap(0.1), lw=2, label="negative weight"),
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85)
    colorbar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.8, pad=0.01, extend="both")
    colorbar.set_label("edge weight")
    save_figure(fig, path)
    return fig
