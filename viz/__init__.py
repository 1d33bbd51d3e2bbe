"""Figures of FreeNets: topology, evolution replay, and analysis; read-only over graphs and histories.

Everything draws on matplotlib ``Figure`` objects with the Agg canvas (no display needed) and
returns the figure; give ``path`` to save it (PNG, SVG, ... by extension). ``python -m viz RUN_DIR``
renders every figure of a run folder (:func:`render_run`); :func:`explore` (``python -m viz explore
RUN_OR_GRAPH``) writes an interactive explorer page of a net or a run, one self-contained HTML
file that opens from ``file://``. Graphs of more than a few thousand neurons (up to millions) are
drawn from a fixed random sample of neurons, outputs included, and the edges among them
(:func:`sample_neurons`); each figure says so. :func:`pareto_figure` (accuracy
against size for an experiment report) lives in :mod:`ncg.experiments.pareto` and is re-exported here.

Examples
--------
>>> import viz
>>> from ncg import NCG
>>> fig = viz.draw_topology(NCG.random_dag(12, density=0.4, num_outputs=2, seed=0), figsize=(5, 3), dpi=60)
>>> fig.canvas.get_width_height()
(300, 180)
"""
from ncg.experiments.pareto import pareto_figure
from viz.analysis import plot_coactivation, plot_degree_histograms, plot_receptive_fields, plot_weight_histogram
from viz.evolution import evolution_frames, evolution_layout, plot_evolution_summary, render_evolution
from viz.explore import explore, explorer_data
from viz.layout import edge_paths, generation_layout
from viz.run import render_run
from viz.sample import sample_neurons
from viz.topology import draw_topology

__all__ = [
    "draw_topology",
    "render_evolution",
    "plot_evolution_summary",
    "plot_coactivation",
    "plot_degree_histograms",
    "plot_weight_histogram",
    "plot_receptive_fields",
    "render_run",
    "explore",
    "explorer_data",
    "generation_layout",
    "edge_paths",
    "evolution_frames",
    "evolution_layout",
    "pareto_figure",
    "sample_neurons",
]
