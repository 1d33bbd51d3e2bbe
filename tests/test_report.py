from __future__ import annotations

import json
import math
import re
import warnings

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from ncg.errors import NCGError
from ncg.experiments.report import (
    aggregate,
    confidence_interval,
    load_runs,
    markdown_table,
    paired_comparison,
    write_report,
)
from ncg.experiments.pareto import pareto_figure

SEEDS = range(5)


def run_row(dataset: str, method: str, seed: int, value: float, *, candidate: bool = False,
            regression: bool = False, parameters: int = 10_000) -> dict:
    """One row as the experiment runner writes it."""
    metric = "test_mse" if regression else "test_accuracy"
    return {
        "dataset": dataset, "method": method, "seed": seed,
        "task": "regression" if regression else "classification",
        "metric": metric, "higher_is_better": not regression, metric: value,
        "parameters": parameters, "hidden_edges": parameters // 2, "input_connections": parameters // 4,
        "neurons": 100, "depth": 3, "train_flops": 2.5e9, "wall_seconds": 12.0, "epochs": 5,
        "test_split": "official t10k" if not regression else "held-out 20%", "candidate": candidate,
    }


def experiment_rows() -> list[dict]:
    """MNIST: two baselines (wide is the stronger), a clear winner and a clear loser; poly: MSE."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.001, size=(4, len(SEEDS)))
    rows = []
    for seed in SEEDS:
        rows.append(run_row("mnist", "mlp", seed, 0.970 + noise[0, seed], parameters=100_000))
        rows.append(run_row("mnist", "mlp-wide", seed, 0.975 + noise[1, seed], parameters=400_000))
        rows.append(run_row("mnist", "free-evolve", seed, 0.985 + noise[2, seed], candidate=True,
                            parameters=50_000 + 1_000 * seed))
        rows.append(run_row("mnist", "free-evolve-tiny", seed, 0.950 + noise[3, seed], candidate=True,
                            parameters=5_000))
    for seed in SEEDS:
        rows.append(run_row("poly", "mlp", seed, 2e-3 * (1 + 0.1 * seed), regression=True, parameters=2_000))
        rows.append(run_row("poly", "kan", seed, 1e-3 * (1 + 0.05 * seed ** 2), regression=True, parameters=3_000))
        rows.append(run_row("poly", "free-evolve", seed, 5e-4 * (1 + 0.1 * (seed % 2)), candidate=True,
                            regression=True, parameters=800))
    return rows


def by_method(aggregates: list[dict], dataset: str) -> dict[str, dict]:
    return {entry["method"]: entry for entry in aggregates if entry["dataset"] == dataset}


def test_confidence_interval_by_hand():
    mean, half = confidence_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.302652729911275 / math.sqrt(3))  # t_{0.975, 2} * s / sqrt(n), s = 1
    assert half == pytest.approx(2.4841, abs=1e-4)
    assert math.isnan(confidence_interval([4.0])[1])
    assert confidence_interval([1.0, 2.0, 3.0], level=0.5)[1] < half
    with pytest.raises(NCGError, match="level"):
        confidence_interval([1.0, 2.0], level=1.5)


def test_aggregate_keeps_order_and_means():
    aggregates = aggregate(experiment_rows())
    assert [(a["dataset"], a["method"]) for a in aggregates] == [
        ("mnist", "mlp"), ("mnist", "mlp-wide"), ("mnist", "free-evolve"), ("mnist", "free-evolve-tiny"),
        ("poly", "mlp"), ("poly", "kan"), ("poly", "free-evolve"),
    ]
    evolve = by_method(aggregates, "mnist")["free-evolve"]
    assert evolve["n"] == 5 and evolve["seeds"] == [0, 1, 2, 3, 4]
    assert evolve["parameters"] == 52_000.0
    assert evolve["train_flops"] == 2.5e9 and evolve["depth"] == 3.0
    assert evolve["std"] == pytest.approx(np.std([r["test_accuracy"] for r in experiment_rows()
                                                  if r["method"] == "free-evolve" and r["dataset"] == "mnist"], ddof=1))


def test_strongest_baseline_higher_is_better():
    mnist = by_method(aggregate(experiment_rows()), "mnist")
    assert {entry["baseline"] for entry in mnist.values()} == {"mlp-wide"}  # not a better-scoring candidate
    assert mnist["mlp-wide"]["verdict"] == "baseline"
    assert mnist["free-evolve"]["verdict"] == "better"
    assert mnist["free-evolve"]["diff_vs_baseline"] == pytest.approx(0.01, abs=0.002)
    assert mnist["free-evolve-tiny"]["verdict"] == "worse"
    assert mnist["mlp"]["verdict"] == "worse"


def test_strongest_baseline_lower_is_better():
    poly = by_method(aggregate(experiment_rows()), "poly")
    assert poly["free-evolve"]["baseline"] == "kan"  # the lower MSE of the two baselines
    assert poly["kan"]["verdict"] == "baseline"
    assert poly["free-evolve"]["verdict"] == "better" and poly["free-evolve"]["diff_vs_baseline"] < 0
    assert poly["mlp"]["verdict"] == "worse"


def test_paired_p_value_matches_scipy():
    rows = experiment_rows()
    values = {r["seed"]: r["test_accuracy"] for r in rows if r["dataset"] == "mnist" and r["method"] == "mlp"}
    wide = {r["seed"]: r["test_accuracy"] for r in rows if r["dataset"] == "mnist" and r["method"] == "mlp-wide"}
    expected = stats.ttest_rel([values[s] for s in SEEDS], [wide[s] for s in SEEDS]).pvalue
    assert by_method(aggregate(rows), "mnist")["mlp"]["p_vs_baseline"] == pytest.approx(expected, rel=1e-12)


def test_pairing_uses_shared_seeds_only():
    difference, p_value, shared = paired_comparison({0: 1.0, 1: 2.5, 2: 3.0, 7: 100.0}, {0: 0.5, 1: 1.0, 2: 2.9})
    assert shared == 3
    assert difference == pytest.approx(np.mean([0.5, 1.5, 0.1]))
    assert p_value == pytest.approx(stats.ttest_rel([1.0, 2.5, 3.0], [0.5, 1.0, 2.9]).pvalue)


def test_degenerate_comparisons_are_nan_without_warnings():
    rows = [run_row("d", "base", s, 0.5 + 0.01 * s) for s in range(3)]
    rows += [run_row("d", "same", s, 0.5 + 0.01 * s, candidate=True) for s in range(3)]   # zero differences
    rows += [run_row("d", "offset", s, 0.6 + 0.01 * s, candidate=True) for s in range(3)]  # constant difference
    rows += [run_row("d", "single", 0, 0.9, candidate=True)]
    rows += [run_row("d", "disjoint", 9, 0.9, candidate=True)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = by_method(aggregate(rows), "d")
    for method in ("same", "offset", "single", "disjoint"):
        assert math.isnan(found[method]["p_vs_baseline"]) and found[method]["verdict"] == "tie"
    assert found["single"]["diff_vs_baseline"] == pytest.approx(0.4)
    assert math.isnan(found["disjoint"]["diff_vs_baseline"])
    assert math.isnan(found["single"]["ci95"]) and math.isnan(found["single"]["std"])


def test_no_baseline_skips_the_comparison():
    rows = [run_row("d", "free-evolve", s, 0.9, candidate=True) for s in range(2)]
    (entry,) = aggregate(rows)
    assert entry["baseline"] is None and entry["verdict"] is None and math.isnan(entry["p_vs_baseline"])
    assert "| **free-evolve** |" in markdown_table([entry])


def test_aggregate_rejects_bad_rows():
    row = run_row("d", "mlp", 0, 0.9)
    with pytest.raises(NCGError, match="occurs twice"):
        aggregate([row, dict(row)])
    with pytest.raises(NCGError, match="lacks metric"):
        aggregate([{k: v for k, v in row.items() if k != "metric"}])
    with pytest.raises(NCGError, match="mixes metrics"):
        aggregate([row, run_row("d", "kan", 0, 1e-3, regression=True)])


def test_markdown_table_columns_and_rows():
    aggregates = aggregate(experiment_rows())
    text = markdown_table(aggregates, dataset="mnist")
    lines = text.splitlines()
    assert lines[0] == "### mnist"
    header = [cell.strip() for cell in lines[2].strip("|").split("|")]
    assert header == ["method", "test accuracy (%) ↑", "seeds", "parameters", "hidden edges", "input connections",
                      "neurons", "depth", "training GFLOPs", "wall s", "vs strongest baseline"]
    body = [line for line in lines[4:] if line.startswith("| ")]
    assert [line.split("|")[1].strip() for line in body] == ["mlp", "mlp-wide", "**free-evolve**",
                                                             "**free-evolve-tiny**"]
    evolve = [cell.strip() for cell in body[2].strip("|").split("|")]
    assert evolve[1].startswith("98.") and " ± 0." in evolve[1]
    assert evolve[2:5] == ["5", "52,000", "26,000"]
    assert evolve[8] == "2.50"
    assert re.fullmatch(r"\+\d\.\d\d pts, p[=<]0\.\d{3} \(better\)", evolve[10]), evolve[10]
    assert "strongest baseline" in body[1]
    assert "Test split: official t10k." in text
    assert "### poly" not in text

    poly = markdown_table(aggregates, dataset="poly")
    assert "test mse ↓" in poly and "| **free-evolve** | 5.20e-04 ± 3.40e-05 |" in poly and "held-out 20%" in poly
    assert markdown_table(aggregates).count("### ") == 2
    with pytest.raises(NCGError, match="cifar"):
        markdown_table(aggregates, dataset="cifar")


def test_write_report_writes_both_files(tmp_path):
    paths = write_report(experiment_rows(), tmp_path / "report")
    assert paths["table"].read_text(encoding="utf-8").startswith("### mnist")
    document = json.loads(paths["aggregates"].read_text(encoding="utf-8"))  # strict JSON: NaN as null
    assert len(document) == 7 and document[1]["verdict"] == "baseline"
    assert markdown_table(document) == paths["table"].read_text(encoding="utf-8")


def test_load_runs_file_folder_and_errors(tmp_path):
    rows = experiment_rows()
    (tmp_path / "runs.json").write_text(json.dumps(rows), encoding="utf-8")
    assert load_runs(tmp_path) == rows == load_runs(tmp_path / "runs.json")
    garbled = tmp_path / "garbled" / "runs.json"
    garbled.parent.mkdir()
    garbled.write_text('[{"dataset": "mnist", ', encoding="utf-8")
    with pytest.raises(NCGError, match="garbled.*not valid JSON"):
        load_runs(garbled.parent)
    with pytest.raises(NCGError, match="does not exist"):
        load_runs(tmp_path / "missing")
    (tmp_path / "object.json").write_text('{"dataset": "mnist"}', encoding="utf-8")
    with pytest.raises(NCGError, match="list of objects"):
        load_runs(tmp_path / "object.json")


@pytest.mark.parametrize("dataset", ["mnist", "poly"])
def test_pareto_figure_png(tmp_path, dataset):
    path = tmp_path / f"pareto_{dataset}.png"
    fig = pareto_figure(experiment_rows(), dataset, path=path, dpi=40)
    assert path.is_file()
    with Image.open(path) as image:
        assert image.size == (320, 192)
        low, high = image.convert("L").getextrema()
        assert high - low > 50
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == ("log" if dataset == "poly" else "linear")
    labels = ax.get_legend_handles_labels()[1]
    assert "Pareto front (method means)" in labels and any("(candidate)" in label for label in labels)
    with pytest.raises(NCGError, match="cifar"):
        pareto_figure(experiment_rows(), "cifar")


def test_layer_pairs_pick_the_best_control_and_test_against_it():
    from ncg.experiments.layer_pairs import pair_rows, pairs_table

    def rows_of(method, base, budget=40_000):
        return [{"dataset": "toy", "method": method, "seed": s, "metric": "test_accuracy", "higher_is_better": True,
                 "candidate": False, "test_accuracy": base + 0.001 * s * s, "train_flops": 2e9,
                 "budget": {"sparse_parameters": budget}} for s in range(5)]

    rows = (rows_of("sparse-granet@10000", 0.95) + rows_of("layered1-granet@10000", 0.90)
            + rows_of("layered2-granet@10000", 0.93) + rows_of("mlp-sparse@10000", 0.80)
            + rows_of("sparse-set", 0.90) + rows_of("layered3-set", 0.92) + rows_of("mlp-neurons", 0.99))
    for row in rows:  # noise, so the paired differences vary
        row["test_accuracy"] += 0.002 * (len(row["method"]) * row["seed"] % 3)
    pairs = pair_rows(rows)
    assert [(p["rule"], p["parameters"], p["best"], p["mlp"]) for p in pairs] == [
        ("granet", 10_000, "layered2-granet@10000", "mlp-sparse@10000"), ("set", 40_000, "layered3-set", None)]
    table = pairs_table(rows).splitlines()
    assert "layer-free wins" in table[2] and "(2)" in table[2] and table[2].count("–") == 1
    assert "layered wins" in table[3]
    assert pairs_table(rows_of("mlp-neurons", 0.9)) == ""
