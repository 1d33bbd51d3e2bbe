"""The experiment runner end to end on a tiny budget: every method, resume, table, CLI."""
from __future__ import annotations

import json

import pytest
import torch

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


ABLATIONS = ["sparse-granet[prune_score=normalized_magnitude]@1000", "sparse-granet[prune_score=quota]@1000",
             "sparse-granet[start.init=by_source]@1000", "sparse-granet[start.init=he]@1000",
             "sparse-granet[start.reach=3]@1000", "sparse-granet[start.layered=2]@1000",
             "sparse-granet[neurons=12]@1000", "layered1-granet[neurons=12]@1000"]


def test_every_ablation_keeps_the_dag_the_budget_and_its_constraint(tmp_path):
    """Each factor of the layer-freedom ablations trains a valid DAG to its parameter budget; a hop
    cap is kept through regrowth, a lifted layered start has no constraint left."""
    from ncg.experiments.methods import Setting, check_methods

    methods = check_methods(["sparse-granet@1000", "layered1-granet@1000", *ABLATIONS])
    for method in methods:
        net = method.build(Setting(TINY, 64, 10), 0)
        method.train(net, Setting(TINY, 64, 10), *_digits_tensors(), 0)
        net.graph.validate()
        assert sum(p.numel() for p in net.parameters()) <= 1000, method.name
        src, dst = net.graph.edge_index.numpy()
        if "reach" in method.name:
            between = ~net.graph.is_input[src].numpy() & (net.graph.roles[dst] != net.graph.OUTPUT).numpy()
            assert (net.graph.position[dst][between] - net.graph.position[src][between] <= 3).all()
        if "layered=" in method.name:
            assert net.graph.allowed_layers is None
        if "neurons=12" in method.name:
            assert net.graph.num_neurons - net.graph.num_inputs <= 12 + 10


def _digits_tensors():
    from ncg.datasets import digits

    data = digits()
    return data.train.tensors, data.val.tensors


def test_start_options_build_what_they_say():
    from ncg.build import sparse_start
    from ncg.build import initialized
    from ncg.experiments.methods import Setting, Start, check_methods

    setting = Setting(TINY, 64, 10)
    (lifted,) = check_methods(["sparse-granet[start.layered=1]"])
    mlp = sparse_start(64, 24, 10, density=1.0, layers=(24,), seed=0)
    assert torch.equal(lifted.build(setting, 0).graph.edge_index, mlp.edge_index)
    graph = sparse_start(6, 4, 2, density=1.0, seed=0)
    count = torch.bincount(graph.edge_index[1], minlength=graph.num_neurons)[graph.edge_index[1]].double()
    he = initialized(graph, "he", 0).weight.double()
    assert (he.abs() <= (6 / count).sqrt() + 1e-6).all() and he.abs().max() > 1.5 / count.sqrt().min()
    by_source = initialized(graph, "by_source", 0)
    into_last = graph.edge_index[1] == graph.num_neurons - 1
    from_inputs = into_last & graph.is_input[graph.edge_index[0]]
    assert (by_source.weight[from_inputs].abs() <= 6 ** -0.5 + 1e-6).all()
    assert (by_source.weight[into_last & ~from_inputs].abs() <= 4 ** -0.5 + 1e-6).all()
    assert torch.equal(initialized(graph, "fan_in", 0).weight, graph.weight)
    assert Start(reach=4).validate().reach == 4


@pytest.mark.parametrize("name, message", [
    ("sparse-granet[start.init=xavier]", r"start.init must be one of \('fan_in', 'he', 'by_source'\), got 'xavier'"),
    ("sparse-granet[start.reach=0]", "start.reach must be an int >= 1 or None, got 0"),
    ("sparse-granet[start.reach=4,start.layered=1]", "exclude each other"),
    ("sparse-granet[neurons=0]", "Budget.neurons must be >= 1, got 0"),
    ("sparse-granet[start.depth=2]", r"cannot vary \['start.depth'\]"),
])
def test_bad_ablation_options_are_named(name, message):
    from ncg.experiments.methods import check_methods

    with pytest.raises(NCGError, match=message):
        check_methods([name])


@pytest.mark.parametrize("name, builder", [("layered1-granet[start.reach=4]", "layered"),
                                           ("sparse-rigl[start.layered=1]", "sparse"),
                                           ("free-evolve[start.init=he]", "dense-encoder complete")])
def test_starts_refuse_options_they_cannot_honour(name, builder):
    from ncg.experiments.methods import Setting, check_methods

    (method,) = check_methods([name])
    with pytest.raises(NCGError, match=f"the {builder} start takes no start"):
        method.build(Setting(TINY, 64, 10), 0)


def test_the_ablation_table_measures_each_factor_against_both_sides(tmp_path):
    from ncg.experiments.layer_pairs import ablation_rows, ablation_table

    rows = []
    for method, base in [("sparse-granet@1000", 0.90), ("layered1-granet@1000", 0.94), ("layered2-granet@1000", 0.93),
                         ("sparse-granet[start.reach=3]@1000", 0.92), ("sparse-granet[neurons=12]@1000", 0.95),
                         ("layered1-granet[neurons=12]@1000", 0.97), ("mlp-sparse@1000", 0.80)]:
        rows += [{"dataset": "toy", "method": method, "seed": s, "metric": "test_accuracy", "higher_is_better": True,
                  "candidate": False, "test_accuracy": base + 0.003 * s * s, "parameters": 990} for s in range(4)]
    entries = {e["factor"]: e for e in ablation_rows(rows)}
    assert entries["start.reach=3"]["control"] == "layered1-granet@1000"
    assert entries["neurons=12"]["control"] == "layered1-granet[neurons=12]@1000"
    table = ablation_table(rows)
    reach = next(line for line in table.splitlines() if "start.reach=3" in line)
    assert "| +2.00 |" in reach and "| 50% |" in reach and "layered wins" not in reach.split("|")[10]


def test_the_local_rule_keeps_its_hop_cap_and_meets_granets_layered_controls():
    from ncg.experiments.layer_pairs import pair_rows
    from ncg.experiments.methods import LOCAL_REACH, Setting, check_methods

    (local,) = check_methods(["sparse-local-granet@1000"])
    net = local.build(Setting(Budget(neurons=40), 8, 3), 0)
    src, dst = net.graph.edge_index.numpy()
    between = ~net.graph.is_input[src].numpy() & (net.graph.roles[dst] != net.graph.OUTPUT).numpy()
    assert between.any() and (dst[between] - src[between] <= LOCAL_REACH).all()
    assert int((dst[between] - src[between]).max()) == LOCAL_REACH
    rows = [{"dataset": "toy", "method": m, "seed": s, "metric": "test_accuracy", "higher_is_better": True,
             "candidate": False, "test_accuracy": 0.9 + 0.01 * s} for m in
            ["sparse-granet@1000", "layered2-granet@1000", "sparse-local-granet@1000"] for s in range(3)]
    pairs = {p["rule"]: p for p in pair_rows(rows)}
    assert pairs["local-granet"]["layered"] == pairs["granet"]["layered"] == {2: "layered2-granet@1000"}
