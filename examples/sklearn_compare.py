"""Cross-validate FreeNets against scikit-learn's MLP and gradient boosting on its bundled data sets.

5-fold cross-validation (stratified for classification; the same folds for every model) on
``load_breast_cancer``, ``load_wine``, ``load_digits`` (accuracy) and ``load_diabetes`` (R^2) of:

* ``freenet``: :class:`ncg.sklearn.FreeNetClassifier` / ``FreeNetRegressor`` with its defaults
  (complete whole-network start, 4 rounds of 5 epochs pruning by magnitude and regrowing by
  gradient, 10 fine-tuning epochs; features standardised inside) and ``n_hidden=64`` hidden
  neurons, pruned to a budget of **half the MLP's parameters** (PyTorch's count
  ``sum(p.numel() for p in net.parameters())``);
* ``mlp``: ``StandardScaler`` + ``MLPClassifier`` / ``MLPRegressor`` with one hidden layer of
  **100** units (scikit-learn's default) and ``max_iter=1000`` (parameters: coefficients +
  intercepts);
* ``hgb``: ``HistGradientBoostingClassifier`` / ``Regressor`` with scikit-learn's defaults
  (100 boosting iterations; parameters "n/a (trees)").

It writes ``runs.json`` (one row per data set x model x fold) and ``table.md`` (mean +- std over
the folds of the score, the parameters and the fit + predict wall time) into ``--out``
(``results/sklearn``; ``results/quick/sklearn`` with ``--quick``, never the committed results), and with
``--docs PAGE`` the table between ``<!-- sklearn:begin -->`` and ``<!-- sklearn:end -->`` of
that page (appended, with the markers, when absent). ``--table-only`` rebuilds the table and the
section from an existing ``runs.json`` without training.

    OMP_NUM_THREADS=1 python examples/sklearn_compare.py --docs docs/results.md   # under a minute
    python examples/sklearn_compare.py --quick                                    # seconds, into results/quick/sklearn
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from sklearn.base import BaseEstimator
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from ncg.experiments.report import write_marked_section
from ncg.sklearn import FreeNetClassifier, FreeNetRegressor

DATASETS: dict[str, tuple[Callable, str]] = {
    "breast-cancer": (load_breast_cancer, "classification"),
    "wine": (load_wine, "classification"),
    "digits": (load_digits, "classification"),
    "diabetes": (load_diabetes, "regression"),
}
MODELS = ("freenet", "mlp", "hgb")
FULL = {"datasets": list(DATASETS), "folds": 5, "mlp_hidden": 100, "mlp_max_iter": 1000, "freenet_hidden": 64,
        "budget_ratio": 0.5, "freenet": {}, "hgb": {}}
QUICK = {"datasets": ["wine"], "folds": 2, "mlp_hidden": 8, "mlp_max_iter": 30, "freenet_hidden": 8,
         "budget_ratio": 1.0, "freenet": {"rounds": 2, "epochs_per_round": 1, "final_epochs": 2}, "hgb": {"max_iter": 5}}
"""The budgets of the full comparison and of ``--quick`` (one data set, 2 folds, tiny models)."""
BEGIN, END = "<!-- sklearn:begin -->", "<!-- sklearn:end -->"


def mlp_parameters(hidden: int, features: int, outputs: int) -> int:
    """Coefficients + intercepts of a one-hidden-layer MLP (``outputs`` is 1 for two classes,
    as scikit-learn's binary MLPClassifier has a single logistic output)."""
    return features * hidden + hidden + hidden * outputs + outputs


def build(model: str, task: str, sizes: dict, features: int, outputs: int, seed: int) -> tuple[BaseEstimator, str]:
    """The estimator for one cell and a description of its budget."""
    classify = task == "classification"
    if model == "mlp":
        mlp = (MLPClassifier if classify else MLPRegressor)(
            hidden_layer_sizes=(sizes["mlp_hidden"],), max_iter=sizes["mlp_max_iter"], random_state=seed)
        return make_pipeline(StandardScaler(), mlp), f"hidden_layer_sizes=({sizes['mlp_hidden']},), max_iter={sizes['mlp_max_iter']}"
    if model == "hgb":
        return (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(
            random_state=seed, **sizes["hgb"]), _setting(sizes["hgb"]) or "defaults (max_iter=100)"
    budget = int(sizes["budget_ratio"] * mlp_parameters(sizes["mlp_hidden"], features, outputs))
    estimator = (FreeNetClassifier if classify else FreeNetRegressor)(
        n_hidden=sizes["freenet_hidden"], max_parameters=budget, random_state=seed, **sizes["freenet"])
    extra = _setting(sizes["freenet"])
    return estimator, (f"n_hidden={sizes['freenet_hidden']}, max_parameters={budget:,} ({sizes['budget_ratio']:g} x "
                       f"the MLP's){', ' + extra if extra else ''}")


def _setting(overrides: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in overrides.items())


def parameters(estimator: BaseEstimator) -> int | None:
    """PyTorch's count for a FreeNet, coefficients + intercepts for an MLP, None for trees."""
    if isinstance(estimator, Pipeline):
        estimator = estimator[-1]
    if isinstance(estimator, (FreeNetClassifier, FreeNetRegressor)):
        return sum(p.numel() for p in estimator.net_.parameters())
    if isinstance(estimator, (MLPClassifier, MLPRegressor)):
        return sum(c.size for c in estimator.coefs_) + sum(b.size for b in estimator.intercepts_)
    return None


def run(datasets: list[str], sizes: dict, seed: int = 0) -> list[dict]:
    """One row per data set x model x fold."""
    warm_up = FreeNetClassifier(n_hidden=2, max_parameters=1.0, rounds=1, epochs_per_round=1, final_epochs=0)
    warm_up.fit([[0.0], [1.0], [2.0], [3.0]], [0, 1, 0, 1])  # untimed: loads the compiled kernel once
    rows = []
    for dataset in datasets:
        loader, task = DATASETS[dataset]
        X, y = loader(return_X_y=True)
        outputs = len(set(y.tolist())) if task == "classification" else 1
        outputs = 1 if outputs == 2 else outputs  # the MLP's binary output
        splitter = (StratifiedKFold if task == "classification" else KFold)(sizes["folds"], shuffle=True, random_state=seed)
        for fold, (train, test) in enumerate(splitter.split(X, y)):
            for model in MODELS:
                estimator, setting = build(model, task, sizes, X.shape[1], outputs, seed)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)  # only --quick's few MLP iterations
                    estimator.fit(X[train], y[train])
                score = float(estimator.score(X[test], y[test]))
                seconds = time.perf_counter() - start
                rows.append({
                    "dataset": dataset, "task": task, "metric": "accuracy" if task == "classification" else "r2",
                    "model": model, "setting": setting, "fold": fold, "seed": seed, "score": score,
                    "parameters": parameters(estimator), "seconds": seconds, "train_samples": int(train.size),
                    "test_samples": int(test.size), "threads": torch.get_num_threads(),
                })
                print(f"{dataset:13s} fold {fold} {model:8s} {rows[-1]['metric']} {score:.4f} "
                      f"parameters {rows[-1]['parameters']} {seconds:5.1f}s", flush=True)
    return rows


def _mean_std(values: list[float], digits: int) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} +- {std:.{digits}f}"


def table(rows: list[dict]) -> str:
    """The Markdown table: one line per data set x model, in the order of the rows."""
    lines = [
        "| data set | metric | model | budget | score (mean +- std over folds) | parameters | wall time per fold (fit + predict) |",
        "|---|---|---|---|---|---|---|",
    ]
    cells: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        cells.setdefault((row["dataset"], row["model"]), []).append(row)
    for (dataset, model), group in cells.items():
        counts = [r["parameters"] for r in group if r["parameters"] is not None]
        if not counts:
            params = "n/a (trees)"
        elif min(counts) == max(counts):
            params = f"{counts[0]:,}"
        else:
            params = f"{min(counts):,}-{max(counts):,}"
        lines.append(f"| {dataset} | {group[0]['metric']} | {model} | {group[0]['setting']} | "
                     f"{_mean_std([r['score'] for r in group], 4)} | {params} | "
                     f"{_mean_std([r['seconds'] for r in group], 2)} s |")
    return "\n".join(lines)


def section(rows: list[dict]) -> str:
    """The docs section: heading, how it was made (wrapped at 100 columns), the table."""
    folds = len({r["fold"] for r in rows})
    threads = "/".join(map(str, sorted({r["threads"] for r in rows})))
    text = (
        f"{folds}-fold cross-validation (stratified for classification, the same folds for every model, "
        f"seed {rows[0]['seed']}), {threads} thread{'' if threads == '1' else 's'} per process, made by "
        "`OMP_NUM_THREADS=1 python examples/sklearn_compare.py --docs docs/results.md` "
        "(`results/sklearn/runs.json`: one row per data set x model x fold). FreeNet: "
        "`FreeNetClassifier` / `FreeNetRegressor`, defaults but for the budget shown (features "
        "standardised inside; parameters: `sum(p.numel() for p in net.parameters())`); MLP: `StandardScaler` + "
        "`MLPClassifier` / `MLPRegressor` (parameters: coefficients + intercepts); HGB: "
        "`HistGradientBoostingClassifier` / `Regressor`. Wall time: fit + predict of one fold, one process."
    )
    heading = "## scikit-learn data sets: FreeNet vs MLP and gradient boosting"
    return "\n".join([heading, "", textwrap.fill(text, 100, break_on_hyphens=False), "", table(rows)])


def write_section(path: Path, body: str) -> None:
    """Replace the marked section of ``path`` with ``body`` (appended, with its markers, when absent)."""
    write_marked_section(path, "sklearn", body)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=None,
                   help="folder for runs.json and table.md (default: results/sklearn; --quick: results/quick/sklearn)")
    p.add_argument("--docs", default=None, help="Markdown page whose sklearn section is replaced (appended if absent)")
    p.add_argument("--seed", type=int, default=0, help="folds and every model's random_state")
    p.add_argument("--quick", action="store_true", help="smoke run: wine, 2 folds, tiny models (seconds)")
    p.add_argument("--table-only", action="store_true", help="rebuild table.md (and --docs) from --out's runs.json")
    args = p.parse_args(argv)
    out = Path(args.out or ("results/quick/sklearn" if args.quick else "results/sklearn"))
    if args.table_only:
        rows = json.loads((out / "runs.json").read_text())
    else:
        sizes = QUICK if args.quick else FULL
        rows = run(sizes["datasets"], sizes, args.seed)
        out.mkdir(parents=True, exist_ok=True)
        (out / "runs.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "table.md").write_text(table(rows) + "\n")
    if args.docs is not None:
        write_section(Path(args.docs), section(rows))
    print(table(rows))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
