"""Figure plumbing shared by the drawing functions: Agg figures, saving, and input coercion.

Figures are built with :class:`matplotlib.figure.Figure` on an Agg canvas, never through
``pyplot``: nothing needs a display, no global figure list grows, and the caller's backend is left
alone.

Examples
--------
>>> fig, ax = new_figure((4, 3), dpi=50)
>>> fig.canvas.get_width_height()
(200, 150)
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Colormap, ListedColormap
from matplotlib.figure import Figure

from ncg.errors import NCGError
from ncg.graph import NCG
from ncg.model import FreeNet

__all__ = ["new_figure", "save_figure", "as_graph", "edge_cmap", "HIDDEN_STYLE", "OUTPUT_STYLE", "WEIGHT_CMAP"]

WEIGHT_CMAP = "RdBu_r"
"""Diverging colormap for signed values: blue negative, white zero, red positive."""


def edge_cmap() -> Colormap:
    """:data:`WEIGHT_CMAP` without its pale middle, so a weak edge on white still shows its sign."""
    base = colormaps[WEIGHT_CMAP]
    return ListedColormap(base(np.concatenate([np.linspace(0.0, 0.3, 128), np.linspace(0.7, 1.0, 128)])),
                          name="edge_weight")

HIDDEN_STYLE = {"marker": "o", "color": "#3b3b3b", "label": "hidden neuron"}
OUTPUT_STYLE = {"marker": "D", "color": "#f28e2b", "label": "output neuron"}


def new_figure(
    figsize: tuple[float, float], dpi: int = 100, nrows: int = 1, ncols: int = 1, **subplot_kw
) -> tuple[Figure, Axes | np.ndarray]:
    """A constrained-layout figure on an Agg canvas and its axes (``Figure.subplots`` style)."""
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, **subplot_kw)


def save_figure(fig: Figure, path: str | os.PathLike | None) -> Path | None:
    """Save ``fig`` to ``path`` (format from the extension: ``.png``, ``.svg``, ...) if given.

    The canvas keeps the figure's size: an image is ``figsize * dpi`` pixels.
    """
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)
    return path


def as_graph(graph_or_model: NCG | FreeNet) -> NCG:
    """The NCG of ``graph_or_model`` (a model's :attr:`FreeNet.graph` snapshot)."""
    if isinstance(graph_or_model, FreeNet):
        return graph_or_model.graph
    if isinstance(graph_or_model, NCG):
        return graph_or_model
    raise NCGError(f"expected an NCG or a FreeNet, got {type(graph_or_model).__name__}")
