"""Layer-free against layered: each rule's layer-free method paired with its layered controls.

A sweep that runs ``sparse-<family>`` next to ``layered<d>-<family>`` (the same rule on graphs
that keep an MLP's topology, :func:`ncg.experiments.methods.layered`), at one or several
parameter budgets (``name@parameters``), answers one question per data set, rule and budget: does
the layer-free graph beat the best layered control? :func:`pair_rows` finds the pairs in the run
rows, :func:`pairs_table` writes them as a Markdown table: the layer-free mean, each layered
control's, the best one's paired difference and p-value, the dense MLP at the same parameter
count (``mlp-sparse@parameters``), and the training FLOPs of both sides.

Examples
--------
>>> rows = [{"dataset": "toy", "method": m, "seed": s, "metric": "test_accuracy", "higher_is_better": True,
...          "candidate": False, "test_accuracy": a + 0.01 * s, "parameters": 900, "train_flops": 1e9}
...         for m, a in [("sparse-granet@1000", 0.95), ("layered1-granet@1000", 0.93)] for s in range(3)]
>>> [(p["dataset"], p["rule"], p["parameters"], p["best"]) for p in pair_rows(rows)]
[('toy', 'granet', 1000, 'layered1-granet@1000')]
>>> print(pairs_table(rows).splitlines()[2])
| toy | granet | 1,000 | 96.00 ± 2.48 | 94.00 ± 2.48 | – | – | 94.00 ± 2.48 (1) | +2.00 | – | tie | – | 1.0 / 1.0 |
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

from ncg.experiments.report import SIGNIFICANCE, confidence_interval, format_interval, paired_comparison, paired_verdict

__all__ = ["parse_method", "pair_rows", "pairs_table", "ablation_rows", "ablation_table", "tables"]

DEPTHS = (1, 2, 3)
CONTROLS = {"local-granet": "granet"}
"""Layer-free rules that have no layered form of their own, and the rule whose layered controls
they are measured against (a hop cap has no meaning on a layered graph)."""
OUTCOMES = {"better": "layer-free wins", "worse": "layered wins", "tie": "tie"}
"""How a paired verdict of the layer-free method against its best control reads in the table."""
_NAME = re.compile(r"(?P<kind>sparse|layered(?P<depth>\d+))-(?P<rule>[a-z-]+(?:\[[^\]]*\])?)(?:@(?P<parameters>\d+))?")


def parse_method(name: str, default_parameters: int) -> tuple[str, int, int, int] | None:
    """``(kind, depth, rule, parameters)`` of a method name such as ``layered2-granet@20000``:
    ``kind`` is ``"free"`` (``sparse-<rule>``, depth 0) or ``"layered"``; ``parameters`` is the
    ``@`` budget or ``default_parameters``. None for any other method.

    Examples
    --------
    >>> parse_method("layered2-set[rounds=46]@20000", 40_000), parse_method("sparse-granet", 40_000)
    (('layered', 2, 'set[rounds=46]', 20000), ('free', 0, 'granet', 40000))
    >>> parse_method("mlp-sparse@20000", 40_000) is None
    True
    """
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    kind = "free" if match["kind"] == "sparse" else "layered"
    depth = 0 if kind == "free" else int(match["depth"])
    return kind, depth, match["rule"], int(match["parameters"] or default_parameters)


def _values(rows: Sequence[dict], method: str, dataset: str) -> dict[int, float]:
    return {row["seed"]: float(row[row["metric"]]) for row in rows
            if row["dataset"] == dataset and row["method"] == method and row[row["metric"]] is not None}


def _mean_of(rows: Sequence[dict], method: str, dataset: str, column: str) -> float:
    values = [float(row[column]) for row in rows if row["dataset"] == dataset and row["method"] == method
              and isinstance(row.get(column), (int, float))]
    return sum(values) / len(values) if values else math.nan


def pair_rows(rows: Sequence[dict]) -> list[dict]:
    """One entry per (data set, rule, parameter budget) that has a layer-free method and at least
    one layered control: ``dataset``, ``rule``, ``parameters``, ``free`` (its method name),
    ``layered`` (depth -> method name), ``best`` (the layered control of the best mean),
    ``mlp`` (``mlp-sparse@parameters`` if run, else None), in order of data set, rule, budget."""
    found: dict[tuple[str, str, int], dict] = {}
    for row in rows:
        default = int(row.get("budget", {}).get("sparse_parameters", 40_000))
        parsed = parse_method(row["method"], default)
        if parsed is None:
            continue
        kind, depth, rule, parameters = parsed
        entry = found.setdefault((row["dataset"], rule, parameters),
                                 {"dataset": row["dataset"], "rule": rule, "parameters": parameters, "free": None,
                                  "layered": {}})
        if kind == "free":
            entry["free"] = row["method"]
        else:
            entry["layered"][depth] = row["method"]
    for (dataset, rule, parameters), entry in found.items():  # rules measured against another rule's controls
        if not entry["layered"] and _base_rule(rule) in CONTROLS:
            control = rule.replace(_base_rule(rule), CONTROLS[_base_rule(rule)], 1)
            entry["layered"] = dict(found.get((dataset, control, parameters), {}).get("layered", {}))
    pairs = []
    methods = {(row["dataset"], row["method"]) for row in rows}
    for key in sorted(found):
        entry = found[key]
        if entry["free"] is None or not entry["layered"]:
            continue
        means = {name: _mean_metric(rows, name, entry["dataset"]) for name in entry["layered"].values()}
        higher = next(row["higher_is_better"] for row in rows if row["method"] == entry["free"])
        entry["best"] = max(means, key=lambda name: means[name] if higher else -means[name])
        mlp = f"mlp-sparse@{entry['parameters']}"
        entry["mlp"] = mlp if (entry["dataset"], mlp) in methods else None
        pairs.append(entry)
    return pairs


def _mean_metric(rows: Sequence[dict], method: str, dataset: str) -> float:
    values = list(_values(rows, method, dataset).values())
    return sum(values) / len(values) if values else math.nan


def _shown(rows: Sequence[dict], method: str | None, dataset: str, metric: str) -> str:
    values = [] if method is None else list(_values(rows, method, dataset).values())
    return format_interval(*confidence_interval(values), metric) if values else "–"


def pairs_table(rows: Sequence[dict]) -> str:
    """The layer-free against layered table of :func:`pair_rows`, as GitHub Markdown.

    Columns: data set, rule, parameter budget, the layer-free method's metric (mean ± 95% CI over
    seeds), each layered control's (1, 2, 3 hidden layers), the best control's with its depth,
    the mean per-seed difference layer-free minus best layered (percentage points for accuracy)
    with its paired two-sided t-test p-value and verdict, the dense MLP at the budget, and the
    training GFLOPs of the layer-free method and the best control. Empty string without pairs.
    """
    pairs = pair_rows(rows)
    if not pairs:
        return ""
    metric = next(row["metric"] for row in rows if row["method"] == pairs[0]["free"])
    scale = 100.0 if "accuracy" in metric else 1.0
    header = ["data set", "rule", "parameters", "layer-free", *[f"{d} layer{'s' if d > 1 else ''}" for d in DEPTHS],
              "best layered (depth)", "layer-free − best", "p", "verdict", "MLP, same parameters",
              "GFLOPs free / layered"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|"]
    for pair in pairs:
        dataset, free, best = pair["dataset"], pair["free"], pair["best"]
        higher = next(row["higher_is_better"] for row in rows if row["method"] == free)
        difference, p_value, _ = paired_comparison(_values(rows, free, dataset), _values(rows, best, dataset))
        outcome = OUTCOMES[paired_verdict(difference, p_value, higher)]
        depth = next(d for d, name in pair["layered"].items() if name == best)
        flops = [_mean_of(rows, name, dataset, "train_flops") / 1e9 for name in (free, best)]
        cells = [
            dataset, pair["rule"], f"{pair['parameters']:,}", _shown(rows, free, dataset, metric),
            *[_shown(rows, pair["layered"].get(d), dataset, metric) for d in DEPTHS],
            f"{_shown(rows, best, dataset, metric)} ({depth})",
            f"{scale * difference:+.2f}" if math.isfinite(difference) else "–",
            f"{p_value:.2g}" if math.isfinite(p_value) else "–", outcome,
            _shown(rows, pair["mlp"], dataset, metric),
            " / ".join(f"{f:,.1f}" if math.isfinite(f) else "–" for f in flops),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Each row: one rule at one parameter budget (PyTorch's count), layer-free (`sparse-<rule>`) "
              "against its layered controls (`layered<d>-<rule>`: the same rule, epochs and seeds on graphs whose "
              f"hidden neurons form d consecutive layers); mean ± 95% CI over seeds; a two-sided paired t-test of "
              f"the layer-free method against the best control over shared seeds (a win at p < {SIGNIFICANCE})."]
    return "\n".join(lines) + "\n"


def _base_rule(rule: str) -> str:
    return rule.partition("[")[0]


def ablation_rows(rows: Sequence[dict]) -> list[dict]:
    """One entry per layer-free variant ``sparse-<rule>[...]@parameters`` whose plain
    ``sparse-<rule>@parameters`` and layered controls ran: ``dataset``, ``parameters``,
    ``variant`` (its method name), ``factor`` (the text in brackets), ``base`` (the plain
    layer-free method) and ``control`` (the best layered control: of the same variant where the
    variant ran layered too, as ``neurons=128`` does on both sides, else of the plain rule), in
    order of data set, budget and variant."""
    pairs = {(p["dataset"], p["rule"], p["parameters"]): p for p in pair_rows(rows)}
    found: dict[tuple[str, str], dict] = {}
    for row in rows:
        parsed = parse_method(row["method"], int(row.get("budget", {}).get("sparse_parameters", 40_000)))
        if parsed is None or parsed[0] != "free" or parsed[2] == _base_rule(parsed[2]):
            continue
        _, _, rule, parameters = parsed
        plain = pairs.get((row["dataset"], _base_rule(rule), parameters))
        own = pairs.get((row["dataset"], rule, parameters))
        if plain is not None:
            found[row["dataset"], row["method"]] = {
                "dataset": row["dataset"], "parameters": parameters, "variant": row["method"],
                "factor": rule[len(_base_rule(rule)) + 1:-1], "base": plain["free"],
                "control": (own or plain)["best"]}
    found = list(found.values())
    return sorted(found, key=lambda f: (f["dataset"], f["parameters"], f["variant"]))


def ablation_table(rows: Sequence[dict]) -> str:
    """How much of the gap to the best layered control each factor closes, as GitHub Markdown.

    One row per :func:`ablation_rows` entry: the variant's metric (mean ± 95% CI), its paired
    difference to the plain layer-free method and to the best layered control (with p-values and
    the verdict against the control), the share of the plain method's gap to the control that
    the variant closes (100% = level with the control; above 100%, ahead of it), and where its
    edges go (input-to-output edges, median hop between neurons, depth). Empty string without
    entries.

    Examples
    --------
    >>> rows = [{"dataset": "toy", "method": m, "seed": s, "metric": "test_accuracy", "higher_is_better": True,
    ...          "candidate": False, "test_accuracy": a + 0.01 * s, "parameters": 900, "depth": 3}
    ...         for m, a in [("sparse-granet@1000", 0.93), ("layered1-granet@1000", 0.95),
    ...                      ("sparse-granet[prune_score=quota]@1000", 0.96)] for s in range(3)]
    >>> print(ablation_table(rows).splitlines()[2])
    | toy | 1,000 | prune_score=quota | 97.00 ± 2.48 | +3.00 | – | layered1-granet@1000 | +1.00 | – | tie | 150% | – | – | 3 |
    """
    entries = ablation_rows(rows)
    if not entries:
        return ""
    metric = next(row["metric"] for row in rows if row["method"] == entries[0]["variant"])
    scale = 100.0 if "accuracy" in metric else 1.0
    header = ["data set", "parameters", "factor", "layer-free with it", "− plain layer-free", "p", "best layered",
              "− best layered", "p", "verdict", "gap closed", "input→output edges", "median hop", "depth"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 3 + ["---"] + ["---:"] * 7) + "|"]
    for entry in entries:
        dataset, variant, base, control = entry["dataset"], entry["variant"], entry["base"], entry["control"]
        higher = next(row["higher_is_better"] for row in rows if row["method"] == variant)
        to_base, p_base, _ = paired_comparison(_values(rows, variant, dataset), _values(rows, base, dataset))
        to_control, p_control, _ = paired_comparison(_values(rows, variant, dataset), _values(rows, control, dataset))
        gap = _mean_metric(rows, control, dataset) - _mean_metric(rows, base, dataset)
        closed = to_base / gap if math.isfinite(to_base) and gap != 0 else math.nan
        shape = [_mean_of(rows, variant, dataset, column) for column in ("input_output_edges", "median_hop", "depth")]
        cells = [
            dataset, f"{entry['parameters']:,}", entry["factor"], _shown(rows, variant, dataset, metric),
            _signed(scale * to_base), _p(p_base), control, _signed(scale * to_control), _p(p_control),
            OUTCOMES[paired_verdict(to_control, p_control, higher)],
            f"{100 * closed:.0f}%" if math.isfinite(closed) else "–",
            *[f"{value:,.0f}" if math.isfinite(value) else "–" for value in shape],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Each row: the layer-free GraNet (`sparse-granet`) with one factor changed "
              "(`sparse-granet[factor]@parameters`, see `ncg.experiments.methods.variant`), against the plain "
              "layer-free method and the best layered control (of the same variant where it ran layered too); "
              "paired two-sided t-tests over shared seeds; 'gap closed': the variant's gain over the plain "
              "layer-free method as a share of the plain method's gap to that control."]
    return "\n".join(lines) + "\n"


def _signed(value: float) -> str:
    return f"{value:+.2f}" if math.isfinite(value) else "–"


def _p(value: float) -> str:
    return f"{value:.2g}" if math.isfinite(value) else "–"


def tables(rows: Sequence[dict]) -> str:
    """What a results report leads with: :func:`pairs_table`, then :func:`ablation_table` (each
    only if it has rows)."""
    return "\n".join(table for table in (pairs_table(rows), ablation_table(rows)) if table)
