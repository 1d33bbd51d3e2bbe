"""Render every figure of a finished run folder into it.

A run folder (written by ``examples/evolve_mnist.py``) may hold ``model.pt`` (or only
``graph.graphml``), ``history.json``, ``coactivation.npz`` and ``config.json``. Each figure is
drawn when its inputs are present and skipped with a note otherwise.

Examples
--------
>>> import tempfile
>>> render_run(tempfile.mkdtemp(), verbose=False)
[]
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

from ncg.checkpoint import load_freenet
from ncg.evolve.coactivation import Coactivation
from ncg.evolve.history import History
from ncg.io import read_graphml
from ncg.model import FreeNet
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


def _load_model(run_dir: Path) -> tuple[FreeNet | None, dict, str]:
    if (run_dir / "model.pt").is_file():
        model, extra = load_freenet(run_dir / "model.pt")
        return model, extra, "model.pt"
    if (run_dir / "graph.graphml").is_file():
        return read_graphml(run_dir / "graph.graphml"), {}, "graph.graphml"
    return None, {}, ""


def _image_shape(run_dir: Path, model: FreeNet, extra: dict) -> tuple[int, int] | None:
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    for source in (extra, config if isinstance(config, dict) else {}):
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

    model, extra, source = _load_model(run_dir)
    if model is None:
        for figure in ("topology.png", "structure.png", "weights.png", "receptive_fields.png", "coactivation.png"):
            skip(figure, "no model.pt or graph.graphml")
    else:
        for name, plot in (("topology.png", draw_topology), ("structure.png", plot_degree_histograms),
                           ("weights.png", plot_weight_histogram)):
            plot(model, run_dir / name)
            written.append(run_dir / name)
        image_shape = _image_shape(run_dir, model, extra)
        if image_shape is None:
            skip("receptive_fields.png", f"no image_shape in {source} or config.json, and "
                                         f"in_features={model.in_features} is not a square")
        else:
            plot_receptive_fields(model, image_shape, run_dir / "receptive_fields.png")
            written.append(run_dir / "receptive_fields.png")
        if not (run_dir / "coactivation.npz").is_file():
            skip("coactivation.png", "no coactivation.npz")
        else:
            coactivation = Coactivation.load(run_dir / "coactivation.npz")
            if coactivation.num_neurons != model.num_neurons:
                skip("coactivation.png", f"coactivation.npz covers {coactivation.num_neurons} neurons, "
                                         f"{source} has {model.num_neurons}")
            else:
                plot_coactivation(coactivation, model, run_dir / "coactivation.png")
                written.append(run_dir / "coactivation.png")
    if not (run_dir / "history.json").is_file():
        skip("evolution_summary.png and evolution/", "no history.json")
    else:
        history = History.load(run_dir / "history.json")
        if len(history) == 0:
            skip("evolution_summary.png and evolution/", "history.json has no rounds")
        else:
            plot_evolution_summary(history, run_dir / "evolution_summary.png")
            written.append(run_dir / "evolution_summary.png")
            written += render_evolution(history, run_dir / "evolution")
    return written
