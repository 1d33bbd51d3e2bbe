"""Accuracy (or error) against model size for one data set of an experiment, with its Pareto front.

Examples
--------
>>> rows = [{"dataset": "toy", "method": m, "seed": s, "metric": "test_accuracy", "higher_is_better": True,
...          "candidate": m == "new", "test_accuracy": a + 0.01 * s, "parameters": p}
...         for m, a, p in [("mlp", 0.90, 5000), ("new", 0.93, 2000)] for s in range(3)]
>>> fig = pareto_figure(rows, "toy", figsize=(5, 3), dpi=50)
>>> fig.axes[0].get_xscale(), fig.axes[0].get_ylabel()
('log', 'test accuracy (%), higher is better')
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ncg.errors import NCGError
from ncg.experiments.report import aggregate, confidence_interval
from ncg.figure import new_figure, save_figure

__all__ = ["pareto_figure"]

CANDIDATE_STYLE = {"marker": "*", "markersize": 15, "markeredgecolor": "black", "markeredgewidth": 0.8, "zorder": 4}
BASELINE_STYLE = {"marker": "o", "markersize": 7, "markeredgecolor": "white", "markeredgewidth": 0.6, "zorder": 3}


def _pareto_front(sizes: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the points no smaller point beats, by increasing size (``quality``: higher is better)."""
    front, best = [], -math.inf
    for index in np.lexsort((-quality, sizes)):
        if quality[index] > best:
            front.append(index)
            best = quality[index]
    return np.asarray(front, dtype=np.int64)


def budget_family(method: str) -> str:
    """The method without its parameter budget: ``sparse-granet@20000`` -> ``sparse-granet``.

    Examples
    --------
    >>> budget_family("layered2-granet[rounds=8]@20000"), budget_family("mlp-sparse")
    ('layered2-granet[rounds=8]', 'mlp-sparse')
    """
    base, at, budget = method.rpartition("@")
    return base if at and budget.isdigit() else method


def _log_limits(ax: Axes, axis: str, values: list[float]) -> None:
    """Fix a log axis to the positive ``values`` with a margin: an error bar reaching zero or below
    runs off the edge instead of stretching the axis over decades."""
    positive = np.asarray([v for v in values if math.isfinite(v) and v > 0])
    if positive.size == 0:
        return
    low, high = np.log10(positive.min()), np.log10(positive.max())
    margin = max(0.08 * (high - low), 0.05)
    limits = (10 ** (low - margin), 10 ** (high + margin))
    if axis == "x":
        ax.set_xlim(limits)
    else:
        ax.set_ylim(limits)


def pareto_figure(
    rows: Sequence[dict],
    dataset: str,
    path: str | os.PathLike | None = None,
    figsize: tuple[float, float] = (8, 4.8),
    dpi: int = 150,
) -> Figure:
    """The primary metric against total parameters for every method of one data set.

    Each method is a marker at its mean over seeds with 95% confidence bars (t-distribution; on the
    parameter axis too where the size varies across seeds), its seeds as faint points in the same
    colour, candidates as large stars; one method run at several parameter budgets
    (``name@parameters``) keeps one colour and one legend entry, with a line through its means. The dashed step line is the Pareto front of the method
    means: the best mean metric reachable with at most that many parameters. Accuracy is drawn in
    percent; any other metric (an MSE) on a log axis. Parameters are always on a log axis.

    Parameters
    ----------
    rows : sequence of dict
        Run rows of the experiment runner (see :func:`ncg.experiments.report.aggregate`); rows of
        other data sets are ignored. Each row of ``dataset`` needs ``parameters``.
    dataset : str
        The data set to draw.
    path : str or path-like, optional
        Where to save the figure (PNG at ``dpi`` for a ``.png`` path).
    figsize : (float, float), default (8, 4.8)
        Figure size in inches; the legend sits to the right of the axes, inside it.
    dpi : int, default 150

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    NCGError
        If no row belongs to ``dataset``, or one lacks a positive parameter count.
    """
    subset = [row for row in rows if row.get("dataset") == dataset]
    if not subset:
        found = sorted({str(row.get("dataset")) for row in rows})
        raise NCGError(f"no runs of data set {dataset!r}; found {found}")
    for row in subset:
        if not isinstance(row.get("parameters"), (int, float)) or not row["parameters"] > 0:
            raise NCGError(f"run {dataset}/{row.get('method')} seed {row.get('seed')} needs a positive "
                           f"'parameters', got {row.get('parameters')!r}")
    aggregates = aggregate(subset)
    metric, higher_is_better = aggregates[0]["metric"], aggregates[0]["higher_is_better"]
    percent = "accuracy" in metric
    scale = 100.0 if percent else 1.0
    bases = list(dict.fromkeys(budget_family(entry["method"]) for entry in aggregates))
    palette = colormaps["tab10" if len(bases) <= 10 else "tab20"].colors
    colors = {base: palette[index % len(palette)] for index, base in enumerate(bases)}

    fig, ax = new_figure(figsize, dpi)
    x_extent, y_extent = [], []
    labelled: set[str] = set()
    for entry in aggregates:
        base = budget_family(entry["method"])
        color = colors[base]
        runs = [row for row in subset if row["method"] == entry["method"]]
        sizes = [float(row["parameters"]) for row in runs]
        values = [scale * float(row[metric]) if row[metric] is not None else math.nan for row in runs]
        ax.scatter(sizes, values, s=14, color=color, alpha=0.35, linewidths=0, zorder=2)
        size_mean, size_half = confidence_interval(sizes)
        mean, half = scale * entry["mean"], scale * entry["ci95"]
        size_half = size_half if math.isfinite(size_half) and size_half > 0 else None
        half = half if math.isfinite(half) else None
        label = base + (" (candidate)" if entry["candidate"] else "")
        if entry["verdict"] == "baseline":
            label += f" (strongest baseline{' at ' + entry['method'].rpartition('@')[2] if base != entry['method'] else ''})"
        elif base in labelled:
            label = None
        labelled.add(base)
        style = CANDIDATE_STYLE if entry["candidate"] else BASELINE_STYLE
        ax.errorbar(size_mean, mean, xerr=size_half, yerr=half, color=color, linestyle="none",
                    elinewidth=1.2, capsize=3, label=label, **style)
        x_extent += sizes + [size_mean + (size_half or 0.0), size_mean - (size_half or 0.0)]
        y_extent += values + [mean + (half or 0.0), mean - (half or 0.0)]

    for base in bases:  # one method at several parameter budgets (name@parameters): a line through its means
        points = sorted((entry["parameters"], scale * entry["mean"]) for entry in aggregates
                        if budget_family(entry["method"]) == base and math.isfinite(entry["mean"]))
        if len(points) > 1:
            ax.plot(*zip(*points), color=colors[base], linewidth=1.2, alpha=0.8, zorder=2)

    means = np.array([scale * entry["mean"] for entry in aggregates])
    sizes = np.array([entry["parameters"] for entry in aggregates])
    usable = np.flatnonzero(np.isfinite(means))
    front = usable[_pareto_front(sizes[usable], means[usable] if higher_is_better else -means[usable])]
    if front.size:
        # Continue the last step to the largest method: a bigger budget buys no better mean.
        step_x = np.append(sizes[front], sizes[usable].max())
        step_y = np.append(means[front], means[front[-1]])
        ax.step(step_x, step_y, where="post", color="black", linestyle="--", linewidth=1.0, alpha=0.7,
                zorder=1, label="Pareto front (method means)")

    ax.set_xscale("log")
    _log_limits(ax, "x", x_extent)
    metric_label = metric.replace("_", " ") + (" (%)" if percent else "")
    ax.set_ylabel(f"{metric_label}, {'higher' if higher_is_better else 'lower'} is better")
    if not percent:
        ax.set_yscale("log")
        _log_limits(ax, "y", y_extent)
    ax.set_xlabel("parameters (trainable weights + biases)")
    seeds = sorted({entry["n"] for entry in aggregates})
    seed_text = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    ax.set_title(f"{dataset}: {metric_label} vs size, mean ± 95% CI over {seed_text} seeds", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.grid(True, which="minor", alpha=0.1)
    labels = ax.get_legend_handles_labels()[1]
    longest = max(map(len, labels), default=0)
    if longest > 40:  # long names (variants, budgets): the legend goes below the axes
        columns = 1 if longest > 55 else 2
        fig.set_size_inches(figsize[0], figsize[1] + 0.2 * math.ceil(len(labels) / columns))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=columns, fontsize=8, frameon=False)
    else:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False, borderaxespad=0.0)
    save_figure(fig, path)
    return fig
