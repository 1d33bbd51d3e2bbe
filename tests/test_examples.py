"""Run every example in its --quick mode and check what it leaves behind."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from PIL import Image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = _load("evolve_mnist").main(["--quick", "--out", str(out), "--seed", "1"])
    return out, summary


def test_evolve_mnist_quick_writes_a_complete_run_folder(quick_run):
    out, summary = quick_run
    for name in ("config.json", "metrics.csv", "metrics.json", "history.json", "model.pt",
                 "graph.graphml", "coactivation.npz", "summary.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "summary.json").read_text())
    for key in ("test_accuracy", "edges", "neurons", "depth", "edges_pruned", "edges_added", "wall_seconds"):
        assert key in saved, key
    assert saved == summary
    assert 0.5 < saved["test_accuracy"] <= 1.0
    assert saved["edges_pruned"] > 0
    assert saved["edges"] < saved["initial_edges"]
    assert nx.read_graphml(out / "graph.graphml").number_of_edges() == saved["edges"]
    pngs = sorted(out.glob("*.png"))
    assert pngs, "figures were not rendered"
    for png in pngs:
        with Image.open(png) as image:
            assert image.size[0] > 100 and image.size[1] > 100


def test_evolve_mnist_help_lists_the_knobs():
    result = subprocess.run([sys.executable, str(EXAMPLES / "evolve_mnist.py"), "--help"],
                            capture_output=True, text=True, check=True)
    for flag in ("--dataset", "--neurons", "--epochs", "--rounds", "--tau", "--seed", "--device", "--out", "--quick"):
        assert flag in result.stdout


def test_evolve_mnist_runs_on_digits(tmp_path):
    summary = _load("evolve_mnist").main(["--quick", "--dataset", "digits", "--out", str(tmp_path), "--no-figures"])
    assert summary["dataset"] == "digits" and summary["neurons"] <= 58


def test_custom_ncg_quick():
    result = _load("custom_ncg").main(["--quick"])
    assert result["neurons"] == 34 and 0.0 <= result["test_accuracy"] <= 1.0


def test_export_graphml_on_a_run(quick_run, tmp_path):
    out, summary = quick_run
    analysis = _load("export_graphml").main([str(out), "--out", str(tmp_path / "g.graphml")])
    assert analysis["is_dag"] and analysis["identical_outputs"]
    assert analysis["edges"] == summary["edges"]


def test_evolve_mnist_resume_continues_a_saved_run(quick_run):
    out, summary = quick_run
    again = _load("evolve_mnist").main(["--quick", "--out", str(out), "--seed", "1", "--resume", "--no-figures"])
    for key in ("test_accuracy", "edges", "neurons", "edges_pruned", "edges_added"):
        assert again[key] == summary[key], key


def test_explicit_flags_win_over_quick_and_bad_values_are_refused(capsys):
    parse = _load("evolve_mnist").parse_args
    args = parse(["--quick", "--neurons", "7", "--epochs", "3"])
    assert (args.neurons, args.epochs, args.rounds, args.final_epochs) == (7, 3, 2, 1)
    assert parse([]).neurons == 512
    for bad in (["--quick", "--neurons", "0"], ["--rounds", "-1"]):
        with pytest.raises(SystemExit) as exit_info:
            parse(bad)
        assert exit_info.value.code == 2
    assert "must be >=" in capsys.readouterr().err
