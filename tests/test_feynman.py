"""The Feynman equations benchmark (ncg.experiments.feynman, feynman_formulas, feynman_report)."""
from __future__ import annotations

import itertools
import json
import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncg.errors import NCGError
from ncg.experiments import feynman
from ncg.experiments.__main__ import main as experiments_main
from ncg.experiments.feynman import (
    FitBudget,
    _freenet_count,
    build_model,
    freenet_neurons,
    run_feynman,
    sweep_order,
)
from ncg.experiments.feynman_formulas import FORMULAS, Formula, get_formula, sample
from ncg.experiments.feynman_report import comparisons, feynman_table

pi = math.pi

# (id, variables in the table's order, value worked out by hand)
HAND = [
    ("I.6.2a", [0.0], 1 / math.sqrt(2 * pi)),  # exp(0)/sqrt(2 pi)
    ("I.6.2", [2.0, 0.0], 1 / (math.sqrt(2 * pi) * 2)),
    ("I.12.1", [2.0, 3.0], 6.0),
    ("I.14.4", [2.0, 3.0], 9.0),  # 2 * 9 / 2
    ("I.25.13", [6.0, 3.0], 2.0),
    ("I.26.2", [0.5, pi / 2], pi / 6),  # arcsin(0.5 * 1)
    ("II.11.28", [1.0, 1.5], 4.0),  # 1 + 1.5 / (1 - 0.5)
    ("I.10.7", [1.0, 3.0, 5.0], 1.25),  # 1 / sqrt(1 - 9/25) = 1 / 0.8
    ("I.16.6", [2.0, 1.0, 1.0], 1.6),  # (1 + 1) / (1 + 1/4)
    ("I.27.6", [2.0, 4.0, 2.0], 1.0),  # 1 / (1/2 + 2/4)
    ("I.37.4", [1.0, 4.0, 0.0], 9.0),  # 1 + 4 + 2 * 2 * 1
    ("I.47.23", [2.0, 8.0, 4.0], 2.0),  # sqrt(16 / 4)
    ("III.17.37", [2.0, 3.0, 0.0], 8.0),  # 2 * (1 + 3)
    ("I.8.14", [1.0, 4.0, 1.0, 5.0], 5.0),  # sqrt(9 + 16)
    ("I.13.4", [2.0, 1.0, 2.0, 3.0], 14.0),  # (1 + 4 + 9)
    ("I.15.3x", [10.0, 3.0, 5.0, 2.0], 5.0),  # (10 - 6) / 0.8
    ("I.29.16", [3.0, 4.0, pi / 2, 0.0], 5.0),  # cos(pi/2) = 0
    ("II.38.3", [2.0, 3.0, 4.0, 8.0], 12.0),  # 2 * 3 * 8 / 4
    ("I.13.12", [1.0, 2.0, 2.0, 1.0, 3.0], 3.0),  # 3 * 2 * (1 - 1/2)
    ("I.12.11", [2.0, 1.0, 3.0, 4.0, pi / 2], 26.0),  # 2 * (1 + 12)
    ("I.11.19", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 32.0),  # 4 + 10 + 18
    ("I.9.18", [1.0, 2.0, 3.0, 4.0, 1.0, 4.0, 0.0, 1.0, 1.0], 0.24),  # 6 / (9 + 16 + 0)
    ("I.40.1", [2.0, 1.0, 1.0, 1.0, 1.0, 1.0], 2 * math.exp(-1.0)),
]


@pytest.mark.parametrize("id, point, expected", HAND, ids=[h[0] for h in HAND])
def test_formulas_match_values_worked_out_by_hand(id, point, expected):
    formula = get_formula(id)
    assert len(point) == formula.num_variables
    assert formula(np.array([point])) == pytest.approx([expected], rel=1e-12)


def test_the_set_spans_1_to_9_variables_with_at_least_30_formulas():
    counts = sorted({f.num_variables for f in FORMULAS.values()})
    assert len(FORMULAS) >= 30
    assert counts[0] == 1 and counts[-1] >= 6
    assert all(id == f.id for id, f in FORMULAS.items())


@pytest.mark.parametrize("id", list(FORMULAS))
def test_every_formula_is_finite_on_its_ranges_corners_included(id):
    formula = FORMULAS[id]
    x, y = sample(formula, 2000, seed=0)
    corners = np.array(list(itertools.product(*formula.ranges)))
    assert np.isfinite(y).all() and np.isfinite(formula(corners)).all()
    assert np.ptp(y) > 0  # the target varies


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 50), id=st.sampled_from(list(FORMULAS)))
def test_samples_lie_in_the_ranges_and_repeat_with_the_seed(seed, n, id):
    formula = FORMULAS[id]
    x, y = sample(formula, n, seed=seed)
    low, high = np.array(formula.ranges).T
    assert x.shape == (n, formula.num_variables) and y.shape == (n,)
    assert ((x >= low) & (x <= high)).all()
    x2, y2 = sample(formula, n, seed=seed)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_bad_formulas_and_arguments_name_themselves():
    with pytest.raises(NCGError, match="2 variables but 1 ranges"):
        Formula("bad", "x*y", lambda x, y: x * y, ("x", "y"), ((1, 2),))
    with pytest.raises(NCGError, match="low < high"):
        Formula("bad", "x", lambda x: x, ("x",), ((2, 1),))
    with pytest.raises(NCGError, match="formula must be one of"):
        get_formula("I.99.9")
    with pytest.raises(NCGError, match=r"shape \[n, 2\]"):
        FORMULAS["I.12.1"](np.zeros((3, 3)))
    with pytest.raises(NCGError, match="num_points"):
        sample(FORMULAS["I.12.1"], 0)
    with pytest.raises(NCGError, match="adam_lrs"):
        FitBudget(adam_lrs=())
    with pytest.raises(NCGError, match="activation"):
        FitBudget(activation="swish")
    with pytest.raises(NCGError, match="method must be one of"):
        build_model("transformer", 2, 50, 0)
    with pytest.raises(NCGError, match="methods must be drawn"):
        run_feynman("unused", ["I.12.1"], methods=["svm"])


@pytest.mark.parametrize("f", [1, 2, 3, 6, 9])
@pytest.mark.parametrize("size", [50, 200, 1000])
def test_sizes_match_pytorch_counts(f, size):
    h = freenet_neurons(f, size)
    free = build_model("freenet", f, size, seed=0)
    assert sum(p.numel() for p in free.parameters()) == _freenet_count(f, h)
    assert free.num_neurons - free.graph.num_inputs == h + 1  # the hidden neurons and the output
    layered = build_model("layered", f, size, seed=0)
    assert layered.num_neurons == free.num_neurons  # the same neurons, in consecutive layers
    assert layered.graph.num_edges < free.graph.num_edges
    mlp = build_model("mlp", f, size, seed=0)
    for model in (free, mlp):
        count = sum(p.numel() for p in model.parameters())
        assert abs(count - size) <= max(0.15 * size, f + 8), (f, size, count)
    evolve = build_model("freenet-evolve", f, size, seed=0)
    assert sum(p.numel() for p in evolve.parameters()) > 1.5 * size  # pruned down while it trains


def test_sweep_order_interleaves_variable_counts():
    order = sweep_order()
    assert sorted(order) == sorted(FORMULAS)
    first = [FORMULAS[id].num_variables for id in order[:7]]
    assert first == sorted(set(first)) and len(first) == len(set(first))


def test_kan_is_skipped_with_a_reason_when_pykan_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(feynman, "kan_available", lambda: "pykan needs kan: pip install 'ncg[peers]'")
    lines: list[str] = []
    rows = run_feynman(tmp_path, ["I.6.2a"], sizes=[50], seeds=[0], methods=["kan", "gbr"], budget=FitBudget.quick(),
                       log=lines.append)
    assert lines[0] == "skipping kan: pykan needs kan: pip install 'ncg[peers]'"
    assert [r["method"] for r in rows] == ["gbr"]


@pytest.mark.slow  # importing pykan (sympy, pandas) takes seconds
@pytest.mark.skipif(feynman.kan_available() is not None, reason="pykan (the peers extra) is not installed")
def test_kan_counts_its_trainable_parameters():
    kan = build_model("kan", 2, 200, seed=0)
    trainable = sum(p.numel() for p in kan.parameters() if p.requires_grad)
    assert trainable == 14 * (2 * 5 + 5)  # [2, 5, 1]: 15 edges of grid 5 + order 3 + 2 scales
    result = feynman.fit("kan", FORMULAS["I.12.1"], 200, 0, FitBudget.quick())
    assert result["parameters"] == trainable and math.isfinite(result["test_nrmse"])


def _row(formula, method, seed, nrmse, size=50):
    return dict(kind="feynman", formula=formula, num_variables=2, method=method, size=size, seed=seed,
                test_nrmse=nrmse, parameters=size, wall_seconds=1.0, train_flops=1e6)


def test_comparisons_count_wins_ties_and_losses():
    rows = []
    for s in range(5):
        jitter = 1 + 0.1 * s
        rows += [_row("a", "freenet", s, 1e-4 * jitter), _row("a", "mlp", s, 1e-2 * jitter * (1 + s % 2 / 10))]
        rows += [_row("b", "freenet", s, 1e-2 * jitter), _row("b", "mlp", s, 1e-4 * jitter * (1 + s % 2 / 10))]
        rows += [_row("c", "freenet", s, 1e-3 * (1 + s % 3)), _row("c", "mlp", s, 1e-3 * (1 + (s + 1) % 3))]
    verdicts = {k[0]: v["verdict"] for k, v in comparisons(rows).items()}
    assert verdicts == {"a": "better", "b": "worse", "c": "tie"}
    table = feynman_table(rows)
    assert "| 50 | 1 / 1 / 1 of 3 (W+T 67%, W 33%) |" in table
    assert "| all (formula, size) pairs | 1 / 1 / 1 of 3 (W+T 67%, W 33%) |" in table
    assert "| a | 2 | 50 | 1.2e-04 ± " in table


def test_quick_cli_runs_within_a_minute_resumes_and_reports(tmp_path, capsys):
    begin = time.perf_counter()
    assert experiments_main(["feynman", "--quick", "--out", str(tmp_path)]) == 0
    assert time.perf_counter() - begin < 60
    out = capsys.readouterr().out
    assert "runs in" in out and (tmp_path / "table.md").is_file()
    rows = json.loads((tmp_path / "runs.json").read_text())
    assert {r["formula"] for r in rows} == set(feynman.QUICK_FORMULAS) and {r["seed"] for r in rows} == {0, 1}
    budget = FitBudget.quick()
    for row in rows:
        assert row["kind"] == "feynman" and row["test_nrmse"] >= 0 and row["fitted"] == (row["test_nrmse"] <= 1e-3)
        if row["method"] == "gbr":
            assert row["size"] == 0 and row["steps"] is None
        else:
            assert row["size"] == 50 and row["steps"] >= budget.adam_steps and row["train_flops"] > 0
    # a rerun skips every finished cell
    stamp = {p: p.stat().st_mtime_ns for p in tmp_path.glob("rows/*/*/*.json")}
    assert len(stamp) == len(rows)
    assert experiments_main(["feynman", "--quick", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith(f"0 of {len(rows)} cells")
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())
    # the report command rebuilds the table and the figure from runs.json alone
    (tmp_path / "table.md").unlink()
    (tmp_path / "nrmse-vs-parameters.png").unlink()
    assert experiments_main(["report", str(tmp_path)]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| I.12.1 | 2 | 50 |" in table and "layered control" in table
    assert (tmp_path / "nrmse-vs-parameters.png").stat().st_size > 0


def test_the_exported_graph_reads_back_and_its_neuron_table_adds_up(tmp_path):
    import torch

    from ncg.experiments.feynman_graph import export_graph, neuron_table
    from ncg.io import read_graphml

    paths = export_graph(tmp_path, "I.12.1", 50, 0, budget=FitBudget.quick())
    assert all(p.is_file() for p in paths.values())
    model = read_graphml(paths["graphml"])
    x = torch.randn(32, 2, dtype=torch.float64)
    rows = neuron_table(model, x)
    assert len(rows) == freenet_neurons(2, 50) and sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert [r["share"] for r in rows] == sorted((r["share"] for r in rows), reverse=True)
    graph = model.graph
    first = rows[0]["neuron"]
    for i, w in zip(graph.inputs.tolist(), rows[0]["inputs"]):
        mask = (graph.edge_index[0] == i) & (graph.edge_index[1] == first)
        assert float(graph.weight[mask].sum()) == w
    assert "| neuron | w from mu | w from Nn |" in paths["neurons"].read_text()
    from viz.__main__ import main as viz_main

    assert viz_main(["topology", str(paths["graphml"])]) == 0
    assert paths["graphml"].with_suffix(".png").stat().st_size > 0
