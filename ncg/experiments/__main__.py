"""``python -m ncg.experiments``: run comparisons and rebuild their tables.

    python -m ncg.experiments run --datasets mnist fashion-mnist --seeds 0 1 2 3 4 --methods main
    python -m ncg.experiments run --quick          # a sweep of seconds to a minute, into results/quick
    python -m ncg.experiments report results/main --docs docs/results.md
    python -m ncg.experiments polynomial --out results/polynomial
    python -m ncg.experiments feynman --out results/feynman

``run`` trains every missing cell (data set x method x seed) into ``--out``, printing a line per
finished cell, and then writes the report; under ``torchrun`` or in a SLURM array each process
runs its share of the cells (``--shard``, taken from the environment by default) and rank 0 (every array task) reports
(docs/scaling.md). ``report`` rebuilds ``table.md`` (and for the runner's results
``aggregates.json`` and one Pareto figure per data set) from ``runs.json`` alone, and with
``--docs`` the table between the markers ``<!-- results:<name>:begin -->`` and
``<!-- results:<name>:end -->`` of a Markdown page, where ``<name>`` is the results folder's name.
``polynomial`` runs the FreeNets authors' polynomial experiment (``polynomial --help``), ``feynman``
the AI Feynman equations at equal parameter counts (``feynman --help``).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ncg import presets
from ncg.distributed import shard_from_env
from ncg.errors import NCGError
from ncg.experiments.methods import METHODS, PRESETS, Budget
from ncg.experiments.report import load_runs, write_report
from ncg.experiments.runner import collects, run_sweep


def _shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"--shard must look like INDEX/COUNT (e.g. 0/2), got {text!r}")
    return int(match[1]), int(match[2])


def _flags(schedule: presets.Schedule, **more: object) -> dict:
    """The ``run`` flags that ``schedule`` sets, with ``more``."""
    return {"neurons": schedule.neurons, "epochs": schedule.evolve_epochs, "finetune_epochs": schedule.final_epochs,
            "rounds": schedule.rounds, "train_samples": schedule.train_samples,
            "record_samples": schedule.record_samples, **more}


SCHEDULE = presets.MAIN
"""The main job's schedule, which ``run`` spends by default."""
FULL = _flags(SCHEDULE, seeds=[0, 1, 2, 3, 4], out="results/main", sparse_parameters=presets.SPARSE_PARAMETERS)
QUICK = _flags(presets.SWEEP_QUICK, seeds=[0, 1], out="results/quick",
               sparse_parameters=presets.QUICK_SPARSE_PARAMETERS)
"""Defaults of ``run`` and of ``run --quick`` where they differ; a flag given explicitly wins."""


def _default(name: str) -> str:
    """``(default: FULL; --quick: QUICK)`` for the flag ``name`` (a list as its items, None as 'all')."""
    def show(value: object) -> str:
        if isinstance(value, list):
            return " ".join(map(str, value))
        return "all" if value is None else f"{value:,}" if isinstance(value, int) else str(value)

    return f"(default: {show(FULL[name])}; --quick: {show(QUICK[name])})"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ncg.experiments", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="run: train a sweep; report: rebuild its tables; polynomial: the polynomial experiment; "
                                "feynman: the Feynman equations")
    run = sub.add_parser("run", help="train every missing cell (data set x method x seed), then write the report",
                         description="Train every missing cell (data set x method x seed) into --out, one line per "
                                     "finished cell, then write runs.json, runs.csv, table.md and the figures. A cell "
                                     "already done under the same budget is skipped, so a killed sweep resumes.")
    run.add_argument("--datasets", nargs="+", default=["mnist"],
                     help="data set names of ncg.datasets (default: mnist)")
    run.add_argument("--methods", nargs="+", default=["main"],
                     help=f"'all', a preset ({', '.join(PRESETS)}) or some of: {' '.join(METHODS)} (default: main)")
    run.add_argument("--seeds", nargs="+", type=int, default=None,
                     help=f"seeds; every data set x method trains once per seed {_default('seeds')}")
    run.add_argument("--out", default=None,
                     help=f"results folder: cells/, runs.json, table.md, figures {_default('out')}")
    run.add_argument("--neurons", type=int, default=None, help=f"hidden neurons of the FreeNets {_default('neurons')}")
    run.add_argument("--epochs", type=int, default=None,
                     help=f"epochs of the first (evolve) stage {_default('epochs')}")
    run.add_argument("--lr", type=float, default=SCHEDULE.lr, help="learning rate of the first stage (default: %(default)s)")
    run.add_argument("--finetune-epochs", type=int, default=None,
                     help=f"epochs of the fine-tuning stage, 0 for none {_default('finetune_epochs')}")
    run.add_argument("--finetune-lr", type=float, default=SCHEDULE.finetune_lr,
                     help="learning rate of the fine-tuning stage (default: %(default)s)")
    run.add_argument("--rounds", type=int, default=None,
                     help=f"Free-Evolve rounds in the first stage; they must divide --epochs {_default('rounds')}")
    run.add_argument("--batch-size", type=int, default=SCHEDULE.batch_size, help="training batch size (default: %(default)s)")
    run.add_argument("--density", type=float, default=0.38,
                     help="target edges of the sparse baselines, a fraction of the complete DAG (default: %(default)s)")
    run.add_argument("--train-samples", type=int, default=None,
                     help=f"train on the first samples only {_default('train_samples')}")
    run.add_argument("--record-samples", type=int, default=None,
                     help="samples of each round's coactivation recording and gradient scores "
                          + _default("record_samples"))
    run.add_argument("--imp-cycles", type=int, default=2,
                     help="train-prune-rewind cycles of IMP (default: %(default)s)")
    run.add_argument("--sparse-parameters", type=int, default=None,
                     help=f"parameter budget of the sparse-* methods {_default('sparse_parameters')}")
    run.add_argument("--shard", type=_shard, default=None,
                     help="INDEX/COUNT: run every COUNT-th cell from INDEX (default: torchrun's RANK/WORLD_SIZE, a "
                          "SLURM array's task/count, else 0/1)")
    run.add_argument("--data-root", default=None,
                     help="folder holding <dataset>/ IDX files (default: $NCG_DATA_DIR, then the shipped copy)")
    run.add_argument("--quick", action="store_true",
                     help="a sweep of seconds to a minute: 5,000 training samples, 32 neurons, 5 epochs, two "
                          "seeds, into results/quick (explicit flags still win)")
    report = sub.add_parser("report", help="rebuild table.md, aggregates.json and figures from runs.json",
                            description="Rebuild table.md (and aggregates.json and the figures) from runs.json, "
                                        "and with --docs the results section of a Markdown page.")
    report.add_argument("results", help="results folder holding runs.json")
    report.add_argument("--docs", default=None,
                        help="Markdown page whose section between <!-- results:NAME:begin --> and "
                             "<!-- results:NAME:end --> (NAME: the results folder's name) is replaced "
                             "(default: no page)")
    poly = sub.add_parser("polynomial", help="the FreeNets authors' polynomial experiment (polynomial --help)",
                          add_help=False)
    poly.add_argument("rest", nargs=argparse.REMAINDER,
                      help="the flags of the polynomial experiment (polynomial --help)")
    feynman = sub.add_parser("feynman", help="the Feynman equations at equal parameter counts (feynman --help)",
                             add_help=False)
    feynman.add_argument("rest", nargs=argparse.REMAINDER, help="the flags of the benchmark (feynman --help)")
    return p


def _run_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the flags of ``run`` left unset with the full or the ``--quick`` defaults."""
    for name, value in (QUICK if args.quick else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def _budget(args: argparse.Namespace) -> Budget:
    stages = ((args.epochs, args.lr),) + (((args.finetune_epochs, args.finetune_lr),) if args.finetune_epochs else ())
    return Budget(
        neurons=args.neurons, stages=stages, rounds=args.rounds, batch_size=args.batch_size, density=args.density,
        train_samples=args.train_samples, record_samples=args.record_samples, imp_cycles=args.imp_cycles,
        sparse_parameters=args.sparse_parameters,
    ).validate()


def section(page: str, name: str) -> tuple[str, str, str]:
    """``(head, body, tail)`` of ``page`` around the section marked for results folder ``name``."""
    begin, end = f"<!-- results:{name}:begin -->", f"<!-- results:{name}:end -->"
    if begin not in page or end not in page:
        raise NCGError(f"the page has no section marked {begin} ... {end}")
    head, rest = page.split(begin, 1)
    body, tail = rest.split(end, 1)
    return head + begin, body.strip(), end + tail


def report(results: str | Path, docs: str | Path | None = None) -> dict[str, Path]:
    """Rebuild the report of ``results`` from its ``runs.json`` (and the section in ``docs``).

    Raises
    ------
    NCGError
        If ``docs`` is given but is no file (checked before anything is written), or
        ``runs.json`` or the page's marked section is missing.
    """
    results = Path(results)
    if docs is not None and not Path(docs).is_file():
        raise NCGError(f"--docs {docs}: no such file; pass the path of the Markdown page holding the marked section "
                       "(such as docs/results.md in the ncg repository), or leave --docs out")
    rows = load_runs(results)
    if rows and rows[0].get("kind") == "feynman":
        from ncg.experiments.feynman import write_outputs as write_feynman

        paths = write_feynman(results, rows)
    elif rows and "polynomial" in rows[0]:
        from ncg.experiments.polynomial import write_outputs

        write_outputs(results, rows)
        paths = {"table": results / "table.md"}
    else:
        from ncg.experiments.layer_pairs import tables
        from ncg.experiments.pareto import pareto_figure

        paths = write_report(rows, results, lead=tables(rows))
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            paths[f"pareto-{dataset}"] = results / f"pareto-{dataset}.png"
            pareto_figure(rows, dataset, paths[f"pareto-{dataset}"])
    if docs is not None:
        head, _, tail = section(Path(docs).read_text(), results.resolve().name)
        Path(docs).write_text(f"{head}\n{paths['table'].read_text().strip()}\n{tail}")
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv[:1] if argv and argv[0] in ("polynomial", "feynman") else argv)
    try:
        if args.command == "polynomial":
            from ncg.experiments.polynomial import main as polynomial_main

            return polynomial_main(argv[1:])
        if args.command == "feynman":
            from ncg.experiments.feynman import main as feynman_main

            return feynman_main(argv[1:])
        if args.command == "run":
            args = _run_defaults(args)
            methods = list(METHODS) if args.methods == ["all"] else args.methods
            shard = args.shard or shard_from_env()
            rows = run_sweep(args.datasets, methods, args.seeds, _budget(args), args.out, shard, args.data_root)
            if collects(shard):
                paths = report(args.out)
                print(f"{len(rows)} runs in {args.out}; table: {paths['table']}")
        else:
            paths = report(args.results, args.docs)
            print(f"table: {paths['table']}")
    except NCGError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
