"""Draw a FreeNet's topology: neurons by generation, edges coloured by weight.

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
from ncg.model import FreeNet
from viz.figure import HIDDEN_STYLE, OUTPUT_STYLE, as_graph, edge_cmap, new_figure, save_figure
from viz.layout import edge_paths, generation_layout

__all__ = ["draw_topology", "draw_neurons", "edge_style"]

LABEL_MAX_NEURONS = 40
"""Graphs up to this size get their neuron ids written beside the markers."""


def edge_style(num_edges: int) -> tuple[float, float]:
    """Base line width and alpha for ``num_edges`` drawn edges: thinner and fainter when many."""
    width = float(np.clip(1.6 * np.sqrt(150 / max(num_edges, 1)), 0.12, 1.6))
    alpha = float(np.clip(np.sqrt(400 / max(num_edges, 1)), 0.08, 0.85))
    return width, alpha


def draw_neurons(
    ax: Axes, x: np.ndarray, y: np.ndarray, is_output: np.ndarray, labels: np.ndarray | None = None
) -> None:
    """Scatter hidden neurons as dots and outputs as diamonds, sized for the neuron count."""
    n = x.size
    size = float(np.clip(3000 / max(n, 1), 3, 60))
    hidden = ~is_output
    ax.scatter(x[hidden], y[hidden], s=size, c=HIDDEN_STYLE["color"], marker=HIDDEN_STYLE["marker"],
               linewidths=0, zorder=3, label=HIDDEN_STYLE["label"])
    ax.scatter(x[is_output], y[is_output], s=2.5 * size, c=OUTPUT_STYLE["color"], marker=OUTPUT_STYLE["marker"],
               edgecolors="black", linewidths=0.5, zorder=4, label=OUTPUT_STYLE["label"])
    if labels is not None and n <= LABEL_MAX_NEURONS:
        for xi, yi, label in zip(x, y, labels):
            ax.annotate(str(label), (xi, yi), xytext=(3, 3), textcoords="offset points", fontsize=7, zorder=5)


def draw_topology(
    graph_or_model: NCG | FreeNet,
    path: str | os.PathLike | None = None,
    ax: Axes | None = None,
    max_edges: int | None = 5000,
    title: str | None = None,
    figsize: tuple[float, float] = (12, 7),
    dpi: int = 100,
    sweeps: int = 4,
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
        Draw at most this many edges, those of largest ``|weight|``; the figure says how many
        it shows. ``None`` draws every edge.
    title : str, optional
        Defaults to a line with the neuron, edge and generation counts.
    figsize, dpi
        Size of a new figure: the image is ``figsize * dpi`` pixels.
    sweeps : int, default 4
        Barycenter sweeps of :func:`~viz.layout.generation_layout`.

    Returns
    -------
    Figure

    Notes
    -----
    ``x`` is the generation (longest path from a source), ``y`` the place inside the generation,
    ordered by barycenter sweeps to reduce crossings. Edges are one
    :class:`~matplotlib.collections.LineCollection`: colour from a diverging colormap centred on
    zero (red positive, blue negative, without the pale middle so weak edges keep their sign;
    scaled to the 99th percentile of ``|weight|``), width and opacity growing with ``|weight|``, the
    strongest drawn on top; edges that skip generations are arcs (:func:`~viz.layout.edge_paths`).
    Neuron ids are written beside the markers up to 40 neurons.
    """
    graph = as_graph(graph_or_model)
    n, num_edges = graph.num_neurons, graph.num_edges
    edge_index = graph.edge_index.numpy()
    x, y = generation_layout(edge_index, n, sweeps=sweeps, initial=graph.position.numpy())
    weight = graph.weight.numpy().astype(np.float64)
    keep = np.arange(num_edges)
    if max_edges is not None and num_edges > max_edges:
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
            edge_paths(x, y, edge_index[0, keep], edge_index[1, keep]),
            colors=colors, linewidths=width * (0.4 + 1.1 * magnitude), zorder=2, capstyle="round",
        )
        ax.add_collection(lines)
    is_output = graph.roles.numpy() == NCG.OUTPUT
    draw_neurons(ax, x, y, is_output, labels=graph.neuron_ids.numpy())
    ax.autoscale_view()
    ax.margins(x=0.03, y=0.05)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yticks([])
    ax.set_xlabel("topological generation")
    ax.set_ylabel("position within generation (barycenter order)")
    num_generations = int(x.max()) + 1
    default = (f"FreeNet topology: {n:,} neurons ({graph.num_outputs:,} outputs), {num_edges:,} edges, "
               f"{num_generations:,} generations")
    shown = (f"showing {keep.size:,} of {num_edges:,} edges (largest |w|)" if keep.size < num_edges
             else f"all {num_edges:,} edges shown")
    ax.set_title(f"{title or default}\n{shown}", fontsize=11)
    handles = [
        Line2D([], [], linestyle="", markersize=6, **HIDDEN_STYLE),
        Line2D([], [], linestyle="", markersize=7, markeredgecolor="black", **OUTPUT_STYLE),
        Line2D([], [], color=cmap(0.9), lw=2, label="positive weight"),
        Line2D([], [], color=cmap(0.1), lw=2, label="negative weight"),
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85)
    colorbar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax, shrink=0.8, pad=0.01, extend="both")
    colorbar.set_label("edge weight")
    save_figure(fig, path)
    return fig
