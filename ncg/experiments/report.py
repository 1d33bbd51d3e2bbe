"""Reporting over experiment runs: load ``runs.json``, aggregate seeds, compare, write tables.

The experiment runner writes one row per run (data set x method x seed) to ``runs.json``. This
module turns those rows into one row per (data set, method): the mean of the primary metric with a
95% confidence interval over seeds (t-distribution), the mean model size and cost, and a paired
comparison by seed against the **strongest baseline** of the data set (the non-candidate method
with the best mean). Everything here is a pure function of the rows except :func:`write_report`.

Examples
--------
>>> rows = [{"dataset": "toy", "method": m, "seed": s, "metric": "test_accuracy",
...          "higher_is_better": True, "candidate": m == "new", "test_accuracy": a}
...         for m, accs in {"mlp": [0.90, 0.91, 0.92], "new": [0.93, 0.95, 0.96]}.items()
...         for s, a in enumerate(accs)]
>>> [(a["method"], round(a["mean"], 3), a["verdict"]) for a in aggregate(rows)]
[('mlp', 0.91, 'baseline'), ('new', 0.947, 'better')]
"""
from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import stats

from ncg.atomic import atomic_write
from ncg.errors import NCGError

__all__ = [
    "load_runs",
    "confidence_interval",
    "paired_comparison",
    "aggregate",
    "markdown_table",
    "write_report",
    "SIZE_COLUMNS",
]

SIZE_COLUMNS = ("parameters", "hidden_edges", "input_connections", "neurons", "depth", "train_flops", "wall_seconds")
"""Run columns averaged over seeds in each aggregate row (NaN where the runs lack them)."""

SIGNIFICANCE = 0.05
"""A paired difference with a smaller p-value is called "better" or "worse", otherwise "tie"."""

_REQUIRED = ("dataset", "method", "seed", "metric", "higher_is_better", "candidate")


def write_marked_section(
    path: str | os.PathLike, name: str, body: str, heading: str | None = None, new_page: str = "",
) -> None:
    """Replace the text between ``<!-- name:begin -->`` and ``<!-- name:end -->`` of the Markdown
    page ``path`` with ``body``, keeping everything outside the markers; a page without them gets
    them appended (under ``heading`` when given), a missing page starts as ``new_page``.

    Examples
    --------
    >>> import tempfile
    >>> page = Path(tempfile.mkdtemp()) / "page.md"
    >>> write_marked_section(page, "demo", "first", heading="## Demo", new_page="# Page")
    >>> write_marked_section(page, "demo", "second")
    >>> print(page.read_text())
    # Page
    <BLANKLINE>
    ## Demo
    <BLANKLINE>
    <!-- demo:begin -->
    second
    <!-- demo:end -->
    <BLANKLINE>
    """
    path = Path(path)
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else new_page
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        lead = f"{heading}\n\n" if heading else ""
        text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + lead + block + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def load_runs(path: str | os.PathLike) -> list[dict]:
    """Read the run rows of an experiment: ``runs.json``, or a folder holding one.

    Parameters
    ----------
    path : str or path-like
        The ``runs.json`` file, or the experiment folder that contains it.

    Returns
    -------
    list of dict
        One dict per run, in file order.

    Raises
    ------
    NCGError
        If the file is missing, is not valid JSON, or is not a list of objects; the message names
        the path.

    Examples
    --------
    >>> import json, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "runs.json").write_text(json.dumps([{"dataset": "toy", "seed": 0}]))
    >>> load_runs(folder)
    [{'dataset': 'toy', 'seed': 0}]
    """
    path = Path(path)
    if path.is_dir():
        path = path / "runs.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NCGError(f"runs file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise NCGError(f"cannot read runs file {str(path)!r}: {error}") from error
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as error:
        raise NCGError(f"runs file {str(path)!r} is not valid JSON: {error}") from None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        found = type(rows).__name__ if not isinstance(rows, list) else "a list with non-object items"
        raise NCGError(f"runs file {str(path)!r} must hold a JSON list of objects, found {found}")
    return rows


def confidence_interval(values: Iterable[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half width of the two-sided t-distribution confidence interval of the mean.

    Parameters
    ----------
    values : iterable of float
        One value per seed.
    level : float, default 0.95
        Coverage of the interval, in (0, 1).

    Returns
    -------
    (mean, half_width) : tuple of float
        The interval is ``mean +- half_width`` with ``half_width = t_{(1+level)/2, n-1} * s / sqrt(n)``
        (``s`` the sample standard deviation). ``half_width`` is NaN for fewer than 2 values, and
        both are NaN for none.

    Raises
    ------
    NCGError
        If ``level`` is not in (0, 1).

    Examples
    --------
    >>> confidence_interval([1.0, 2.0, 3.0])
    (2.0, 2.484)
    >>> confidence_interval([5.0])
    (5.0, nan)
    """
    if not 0.0 < level < 1.0:
        raise NCGError(f"level must be in (0, 1), got {level}")
    array = np.asarray(list(values), dtype=np.float64)
    n = array.size
    if n == 0:
        return math.nan, math.nan
    mean = float(array.mean())
    if n < 2:
        return mean, math.nan
    sem = float(array.std(ddof=1)) / math.sqrt(n)
    return mean, float(stats.t.ppf((1.0 + level) / 2.0, n - 1)) * sem


def paired_comparison(values: dict[int, float], baseline: dict[int, float]) -> tuple[float, float, int]:
    """Paired difference ``values - baseline`` over the seeds both have, and its two-sided p-value.

    Parameters
    ----------
    values, baseline : dict of int to float
        Metric by seed of the method and of the baseline.

    Returns
    -------
    (difference, p_value, shared) : tuple of float, float, int
        ``difference`` is the mean per-seed difference (NaN with no shared seed); ``p_value`` is
        :func:`scipy.stats.ttest_rel`'s, NaN with fewer than 2 shared seeds or when every seed
        differs by the same amount (the t statistic is undefined); ``shared`` counts the seeds.

    Examples
    --------
    >>> diff, p, shared = paired_comparison({0: 0.91, 1: 0.93, 2: 0.94}, {0: 0.90, 1: 0.90, 2: 0.92, 3: 0.5})
    >>> round(diff, 4), round(p, 3), shared
    (0.02, 0.074, 3)
    >>> paired_comparison({0: 1.0, 1: 2.0}, {0: 0.0, 1: 1.0})
    (1.0, nan, 2)
    """
    seeds = [seed for seed in values if seed in baseline]
    if not seeds:
        return math.nan, math.nan, 0
    a = np.array([values[seed] for seed in seeds], dtype=np.float64)
    b = np.array([baseline[seed] for seed in seeds], dtype=np.float64)
    differences = a - b
    difference = float(differences.mean())
    if len(seeds) < 2 or not np.isfinite(differences).all():
        return difference, math.nan, len(seeds)
    # Differences equal up to rounding (a deterministic offset) leave t undefined; scipy would warn
    # about catastrophic cancellation and report a meaningless p of ~0.
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()), np.finfo(np.float64).tiny)
    if float(differences.max() - differences.min()) <= 1e-12 * scale:
        return difference, math.nan, len(seeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p_value = float(stats.ttest_rel(a, b).pvalue)
    return difference, p_value, len(seeds)


def paired_verdict(difference: float, p_value: float, higher_is_better: bool) -> str:
    """``better``, ``worse`` or ``tie``: a mean paired ``difference`` (method minus baseline) and
    its p-value read at :data:`SIGNIFICANCE`.

    Examples
    --------
    >>> paired_verdict(0.01, 0.02, True), paired_verdict(0.01, 0.02, False), paired_verdict(0.01, 0.2, True)
    ('better', 'worse', 'tie')
    """
    if not p_value < SIGNIFICANCE or difference == 0.0:
        return "tie"
    return "better" if (difference > 0) == higher_is_better else "worse"


def _metric_value(row: dict, index: int) -> float:
    missing = [key for key in _REQUIRED if key not in row]
    if missing:
        raise NCGError(f"run row {index} lacks {', '.join(missing)}; found keys {sorted(row)}")
    metric = row["metric"]
    if metric not in row:
        raise NCGError(f"run row {index} ({row['dataset']}/{row['method']}, seed {row['seed']}) "
                       f"names metric {metric!r} but has no such key")
    value = row[metric]
    return math.nan if value is None else float(value)


def _mean(values: Sequence[float | None]) -> float:
    finite = [float(v) for v in values if v is not None]
    return float(np.mean(finite)) if len(finite) == len(values) and finite else math.nan


def aggregate(rows: Sequence[dict]) -> list[dict]:
    """One row per (data set, method): seeds' mean and 95% CI, mean sizes, paired comparison.

    Parameters
    ----------
    rows : sequence of dict
        Run rows as written by the experiment runner (see :func:`load_runs`). Each needs
        ``dataset``, ``method``, ``seed``, ``metric``, ``higher_is_better``, ``candidate`` and the
        column named by ``metric``; the columns of :data:`SIZE_COLUMNS`, ``task`` and
        ``test_split`` are carried over when present.

    Returns
    -------
    list of dict
        In order of first appearance of each (data set, method), with keys ``dataset``,
        ``method``, ``task``, ``metric``, ``higher_is_better``, ``candidate``, ``test_split``,
        ``seeds`` (sorted), ``n``, ``mean``, ``ci95`` (half width), ``std`` (sample, NaN for one
        seed), the means of :data:`SIZE_COLUMNS`, and the comparison with the strongest
        baseline: ``baseline`` (its method name), ``diff_vs_baseline`` (mean per-seed difference,
        metric units), ``p_vs_baseline`` (paired t-test) and ``verdict`` (``"better"``,
        ``"worse"``, ``"tie"`` at p < 0.05, or ``"baseline"`` on its own row). The strongest
        baseline is the non-candidate method with the best finite mean (the first one on a tie);
        without one, ``baseline`` and ``verdict`` are None and the numbers NaN.

    Raises
    ------
    NCGError
        If a row lacks a required key, a (data set, method, seed) occurs twice, or the methods of
        one data set disagree on ``metric`` or ``higher_is_better``.

    Examples
    --------
    >>> rows = [{"dataset": "toy", "method": m, "seed": s, "metric": "test_mse", "higher_is_better": False,
    ...          "candidate": m == "new", "test_mse": v, "parameters": 100}
    ...         for m, mses in {"mlp": [0.20, 0.22], "new": [0.10, 0.13]}.items() for s, v in enumerate(mses)]
    >>> new = aggregate(rows)[1]
    >>> new["baseline"], round(new["diff_vs_baseline"], 3), new["parameters"], new["verdict"]
    ('mlp', -0.095, 100.0, 'better')
    """
    groups: dict[tuple[str, str], list[tuple[dict, float]]] = {}
    seen: set[tuple[str, str, int]] = set()
    for index, row in enumerate(rows):
        value = _metric_value(row, index)
        key = (row["dataset"], row["method"], int(row["seed"]))
        if key in seen:
            raise NCGError(f"run row {index}: {row['dataset']}/{row['method']} seed {row['seed']} occurs twice")
        seen.add(key)
        groups.setdefault(key[:2], []).append((row, value))

    aggregates = []
    by_seed: dict[tuple[str, str], dict[int, float]] = {}
    for (dataset, method), group in groups.items():
        first = group[0][0]
        values = [value for _, value in group]
        mean, half_width = confidence_interval(values)
        by_seed[dataset, method] = {int(row["seed"]): value for row, value in group}
        splits = list(dict.fromkeys(str(row["test_split"]) for row, _ in group if "test_split" in row))
        entry = {
            "dataset": dataset,
            "method": method,
            "task": first.get("task"),
            "metric": first["metric"],
            "higher_is_better": bool(first["higher_is_better"]),
            "candidate": bool(first["candidate"]),
            "test_split": "; ".join(splits) if splits else None,
            "seeds": sorted(by_seed[dataset, method]),
            "n": len(group),
            "mean": mean,
            "ci95": half_width,
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else math.nan,
        }
        for column in SIZE_COLUMNS:
            entry[column] = _mean([row.get(column) for row, _ in group])
        aggregates.append(entry)

    for dataset in dict.fromkeys(entry["dataset"] for entry in aggregates):
        entries = [entry for entry in aggregates if entry["dataset"] == dataset]
        conventions = {(entry["metric"], entry["higher_is_better"]) for entry in entries}
        if len(conventions) > 1:
            raise NCGError(f"data set {dataset!r} mixes metrics (metric, higher_is_better) {sorted(conventions)}; "
                           "its methods cannot be compared")
        sign = 1.0 if entries[0]["higher_is_better"] else -1.0
        baselines = [entry for entry in entries if not entry["candidate"] and math.isfinite(entry["mean"])]
        strongest = max(baselines, key=lambda entry: sign * entry["mean"], default=None)
        for entry in entries:
            if strongest is None:
                entry.update(baseline=None, diff_vs_baseline=math.nan, p_vs_baseline=math.nan, verdict=None)
                continue
            difference, p_value, _ = paired_comparison(by_seed[dataset, entry["method"]],
                                                       by_seed[dataset, strongest["method"]])
            verdict = ("baseline" if entry is strongest
                       else paired_verdict(difference, p_value, entry["higher_is_better"]))
            entry.update(baseline=strongest["method"], diff_vs_baseline=difference, p_vs_baseline=p_value,
                         verdict=verdict)
    return aggregates


def _finite(value: float | None) -> bool:
    """Whether a number is present and finite (aggregates read back from JSON hold null for NaN)."""
    return value is not None and math.isfinite(value)


def _is_percent(metric: str) -> bool:
    return "accuracy" in metric


def _format_metric(value: float, metric: str) -> str:
    if not _finite(value):
        return "–"
    return f"{100 * value:.2f}" if _is_percent(metric) else f"{value:.2e}"


def format_interval(mean: float, half: float, metric: str) -> str:
    """``mean ± half`` of ``metric`` as the tables show it (accuracy in percent with 2 decimals,
    other metrics in scientific notation); the mean alone when ``half`` is not finite.

    Examples
    --------
    >>> format_interval(0.98091, 0.0008, "test_accuracy"), format_interval(0.5, math.nan, "test_mse")
    ('98.09 ± 0.08', '5.00e-01')
    """
    shown = _format_metric(mean, metric)
    return shown + " ± " + _format_metric(half, metric) if _finite(half) else shown


def _format_count(value: float) -> str:
    if not _finite(value):
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _format_p(p_value: float) -> str:
    if not _finite(p_value):
        return "p=n/a"
    return "p<0.001" if p_value < 0.001 else f"p={p_value:.3f}"


def _format_comparison(entry: dict) -> str:
    if entry["verdict"] is None:
        return "–"
    if entry["verdict"] == "baseline":
        return "strongest baseline"
    difference = entry["diff_vs_baseline"]
    if not _finite(difference):
        return "no shared seeds"
    shown = f"{100 * difference:+.2f} pts" if _is_percent(entry["metric"]) else f"{difference:+.2e}"
    return f"{shown}, {_format_p(entry['p_vs_baseline'])} ({entry['verdict']})"


def markdown_table(aggregates: Sequence[dict], dataset: str | None = None) -> str:
    """GitHub Markdown tables of :func:`aggregate` rows, one per data set under ``### <dataset>``.

    Columns: method (candidates in bold), the metric as ``mean ± ci95`` (accuracy in percent with
    2 decimals, other metrics in scientific notation with 3 significant digits), seeds, parameters,
    hidden edges, input connections, neurons, depth, training GFLOPs, wall seconds, and the paired
    comparison with the strongest baseline (difference, in percentage points for accuracy, its
    p-value and the verdict). The test split and how to read the numbers follow each table.

    Parameters
    ----------
    aggregates : sequence of dict
        Rows from :func:`aggregate`.
    dataset : str, optional
        Only this data set; all of them, in order of appearance, by default.

    Returns
    -------
    str
        The Markdown text, ending with a newline.

    Raises
    ------
    NCGError
        If ``dataset`` is given but has no rows.

    Examples
    --------
    >>> rows = [{"dataset": "toy", "method": "mlp", "seed": s, "metric": "test_accuracy",
    ...          "higher_is_better": True, "candidate": False, "test_accuracy": a, "parameters": 1234}
    ...         for s, a in enumerate([0.5, 0.7])]
    >>> print(markdown_table(aggregate(rows)).splitlines()[4])
    | mlp | 60.00 ± 127.06 | 2 | 1,234 | – | – | – | – | – | – | strongest baseline |
    """
    names = list(dict.fromkeys(entry["dataset"] for entry in aggregates))
    if dataset is not None:
        if dataset not in names:
            raise NCGError(f"no aggregate rows for data set {dataset!r}; found {names}")
        names = [dataset]
    sections = []
    for name in names:
        entries = [entry for entry in aggregates if entry["dataset"] == name]
        metric = entries[0]["metric"]
        arrow = "↑" if entries[0]["higher_is_better"] else "↓"
        metric_header = metric.replace("_", " ") + (" (%)" if _is_percent(metric) else "") + f" {arrow}"
        header = [
            "method", metric_header, "seeds", "parameters", "hidden edges", "input connections", "neurons",
            "depth", "training GFLOPs", "wall s", "vs strongest baseline",
        ]
        lines = [f"### {name}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|"]
        for entry in entries:
            shown = format_interval(entry["mean"], entry["ci95"], metric)
            flops, wall = entry["train_flops"], entry["wall_seconds"]
            cells = [
                f"**{entry['method']}**" if entry["candidate"] else entry["method"],
                shown,
                str(entry["n"]),
                *(_format_count(entry[column]) for column in ("parameters", "hidden_edges", "input_connections",
                                                              "neurons", "depth")),
                f"{flops / 1e9:,.2f}" if _finite(flops) else "–",
                f"{wall:,.1f}" if _finite(wall) else "–",
                _format_comparison(entry),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        splits = list(dict.fromkeys(entry["test_split"] for entry in entries if entry["test_split"]))
        lines += ["", f"Test split: {'; '.join(splits) if splits else 'not recorded'}. "
                  "Metric: mean ± 95% confidence half width over seeds (t-distribution); the last column is "
                  "the mean per-seed difference from the strongest baseline (best non-candidate mean) with "
                  f"a two-sided paired t-test over shared seeds (better/worse at p < {SIGNIFICANCE}). "
                  "Candidates in bold."]
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"


def _json_safe(value: object) -> object:
    """NaN and infinities as null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def write_report(rows: Sequence[dict], out_dir: str | os.PathLike, lead: str = "") -> dict[str, Path]:
    """Aggregate ``rows`` and write ``table.md`` and ``aggregates.json`` into ``out_dir``, atomically.

    Parameters
    ----------
    rows : sequence of dict
        Run rows (see :func:`aggregate`).
    out_dir : str or path-like
        Folder to write into; created if needed.
    lead : str, optional
        Markdown put in ``table.md`` before the per-method tables (such as
        :func:`ncg.experiments.layer_pairs.pairs_table`).

    Returns
    -------
    dict of str to Path
        ``{"table": .../table.md, "aggregates": .../aggregates.json}``. NaN values are written as
        ``null`` in the JSON.

    Examples
    --------
    >>> import tempfile
    >>> rows = [{"dataset": "toy", "method": "mlp", "seed": 0, "metric": "test_mse",
    ...          "higher_is_better": False, "candidate": False, "test_mse": 0.25}]
    >>> paths = write_report(rows, tempfile.mkdtemp())
    >>> sorted(path.name for path in paths.values())
    ['aggregates.json', 'table.md']
    """
    out_dir = Path(out_dir)
    aggregates = aggregate(rows)
    paths = {"table": out_dir / "table.md", "aggregates": out_dir / "aggregates.json"}
    table = ((lead.rstrip() + "\n\n" if lead.strip() else "") + markdown_table(aggregates)).encode("utf-8")
    document = (json.dumps(_json_safe(aggregates), indent=2, allow_nan=False) + "\n").encode("utf-8")
    atomic_write(paths["table"], lambda handle: handle.write(table))
    atomic_write(paths["aggregates"], lambda handle: handle.write(document))
    return paths
