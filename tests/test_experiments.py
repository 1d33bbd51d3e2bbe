"""The experiment runner end to end on a tiny budget: every method, resume, table, CLI."""
from __future__ import annotations

import json

import pytest

import ncg.experiments.runner as runner
from ncg.experiments.__main__ import main
from ncg.errors import NCGError
from ncg.experiments.methods import METHODS, Budget, hidden_layers
from ncg.experiments.runner import cell_path, run_sweep

TINY = Budget(neurons=24, stages=((2, 1e-2),), rounds=2, batch_size=32, train_samples=400, record_samples=200,
              sparse_parameters=1000)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    return out, run_sweep(["digits"], list(METHODS), [0, 1], TINY, out, progress=False)


@pytest.mark.slow
def test_every_method_trains_above_chance(sweep):
    _, rows = sweep
    assert {(r["method"], r["seed"]) for r in rows} == {(m, s) for m in METHODS for s in (0, 1)}
    deep = ("layered2-", "layered3-", "skips2-", "skips3-")  # 8 to 12 neurons a layer learn slowly in 2 tiny epochs
    for row in rows:  # chance is 0.1
        if not row["method"].startswith(deep):
            assert row["test_accuracy"] > 0.3, (row["method"], row["seed"], row["test_accuracy"])
    for method in (m for m in METHODS if m.startswith(deep)):
        mean = sum(r["test_accuracy"] for r in rows if r["method"] == method) / 2
        assert mean > 0.15, (method, mean)


def test_rows_carry_size_and_cost(sweep):
    _, rows = sweep
    for row in rows:
        for key in ("parameters", "hidden_edges", "input_connections", "neurons", "depth", "train_flops",
                    "wall_seconds", "epochs", "test_split", "metric", "candidate"):
            assert key in row, key
        assert row["parameters"] > 0 and row["train_flops"] > 0
    by = {(r["method"], r["seed"]): r for r in rows}
    target = round(0.38 * 34 * 33 / 2)
    for method in ("imp", "set", "rigl", "static-random"):
        assert by[(method, 0)]["hidden_edges"] == target, method
    assert by[("imp", 0)]["epochs"] == 2 + 2 * 1  # retraining counts
    assert by[("imp", 0)]["train_flops"] > by[("static-random", 0)]["train_flops"]
    assert by[("mlp-neurons", 0)]["neurons"] == 24 + 10
    assert by[("free-evolve", 0)]["candidate"] and not by[("dense", 0)]["candidate"]


def test_runs_files_and_table(sweep):
    out, rows = sweep
    assert json.loads((out / "runs.json").read_text()) == rows
    header = (out / "runs.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["dataset", "method", "seed", "metric"]
    assert main(["report", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert "| method | test accuracy (%)" in table and "vs strongest baseline" in table
    assert all(f"| {m} |" in table or f"| **{m}** |" in table for m in METHODS)
    assert (out / "pareto-digits.png").stat().st_size > 0


def test_a_killed_sweep_resumes_without_redoing_finished_cells(tmp_path, monkeypatch):
    methods, seeds = ["mlp-neurons", "static-random"], [0, 1]
    real = runner.run_cell
    calls = []

    def dies_on_third(*args, **kwargs):
        calls.append(args[1].name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process is killed while this cell trains
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_cell", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(["digits"], methods, seeds, TINY, tmp_path, progress=False)
    done = sorted(p.name for p in (tmp_path / "cells" / "digits").glob("*/*.json"))
    assert len(done) == 2
    first_bytes = cell_path(tmp_path, "digits", "mlp-neurons", 0).read_bytes()
    calls.clear()
    monkeypatch.setattr(runner, "run_cell", lambda *a, **k: (calls.append(a[1].name), real(*a, **k))[1])
    rows = run_sweep(["digits"], methods, seeds, TINY, tmp_path, progress=False)
    assert calls == ["static-random", "static-random"] and len(rows) == 4
    assert cell_path(tmp_path, "digits", "mlp-neurons", 0).read_bytes() == first_bytes


def test_shards_split_the_cells(tmp_path):
    for shard in ((0, 2), (1, 2)):
        run_sweep(["digits"], ["mlp-neurons"], [0, 1, 2], TINY, tmp_path, shard=shard, progress=False)
    assert len(json.loads((tmp_path / "runs.json").read_text())) == 3


def test_cli_runs_and_rebuilds_the_docs_section(tmp_path, capsys):
    out = tmp_path / "tiny"
    args = ["run", "--datasets", "digits", "--methods", "mlp-neurons", "dense", "--seeds", "0", "1", "--neurons", "8",
            "--epochs", "1", "--rounds", "1", "--finetune-epochs", "0", "--train-samples", "200", "--out", str(out)]
    assert main(args) == 0
    page = tmp_path / "results.md"
    page.write_text("intro\n<!-- results:tiny:begin -->\nold\n<!-- results:tiny:end -->\nafter\n")
    assert main(["report", str(out), "--docs", str(page)]) == 0
    text = page.read_text()
    assert "\nold\n" not in text and "### digits" in text and text.endswith("after\n")
    assert main(["run", "--datasets", "digits", "--methods", "nope", "--out", str(out)]) == 2
    assert "unknown method" in capsys.readouterr().err


def test_sparse_methods_fit_their_parameter_budget_and_presets_expand(sweep):
    from ncg.experiments.methods import PRESETS, check_methods

    _, rows = sweep
    budget = TINY.sparse_parameters
    for row in rows:
        if row["method"].startswith("sparse-") or row["method"] == "mlp-sparse":
            assert row["parameters"] <= budget, row["method"]
        if row["method"].startswith("sparse-"):
            assert row["input_connections"] < 64 * 34  # input connections are edges, not a dense encoder
    fan_in = (budget - 34) // 34
    for method in ("sparse-magnitude", "sparse-imp", "sparse-granet", "sparse-gradual-hebbian",
                   "sparse-gradual-coactive"):  # pruned from the whole complete DAG to the budget
        row = next(r for r in rows if r["method"] == method)
        assert row["hidden_edges"] + row["input_connections"] == fan_in * 34, method
        regrows = method in ("sparse-granet", "sparse-gradual-hebbian", "sparse-gradual-coactive")
        assert (row.get("edges_added", 0) > 0) == regrows, method  # regrowth on the way down
    assert [m.name for m in check_methods(["sparse"])] == PRESETS["sparse"]


def test_layered_controls_pair_the_layer_free_methods(sweep):
    """Every layered control has its layer-free pair's parameter budget and an MLP's depth, and
    the pruned ones land on the same edge count (or keep a smaller start whole)."""
    _, rows = sweep
    by = {(r["method"], r["seed"]): r for r in rows}
    fan_in = (TINY.sparse_parameters - 34) // 34
    for family in ("static", "magnitude", "imp", "granet", "gradual-hebbian", "set", "rigl"):
        free = by[(f"sparse-{family}", 0)]
        for depth in (1, 2, 3):
            row = by[(f"layered{depth}-{family}", 0)]
            assert row["depth"] == depth + 1 and row["neurons"] <= 34, (family, depth)  # dead neurons may go
            assert row["parameters"] <= TINY.sparse_parameters, (family, depth)
            widths = (64, *hidden_layers(24, depth), 10)
            complete = sum(a * b for a, b in zip(widths, widths[1:]))
            if family not in ("static", "set", "rigl"):
                edges = row["hidden_edges"] + row["input_connections"]  # dead neurons take edges along
                assert 0.5 * min(fan_in * 34, complete) < edges <= min(fan_in * 34, complete), (family, depth)
            skips = by[(f"skips{depth}-{family}", 0)]
            assert skips["depth"] <= depth + 1 and skips["parameters"] <= TINY.sparse_parameters, (family, depth)


def test_a_method_at_another_parameter_budget_reaches_it(tmp_path):
    """``name@P`` runs a method at P parameters: the schedule prunes as fast as the target needs."""
    from ncg.experiments.methods import check_methods

    names = ["sparse-granet@400", "layered2-granet@400", "mlp-sparse@400"]
    assert [m.name for m in check_methods(names)] == names
    rows = run_sweep(["digits"], names, [0], TINY, tmp_path, progress=False)
    for row in rows:
        assert 300 < row["parameters"] <= 400, row["method"]
    with pytest.raises(NCGError, match="after '@'"):
        check_methods(["sparse-granet@lots"])


def test_a_sweep_refuses_cells_run_under_another_budget(tmp_path):
    from dataclasses import replace

    from ncg.errors import NCGError

    run_sweep(["digits"], ["mlp-neurons"], [0], TINY, tmp_path, progress=False)
    with pytest.raises(NCGError, match=r"another budget \(differs in \['neurons'\]\)"):
        run_sweep(["digits"], ["mlp-neurons"], [0], replace(TINY, neurons=30), tmp_path, progress=False)


def test_variants_change_one_config_field_and_run(tmp_path):
    from ncg.errors import NCGError
    from ncg.experiments.methods import Setting, check_methods

    (method,) = check_methods(["sparse-hebbian[tau=0.1,budget.prune_fraction=0.5,measure=joint]"])
    config = method.configure(Setting(TINY, 64, 10), 0)
    assert (config.tau, config.budget.prune_fraction, config.measure) == (0.1, 0.5, "joint")
    assert config.grow_score == "coactivation" and method.candidate
    rows = run_sweep(["digits"], [method.name], [0], TINY, tmp_path, progress=False)
    assert rows[0]["method"] == method.name and rows[0]["test_accuracy"] > 0.3
    with pytest.raises(NCGError, match="cannot vary \\['taux'\\]"):
        check_methods(["sparse-rigl[taux=1]"])
    with pytest.raises(NCGError, match="mlp-neurons is not trained by Free-Evolve"):
        check_methods(["mlp-neurons[tau=1]"])


def test_cli_help_explains_every_flag(capsys):
    import argparse

    from ncg.experiments.__main__ import _parser

    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in [("", parser), *commands.choices.items()]:
        for action in sub._actions:
            assert action.help and action.help.strip(), (name, action.option_strings or action.dest)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    assert "(default: None)" not in text and "--quick" in text
    assert "(default: 0 1 2 3 4; --quick: 0 1)" in " ".join(text.split())


def test_quick_sweep_runs_and_reports_each_cell(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["run", "--quick", "--datasets", "digits", "--methods", "mlp-neurons", "--neurons", "8",
                 "--out", str(out)]) == 0
    rows = json.loads((out / "runs.json").read_text())
    assert [r["seed"] for r in rows] == [0, 1]
    assert rows[0]["budget"]["neurons"] == 8 and rows[0]["budget"]["record_samples"] == 500  # explicit flags win
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"2 of 2 cells to run into {out}"
    for seed, line in zip((0, 1), lines[1:3]):
        assert line.startswith(f"digits mlp-neurons seed {seed}: test_accuracy 0.") and line.endswith(" s"), line


def test_report_names_a_missing_docs_page(sweep, tmp_path, capsys):
    out, _ = sweep
    missing = tmp_path / "docs" / "results.md"
    assert main(["report", str(out), "--docs", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --docs {missing}: no such file") and len(err.splitlines()) == 1
