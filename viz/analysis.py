"""Analysis figures of one graph: coactivation, degrees and depth, weights, receptive fields.

Every figure is O(N + E) in time and memory besides what it draws: degree and weight histograms
bin all values, the coactivation heatmap of a large graph shows a fixed random sample of
``max_neurons`` neurons (:mod:`viz.sample`), and receptive fields read the input weights of the
drawn neurons only.

Examples
--------
>>> from ncg import NCG
>>> fig = plot_degree_histograms(NCG.complete(8, num_outputs=2), figsize=(6, 2), dpi=50)
>>> [ax.get_title() for ax in fig.axes]
['In-degree', 'Out-degree', 'Generation sizes (depth 7)']
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ncg.errors import NCGError
from ncg.evolve.coactivation import Coactivation
from ncg.graph import NCG
from ncg.io._common import graph_of
from ncg.model import FreeNet
from ncg.schedule import topological_generations
from ncg.figure import new_figure, save_figure
from viz.figure import OUTPUT_STYLE, WEIGHT_CMAP
from viz.sample import MAX_NEURONS, sample_caption, sample_neurons

__all__ = ["plot_coactivation", "plot_degree_histograms", "plot_weight_histogram", "plot_receptive_fields", "input_weights"]

MAX_GENERATION_LINES = 40
"""Generation boundaries are drawn on the coactivation heatmap up to this many generations."""

MAX_GENERATION_BARS = 60
"""Generation sizes are separate bars up to this many generations, one filled outline beyond."""


def _generation_order(graph: NCG, neurons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``neurons`` sorted by generation then topological position, and the
    generations of ``neurons``."""
    generation = topological_generations(graph.edge_index, graph.num_neurons).numpy()[neurons]
    order = np.lexsort((graph.position.numpy()[neurons], generation))
    return order, generation


def plot_coactivation(
    coactivation: Coactivation,
    graph_or_model: NCG | FreeNet,
    path: str | os.PathLike | None = None,
    measure: str = "phi",
    figsize: tuple[float, float] = (8, 8),
    dpi: int = 100,
    max_neurons: int | None = MAX_NEURONS,
    seed: int = 0,
) -> Figure:
    """Heatmap of a coactivation measure, neurons ordered by generation, with firing rates below.

    Entry ``(i, j)`` is the measure for the tracked pair ``i -> j`` (``i`` earlier); untracked
    pairs are grey. Thin lines separate generations (up to 40 of them). ``phi`` uses a
    diverging colormap on ``[-m, m]``, ``joint`` a sequential one on ``[0, m]``, where ``m`` is the
    99th percentile of the absolute scores (at least 0.05), so typical values stay visible.
    A graph of more than ``max_neurons`` neurons is shown by a fixed random sample of that many
    (``seed``; outputs included) and the tracked pairs among them, as the title says; ``None``
    shows every neuron (an ``N x N`` image).

    Examples
    --------
    >>> from ncg.evolve.coactivation import Coactivation
    >>> graph = NCG.random_dag(50, density=0.2, num_outputs=2, seed=0)
    >>> src, dst = graph.edge_index.numpy()
    >>> co = Coactivation(50, 8, np.full(50, 0.5), src, dst, np.full(src.size, 0.25))
    >>> fig = plot_coactivation(co, graph, max_neurons=20, figsize=(4, 4), dpi=50)
    >>> print(fig.axes[0].get_title().splitlines()[1])
    a fixed random sample of 20 of 50 neurons is drawn (all outputs included)

    Raises
    ------
    NCGError
        If the coactivation and the graph have different neuron counts.
    """
    graph = graph_of(graph_or_model, "plot_coactivation")
    n = graph.num_neurons
    if coactivation.num_neurons != n:
        raise NCGError(
            f"coactivation covers {coactivation.num_neurons} neurons but the graph has {n}; "
            "record it on the same graph"
        )
    neurons = sample_neurons(n, max_neurons, keep=graph.outputs.numpy(), seed=seed)
    sampled, k = neurons.size < n, neurons.size
    if sampled:
        coactivation = coactivation.remap(neurons)
    order, generation = _generation_order(graph, neurons)
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    scores = coactivation.score(measure)
    # A robust range: phi is mostly small, and a fixed [-1, 1] would wash the figure out.
    top = float(np.quantile(np.abs(scores), 0.99)) if scores.size else 1.0
    top = min(max(top, 0.05), 1.0)
    if measure == "phi":
        cmap, norm = colormaps[WEIGHT_CMAP], Normalize(-top, top)
    else:
        cmap, norm = colormaps["viridis"], Normalize(0, top)
    cmap = cmap.with_extremes(bad="#d9d9d9")
    matrix = np.full((k, k), np.nan, dtype=np.float32)  # an image: float32 suffices, at half the size
    matrix[rank[coactivation.src], rank[coactivation.dst]] = scores
    fig, (heat_ax, rate_ax) = new_figure(figsize, dpi, 2, 1, sharex=True, height_ratios=[5, 1])
    image = heat_ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, norm=norm, interpolation="nearest",
                           aspect="auto", extent=(-0.5, k - 0.5, k - 0.5, -0.5))
    boundaries = np.flatnonzero(np.diff(generation[order])) + 0.5
    if boundaries.size < MAX_GENERATION_LINES:
        for b in boundaries:
            heat_ax.axhline(b, color="black", lw=0.4, alpha=0.5)
            heat_ax.axvline(b, color="black", lw=0.4, alpha=0.5)
            rate_ax.axvline(b, color="black", lw=0.4, alpha=0.5)
    heat_ax.set_ylabel("source neuron i (sorted by generation)")
    heading = f"Coactivation ({measure}) of {n:,} neurons over {coactivation.num_samples:,} samples"
    pairs = f"{coactivation.num_pairs:,} tracked pairs i -> j"
    if sampled:
        heading, pairs = f"{heading}\n{sample_caption(k, n)}", f"{pairs} among them"
    heat_ax.set_title(f"{heading}\n{pairs}; grey: not tracked"
                      + (", lines: generation boundaries" if 0 < boundaries.size < MAX_GENERATION_LINES else ""))
    colorbar = fig.colorbar(image, ax=heat_ax, shrink=0.9, pad=0.01, extend="both" if measure == "phi" else "max")
    colorbar.set_label(f"{measure} coefficient" if measure == "phi" else f"{measure} firing probability")
    rate = coactivation.firing_rate[order]
    is_output = (graph.roles.numpy()[neurons] == NCG.OUTPUT)[order]
    positions = np.arange(k)
    # One filled outline for all neurons (not a bar each), then the outputs' bars over it.
    rate_ax.stairs(rate, np.arange(k + 1) - 0.5, fill=True, color="#4c72b0", label="hidden neuron")
    rate_ax.bar(positions[is_output], rate[is_output], width=1.0, color=OUTPUT_STYLE["color"], label="output neuron")
    rate_ax.set_ylim(0, 1)
    rate_ax.set_ylabel("firing rate")
    rate_ax.set_xlabel("target neuron j (sorted by generation)")
    rate_ax.legend(loc="upper right", fontsize=7, ncols=2)
    save_figure(fig, path)
    return fig


def plot_degree_histograms(
    graph_or_model: NCG | FreeNet,
    path: str | os.PathLike | None = None,
    figsize: tuple[float, float] = (14, 4),
    dpi: int = 100,
) -> Figure:
    """Three panels: in-degree and out-degree histograms, and the number of neurons per generation.

    Degree histograms stack hidden and output neurons; the generation panel is the depth
    profile (width of each generation; depth = number of generations - 1).
    """
    graph = graph_of(graph_or_model, "plot_degree_histograms")
    n = graph.num_neurons
    src, dst = graph.edge_index.numpy()
    is_output = graph.roles.numpy() == NCG.OUTPUT
    generation = topological_generations(graph.edge_index, n).numpy()
    fig, (in_ax, out_ax, gen_ax) = new_figure(figsize, dpi, 1, 3)
    for ax, degree, name in ((in_ax, np.bincount(dst, minlength=n), "In-degree"),
                             (out_ax, np.bincount(src, minlength=n), "Out-degree")):
        step = max(1, math.ceil((int(degree.max()) + 1) / 50))  # whole degrees per bin, no aliasing spikes
        bins = np.arange(0, int(degree.max()) + step + 1, step) - 0.5
        counts, _, _ = ax.hist([degree[~is_output], degree[is_output]], bins=bins, stacked=True,
                               color=["#4c72b0", OUTPUT_STYLE["color"]], edgecolor="white", linewidth=0.5,
                               label=["hidden neurons", "output neurons"])
        ax.set_ylim(top=1.35 * counts[-1].max())  # room for the legend
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"{name.lower()} (edges per neuron)")
        ax.set_ylabel("neurons")
        ax.set_title(name)
        ax.legend(fontsize=8, title=f"mean {degree.mean():.1f}, max {degree.max()}", title_fontsize=8)
    sizes = np.bincount(generation)
    style = {"color": "#55a868", "label": f"{sizes.size} generations"}
    if sizes.size > MAX_GENERATION_BARS:  # one filled outline, not one bar per generation
        gen_ax.stairs(sizes, np.arange(sizes.size + 1) - 0.5, fill=True, **style)
    else:
        gen_ax.bar(np.arange(sizes.size), sizes, width=0.8, **style)
    gen_ax.set_ylim(top=1.25 * sizes.max())
    gen_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    gen_ax.set_xlabel("topological generation")
    gen_ax.set_ylabel("neurons in generation")
    gen_ax.set_title(f"Generation sizes (depth {sizes.size - 1})")
    gen_ax.legend(fontsize=8)
    fig.suptitle(f"Structure: {n:,} neurons, {graph.num_edges:,} edges")
    save_figure(fig, path)
    return fig


def plot_weight_histogram(
    graph_or_model: NCG | FreeNet,
    path: str | os.PathLike | None = None,
    bins: int = 60,
    figsize: tuple[float, float] | None = None,
    dpi: int = 100,
) -> Figure:
    """Histograms of edge weights and neuron biases (and encoder weights for a FreeNet with an
    encoder matrix; the graph encoder has none, only input edges, which are edge weights).

    Counts switch to a log scale when they span more than a factor 30, so tails stay visible;
    each panel's legend gives the count, mean, std and largest magnitude.
    """
    graph = graph_of(graph_or_model, "plot_weight_histogram")
    values = {"edge weights": graph.weight.numpy(), "neuron biases": graph.bias.numpy()}
    if isinstance(graph_or_model, FreeNet) and graph_or_model.encoder is not None:
        values["encoder weights"] = graph_or_model.encoder.weight.detach().float().cpu().numpy().ravel()
    fig, axes = new_figure(figsize or (4.5 * len(values), 4), dpi, 1, len(values))
    for ax, (name, value), color in zip(axes, values.items(), ("#c44e52", "#8172b2", "#4c72b0")):
        if value.size:
            stats = (f"{value.size:,} values\nmean {value.mean():.3g}\nstd {value.std():.3g}\n"
                     f"max |value| {np.abs(value).max():.3g}")
            counts, _, _ = ax.hist(value, bins=bins, color=color, label=stats)
            log = counts.max() > 30 * counts[counts > 0].min()
            if log:
                ax.set_yscale("log")
            ax.set_ylim(top=counts.max() * (10 if log else 1.5))  # room for the legend
            ax.axvline(0, color="black", lw=0.6)
            ax.legend(fontsize=8, loc="upper right", framealpha=0.9)
        else:
            ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("value")
        ax.set_ylabel("count" + (" (log scale)" if ax.get_yscale() == "log" else ""))
        ax.set_title(name.capitalize())
    fig.suptitle("Parameter distributions")
    save_figure(fig, path)
    return fig


def input_weights(model: FreeNet, neurons: np.ndarray | None = None) -> np.ndarray:
    """``[len(neurons), in_features]``: the weight from each input feature to each of ``neurons``
    (default: every neuron): the encoder rows, or, for a model whose inputs are graph nodes, the
    input edges scattered (0 where a feature has no edge to the neuron; input nodes' own rows
    are 0). Only the requested rows are built: O(E + len(neurons) * in_features).

    Examples
    --------
    >>> from ncg.build import sparse_start
    >>> net = FreeNet(sparse_start(4, 2, 1, fan_in=1, seed=0), in_features=4)
    >>> int((input_weights(net) != 0).sum()) == net.graph.num_input_edges
    True
    >>> input_weights(net, np.array([6, 6])).shape
    (2, 4)
    """
    if model.encoder_kind != "graph":
        rows = model.encoder.weight.detach()
        return (rows if neurons is None else rows[torch.as_tensor(neurons)]).float().cpu().numpy()
    graph = model.graph
    neurons = np.arange(graph.num_neurons) if neurons is None else np.asarray(neurons, dtype=np.int64)
    distinct, where = np.unique(neurons, return_inverse=True)
    feature = np.full(graph.num_neurons, -1)
    feature[graph.inputs.numpy()] = np.arange(graph.num_inputs)
    row = np.full(graph.num_neurons, -1)
    row[distinct] = np.arange(distinct.size)
    src, dst = graph.edge_index.numpy()
    take = (feature[src] >= 0) & (row[dst] >= 0)
    rows = np.zeros((distinct.size, model.in_features), dtype=np.float32)
    rows[row[dst[take]], feature[src[take]]] = graph.weight.numpy()[take]
    return rows[where]


def plot_receptive_fields(
    model: FreeNet,
    image_shape: Sequence[int],
    path: str | os.PathLike | None = None,
    max_neurons: int = 64,
    neurons: Sequence[int] | None = None,
    tile_inches: float = 1.1,
    dpi: int = 100,
) -> Figure:
    """The input weights of selected neurons (:func:`input_weights`) drawn as images, in a grid
    of tiles.

    Parameters
    ----------
    model : FreeNet
        Its encoder weight is ``[N, in_features]`` with ``in_features = prod(image_shape)``.
    image_shape : (height, width)
    max_neurons : int, default 64
        Tiles drawn when ``neurons`` is not given: that many neurons evenly spaced along the
        topological order (the first, the last and between), so early and late neurons show.
    neurons : sequence of int, optional
        Neuron indices to draw, in this order.
    tile_inches : float
        Size of one tile; the figure is ``columns * tile_inches`` wide plus a colorbar.

    Notes
    -----
    Each tile uses its own symmetric scale (``weight / max |weight|`` of that row, diverging
    colormap), so weak and strong rows are equally legible. Titles give the stable neuron id and
    its generation; output neurons' titles are orange.
    """
    height, width = (int(s) for s in image_shape)
    if height * width != model.in_features:
        raise NCGError(
            f"image_shape {tuple(image_shape)} has {height * width} pixels but the model has "
            f"in_features={model.in_features}"
        )
    graph = model.graph
    order, generation = graph.order.numpy(), topological_generations(graph.edge_index, graph.num_neurons).numpy()
    order = order[~graph.is_input.numpy()[order]]
    if neurons is None:
        count = min(max_neurons, order.size)
        neurons = order[np.unique(np.round(np.linspace(0, order.size - 1, count)).astype(int))]
    neurons = np.asarray(neurons, dtype=np.int64)
    rows = input_weights(model, neurons)
    columns = math.ceil(math.sqrt(neurons.size))
    lines = math.ceil(neurons.size / columns)
    figsize = (columns * tile_inches + 1.2, lines * tile_inches * 1.15 + 0.8)
    fig, axes = new_figure(figsize, dpi, lines, columns)
    axes = np.atleast_1d(axes).ravel()
    cmap, norm = colormaps[WEIGHT_CMAP], Normalize(-1, 1)
    is_output = graph.roles.numpy() == NCG.OUTPUT
    ids = graph.neuron_ids.numpy()
    for ax in axes:
        ax.set_axis_off()
    for ax, neuron, row in zip(axes, neurons.tolist(), rows):
        scale = np.abs(row).max()
        ax.imshow((row / scale if scale > 0 else row).reshape(height, width), cmap=cmap, norm=norm,
                  interpolation="nearest")
        ax.set_title(f"id {ids[neuron]} g{generation[neuron]}", fontsize=7,
                     color=OUTPUT_STYLE["color"] if is_output[neuron] else "black")
    colorbar = fig.colorbar(ScalarMappable(norm, cmap), ax=axes.tolist(), shrink=0.6, pad=0.02)
    source = "input edges" if graph.num_inputs else "encoder rows"
    colorbar.set_label(f"{source[:-1]} weight / max |weight| of the tile")
    fig.suptitle(f"Receptive fields: {source} of {neurons.size} of {graph.num_neurons - graph.num_inputs:,} neurons\n"
                 f"(id, generation; outputs in orange)", fontsize=10)
    save_figure(fig, path)
    return fig
