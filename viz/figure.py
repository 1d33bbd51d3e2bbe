"""What the drawing functions share: node markers and the edge colormap.

The figures themselves come from :func:`ncg.figure.new_figure` (an Agg canvas, no pyplot) and are
saved by :func:`ncg.figure.save_figure`.

A drawing function that takes an NCG or a FreeNet reads its graph with
:func:`ncg.io._common.graph_of`, as the readers and writers of :mod:`ncg.io` do.

Examples
--------
>>> edge_cmap().N, HIDDEN_STYLE["marker"]
(256, 'o')
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import Colormap, ListedColormap

__all__ = ["edge_cmap", "HIDDEN_STYLE", "OUTPUT_STYLE", "INPUT_STYLE", "WEIGHT_CMAP"]

WEIGHT_CMAP = "RdBu_r"
"""Diverging colormap for signed values: blue negative, white zero, red positive."""


def edge_cmap() -> Colormap:
    """:data:`WEIGHT_CMAP` without its pale middle, so a weak edge on white still shows its sign."""
    base = colormaps[WEIGHT_CMAP]
    return ListedColormap(base(np.concatenate([np.linspace(0.0, 0.3, 128), np.linspace(0.7, 1.0, 128)])),
                          name="edge_weight")


# The markers of the node roles, drawn by viz.topology.draw_neurons in every graph figure.
HIDDEN_STYLE = {"marker": "o", "color": "#3b3b3b", "label": "hidden neuron"}
OUTPUT_STYLE = {"marker": "D", "color": "#f28e2b", "label": "output neuron"}
INPUT_STYLE = {"marker": "s", "color": "#59a14f", "label": "input node"}  # holds an input feature

