"""Tables and the figure of the Feynman benchmark (:mod:`ncg.experiments.feynman`), from its rows.

:func:`feynman_table` compares the FreeNet with every other method formula by formula and size
by size: a paired t-test over the seeds on ``log10(test_nrmse)`` (the errors span orders of
magnitude), read at p < 0.05 (:func:`~ncg.experiments.report.paired_comparison`), and counts the
wins, ties and losses. :func:`feynman_figure` plots the median normalised RMSE over the formulas
against the mean parameter count, one line per method.

Examples
--------
>>> rows = [dict(formula="f", num_variables=1, method=m, size=50, seed=s, test_nrmse=v * (1 + s / 10) ** k,
...              parameters=50, wall_seconds=1.0, train_flops=1e6)
...         for m, v, k in (("freenet", 1e-4, 1), ("mlp", 1e-2, 2)) for s in range(3)]
>>> comparisons(rows)[("f", 50, "mlp")]["verdict"]
'better'
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Sequence

import numpy as np

from ncg.experiments.report import confidence_interval, paired_comparison, paired_verdict

__all__ = ["comparisons", "feynman_table", "feynman_figure", "CANDIDATE", "PEERS"]

CANDIDATE = "freenet"
PEERS = ("layered", "mlp", "mlp-silu", "kan", "gbr", "freenet-evolve")
"""The methods the FreeNet is compared with, in the tables' order."""
FITTED = 1e-3
_NAMES = {"freenet": "FreeNet", "freenet-evolve": "FreeNet + Free-Evolve", "layered": "layered control",
          "mlp": "MLP", "mlp-silu": "MLP (SiLU)", "kan": "KAN (pykan)", "gbr": "gradient boosting"}


def _log(value: float) -> float:
    return math.log10(max(float(value), 1e-300)) if math.isfinite(value) else math.inf


def _by_seed(rows: Sequence[dict], formula: str, size: int, method: str) -> dict[int, float]:
    return {int(r["seed"]): float(r["test_nrmse"]) for r in rows
            if r["formula"] == formula and r["method"] == method and r["size"] == size}


def comparisons(rows: Sequence[dict]) -> dict[tuple[str, int, str], dict]:
    """The FreeNet against each peer, per (formula, size): ``{(formula, size, peer): {...}}``
    with the mean paired difference of ``log10(test_nrmse)`` (FreeNet minus peer, negative: the
    FreeNet is better), its p-value, the shared seeds and the verdict (``better``, ``worse`` or
    ``tie`` for the FreeNet). Gradient boosting has no size: every size is compared with its one
    run per seed."""
    out: dict[tuple[str, int, str], dict] = {}
    keys = dict.fromkeys((r["formula"], r["size"]) for r in rows if r["method"] == CANDIDATE)
    for formula, size in keys:
        mine = {s: _log(v) for s, v in _by_seed(rows, formula, size, CANDIDATE).items()}
        for peer in PEERS:
            theirs = {s: _log(v) for s, v in _by_seed(rows, formula, 0 if peer == "gbr" else size, peer).items()}
            if not theirs:
                continue
            difference, p_value, shared = paired_comparison(mine, theirs)
            if shared == 0:
                continue
            verdict = paired_verdict(difference, p_value, higher_is_better=False)
            out[formula, size, peer] = {"difference": difference, "p_value": p_value, "shared": shared,
                                        "verdict": verdict}
    return out


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "–"
    mean, half = confidence_interval(values)
    return f"{mean:.1e}" + (f" ± {half:.0e}" if math.isfinite(half) else "")


_MARK = {"better": "W", "tie": "T", "worse": "L"}


def feynman_table(rows: Sequence[dict]) -> str:
    """Markdown: the summary per method and size, the wins / ties / losses of the FreeNet
    against each peer, and one line per (formula, size).

    Examples
    --------
    >>> print(feynman_table([]))
    No runs yet.
    """
    if not rows:
        return "No runs yet."
    methods = [m for m in (CANDIDATE, *PEERS) if any(r["method"] == m for r in rows)]
    sizes = sorted({r["size"] for r in rows if r["method"] != "gbr"})
    formulas = list(dict.fromkeys(r["formula"] for r in rows))
    lines = ["#### Summary per method and size", "",
             "| method | size | formulas | runs | mean parameters | median nRMSE | runs fitted (nRMSE <= 1e-3) "
             "| formulas fitted (median over seeds <= 1e-3) | mean wall s | mean train GFLOPs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for method in methods:
        for size in ([0] if method == "gbr" else sizes):
            group = [r for r in rows if r["method"] == method and r["size"] == size]
            if not group:
                continue
            flops = [r["train_flops"] for r in group if r.get("train_flops") is not None]
            fitted = sum(r["test_nrmse"] <= FITTED for r in group)
            names = list(dict.fromkeys(r["formula"] for r in group))
            medians = [statistics.median(r["test_nrmse"] for r in group if r["formula"] == f) for f in names]
            solved = sum(m <= FITTED for m in medians)
            lines.append(
                f"| {_NAMES.get(method, method)} | {size or '–'} | {len({r['formula'] for r in group})} | "
                f"{len(group)} | {np.mean([r['parameters'] for r in group]):,.0f} | "
                f"{statistics.median(r['test_nrmse'] for r in group):.2e} | {fitted}/{len(group)} "
                f"({100 * fitted / len(group):.0f}%) | {solved}/{len(names)} | {np.mean([r['wall_seconds'] for r in group]):.2f} | "
                + (f"{np.mean(flops) / 1e9:.2f}" if flops else "–") + " |")
    compared = comparisons(rows)
    peers = [p for p in PEERS if any(k[2] == p for k in compared)]
    lines += ["", "#### FreeNet against each peer: formulas won / tied / lost (paired t-test on log10 nRMSE over "
              "seeds, p < 0.05)", "", "| size | " + " | ".join(_NAMES[p] for p in peers) + " |",
              "|---|" + "---|" * len(peers)]
    for size in [*sizes, None]:
        cells = []
        for peer in peers:
            verdicts = [v["verdict"] for k, v in compared.items() if size in (None, k[1]) and k[2] == peer]
            n = len(verdicts)
            won, tied, lost = (verdicts.count(v) for v in ("better", "tie", "worse"))
            cells.append(f"{won} / {tied} / {lost} of {n}" + (f" (W+T {100 * (won + tied) / n:.0f}%, "
                                                            f"W {100 * won / n:.0f}%)" if n else ""))
        lines.append(f"| {size or 'all (formula, size) pairs'} | " + " | ".join(cells) + " |")
    lines += ["", "#### Per formula: mean test nRMSE ± 95% CI over seeds; W / T / L: the FreeNet against that "
              "method", "", "| formula | vars | size | " + " | ".join(_NAMES[m] for m in methods) + " |",
              "|---|---|---|" + "---|" * len(methods)]
    for formula in formulas:
        nvars = next(r["num_variables"] for r in rows if r["formula"] == formula)
        for size in sizes:
            if not any(r["formula"] == formula and r["size"] == size for r in rows):
                continue
            cells = []
            for method in methods:
                values = list(_by_seed(rows, formula, 0 if method == "gbr" else size, method).values())
                mark = compared.get((formula, size, method))
                cells.append(_cell(values) + (f" {_MARK[mark['verdict']]}" if mark else ""))
            lines.append(f"| {formula} | {nvars} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def feynman_figure(rows: Sequence[dict], path: str | Path) -> Path:
    """Median (over formulas) of each formula's mean test nRMSE against the mean parameter
    count, one line per method (gradient boosting, unsized, as a horizontal line); a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for method in (CANDIDATE, *PEERS):
        group = [r for r in rows if r["method"] == method]
        if not group:
            continue
        sizes = sorted({r["size"] for r in group})
        xs, ys = [], []
        for size in sizes:
            at = [r for r in group if r["size"] == size]
            per_formula = [np.mean([r["test_nrmse"] for r in at if r["formula"] == f])
                           for f in dict.fromkeys(r["formula"] for r in at)]
            xs.append(np.mean([r["parameters"] for r in at]))
            ys.append(float(np.median(per_formula)))
        if method == "gbr":
            ax.axhline(ys[0], color="grey", linestyle="--", label=_NAMES[method])
        else:
            ax.plot(xs, ys, marker="o", label=_NAMES[method])
    ax.axhline(FITTED, color="black", linewidth=0.6, linestyle=":")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters (PyTorch's count; KAN: its trainable ones)")
    ax.set_ylabel("median over formulas of test RMSE / std")
    ax.set_title("Feynman equations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
