"""Matplotlib figures without pyplot: a figure on an Agg canvas, and saving it.

Every figure of ncg (the experiment report's Pareto figure) and of ``viz`` starts here. Figures
are built with :class:`matplotlib.figure.Figure` on an Agg canvas, never through ``pyplot``:
nothing needs a display, no global figure list grows, and the caller's backend is left alone.

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
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["new_figure", "save_figure"]


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

    Examples
    --------
    >>> import tempfile
    >>> fig, _ = new_figure((2, 1), dpi=50)
    >>> save_figure(fig, Path(tempfile.mkdtemp()) / "empty.png").suffix
    '.png'
    """
    if path is None:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=fig.dpi)
    return path
