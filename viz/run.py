"""Render every figure of a finished run folder into it.

A run folder (written by ``examples/evolve_mnist.py``, read through :class:`ncg.run_folder.RunFolder`)
may hold ``model.pt`` (or only ``graph.graphml``), ``history.json``, ``coactivation.npz`` and
``config.json``. Each figure is drawn when its inputs are present and skipped with a note otherwise.

Examples
--------
>>> import tempfile
>>> render_run(tempfile.mkdtemp(), verbose=False)
[]
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

from ncg.model import FreeNet
from ncg.run_folder import RunFolder
from viz.analysis import plot_coactivation, plot_degree_histograms, plot_receptive_fields, plot_weight_histogram
from viz.evolution import plot_evolution_summary, render_evolution
from viz.topology import draw_topology

__all__ = ["render_run", "FIGURES"]

FIGURES = {
    "topology.png": "the final topology (draw_topology)",
    "structure.png": "in/out-degree histograms and generation sizes (plot_degree_histograms)",
    "weights.png": "edge weight, bias and encoder weight histograms (plot_weight_histogram)",
    "receptive_fields.png": "encoder rows as images (plot_receptive_fields)",
    "coactivation.png": "coactivation heatmap by generation, firing rates (plot_coactivation)",
    "evolution_summary.png": "edges, neurons, depth, edits and accuracy per round (plot_evolution_summary)",
    "evolution/": "evolution.gif and frame_000.png ... (render_evolution)",
}
"""What :func:`render_run` writes into the run folder."""


def _image_shape(folder: RunFolder, model: FreeNet, extra: dict) -> tuple[int, int] | None:
    config = folder.read_config() if folder.file("config.json").is_file() else {}
    for source in (extra, config):
        shape = source.get("image_shape")
        if shape and len(shape) == 2 and shape[0] * shape[1] == model.in_features:
            return int(shape[0]), int(shape[1])
    side = math.isqrt(model.in_features)
    return (side, side) if side * side == model.in_features and side > 1 else None


def render_run(run_dir: str | os.PathLike, verbose: bool = True) -> list[Path]:
    """Draw every figure whose inputs exist in ``run_dir`` into ``run_dir``.

    Parameters
    ----------
    run_dir : str or PathLike
    verbose : bool, default True
        Print a note on stderr for each figure skipped and why.

    Returns
    -------
    list of Path
        The files written (see :data:`FIGURES`).

    Raises
    ------
    FileNotFoundError
        If ``run_dir`` is not a folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist")
    written: list[Path] = []

    def skip(figure: str, reason: str) -> None:
        if verbose:
            print(f"skipped {figure}: {reason}", file=sys.stderr)

    folder = RunFolder(run_dir)
    model, extra, source = folder.load_model()
    if model is None:
        for figure in ("topology.png", "structure.png", "weights.png", "receptive_fields.png", "coactivation.png"):
            skip(figure, "no model.pt or graph.graphml")
    else:
        for name, plot in (("topology.png", draw_topology), ("structure.png", plot_degree_histograms),
                           ("weights.png", plot_weight_histogram)):
            plot(model, run_dir / name)
            written.append(run_dir / name)
        image_shape = _image_shape(folder, model, extra)
        if image_shape is None:
            skip("receptive_fields.png", f"no image_shape in {source} or config.json, and "
                                         f"in_features={model.in_features} is not a square")
        else:
            plot_receptive_fields(model, image_shape, run_dir / "receptive_fields.png")
            written.append(run_dir / "receptive_fields.png")
        coactivation = folder.load_coactivation()
        if coactivation is None:
            skip("coactivation.png", "no coactivation.npz")
        elif coactivation.num_neurons != model.num_neurons:
            skip("coactivation.png", f"coactivation.npz covers {coactivation.num_neurons} neurons, "
                                     f"{source} has {model.num_neurons}")
        else:
            plot_coactivation(coactivation, model, run_dir / "coactivation.png")
            written.append(run_dir / "coactivation.png")
    history = folder.load_history()
    if history is None:
        skip("evolution_summary.png and evolution/", "no history.json")
    elif len(history) == 0:
        skip("evolution_summary.png and evolution/", "history.json has no rounds")
    else:
        plot_evolution_summary(history, run_dir / "evolution_summary.png")
        written.append(run_dir / "evolution_summary.png")
        written += render_evolution(history, run_dir / "evolution")
    return written
