"""Train a FreeNet on MNIST with Free-Evolve and write a run folder.

Every knob is a command-line flag (``--help``). The defaults build the *whole* network as one DAG
(784 input nodes, 512 hidden and 10 output neurons, every input connection an edge), complete at
the start, train it on the MNIST copy that ships with ncg and evolve it for 4 rounds down to
40,000 parameters (under 10% of MLP 784-512-10): each round prunes the smallest-magnitude 60% of
the edges and regrows 10% where the loss gradient of a missing edge is largest (GraNet's rules, the
best variant of docs/results.md on MNIST; ``--grow-score coactivation`` regrows between neurons
that fire together instead). Then it fine-tunes: 15-16 s of training, 22-23 s without figures and about
a minute with them on the reference machine (2-core AMD EPYC, AVX-512; ``--quick``: seconds).
``--start complete`` runs the first main job (a complete DAG of neurons behind a dense encoder,
coactivation pruning), ``--start sparse`` a sparse random start.

The run folder (``--out``, default ``runs/<dataset>-seed<seed>``, ``runs/<dataset>-seed<seed>-quick``
with ``--quick``) receives: ``config.json``, ``metrics.csv`` / ``metrics.json`` (one row per round),
``history.json`` (every edit, replayable), ``model.pt`` (checkpoint, rewritten atomically after
every round with the optimiser and RNG state, so ``--resume`` continues an interrupted run),
``graph.graphml`` (+ ``graph.weights.npz``), ``coactivation.npz``, the figures, the explorer page
``explorer.html`` (``viz.explore``: open it in a browser) and ``summary.json``; with ``--data``,
``classes.json`` (the task and the target value of each class index the model predicts). A folder
holds one run: a new run refuses a folder with another run's
checkpoint unless ``--overwrite``, and ``--resume`` refuses flags other than the stored ones
unless ``--allow-config-change``; nothing is written before these checks pass, and ``--resume``
of a folder that does not exist is an error (``--threads``, ``--device`` and the other flags that
say where a run computes, not what, may differ). Steps take the cores other processes leave free
(``--threads auto``); ``--threads N`` pins them, which a bit-for-bit repeat needs. Ctrl-C ends a run with one line that gives the
command continuing it (exit status 130); bad input ends it with one line ``error: ...`` (status 2).
A run that stops before it saved its first round leaves no half-written folder: one it created
is removed, in another a ``FAILED`` file says why. The folder's layout, its writer and reader and
these checks live in :mod:`ncg.run_folder`.

    python examples/evolve_mnist.py                 # the main job
    python examples/evolve_mnist.py --start complete   # the first main job (dense encoder)
    python examples/evolve_mnist.py --quick         # a seconds-long smoke run
    python examples/evolve_mnist.py --threads 1     # one thread: repeats bit for bit
    python examples/evolve_mnist.py --dataset fashion-mnist --rounds 6 --seed 1
    python examples/evolve_mnist.py --data iris.csv --target species --standardize   # your own table
    torchrun --nproc_per_node 2 examples/evolve_mnist.py   # data-parallel, docs/scaling.md

Under ``torchrun`` every rank trains on its slice of each batch of ``--batch-size`` (the global
batch), and only rank 0 prints and writes the run folder.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

from ncg import NCG, FreeNet, distributed, presets
from ncg.activations import ACTIVATIONS
from ncg.build import INITS, initialized, lift_constraint, sparse_start
from ncg.errors import NCGError
from ncg.datasets import load_dataset
from ncg.tables import TASKS, load_table
from ncg.evolve import EditBudget, EvolveConfig, FreeEvolve, History, RoundRecord, record_coactivation
from ncg.evolve.rules import GROW_SCORES, PRUNE_SCORES
from ncg.io import summary as graph_summary
from ncg.run_folder import RunFolder
from ncg.threads import intra_op_threads
from ncg.train import evaluate

DATASETS = ("mnist", "fashion-mnist", "emnist", "digits")
SCHEDULE = presets.MAIN
"""The main job's schedule (:mod:`ncg.presets`), which the flags' defaults spend."""


def _sizes(schedule: presets.Schedule) -> dict:
    return {"neurons": schedule.neurons, "epochs": schedule.epochs_per_round, "rounds": schedule.rounds,
            "final_epochs": schedule.final_epochs, "record_samples": schedule.record_samples}


def _rules(rules: presets.RuleSet, target_parameters: int | None) -> dict:
    return {"prune_score": rules.prune_score, "grow_score": rules.grow_score, "prune_fraction": rules.prune_fraction,
            "add_fraction": rules.add_fraction, "target_parameters": target_parameters}


FULL, QUICK = _sizes(SCHEDULE), _sizes(presets.QUICK)
"""Sizes of the main job and of ``--quick``; a flag given explicitly overrides either."""
BATCH_SIZE = SCHEDULE.batch_size
SMALL_TABLE = {"rows": 2000, "neurons": 64, "batch_size": 16, "steps": 300, "quick_steps": 50}
"""A ``--data`` table with fewer training rows than ``rows`` trains by steps, not epochs: batches of
``batch_size`` and enough epochs for ``steps`` optimizer steps per round (``quick_steps`` with
``--quick``), and half as many again to fine-tune, on ``neurons`` hidden neurons (``--quick``'s,
if fewer). At 256 rows a batch, 106 rows would make one step per epoch. ``--neurons``,
``--batch-size``, ``--epochs`` and ``--final-epochs`` given explicitly win."""
RULES = {"whole": _rules(presets.GRANET, presets.SPARSE_PARAMETERS),
         "complete": _rules(presets.COACTIVATION, None), "sparse": _rules(presets.COACTIVATION, None)}
"""Rule defaults of each ``--start`` (``whole``: the best variant of docs/results.md's sparse table
under the time limit; ``complete``: the first main job); explicit flags win."""
QUICK_RULES = {"whole": {"target_parameters": presets.QUICK_SPARSE_PARAMETERS}}
"""Rule defaults that ``--quick`` replaces, per ``--start``."""
WHERE_NOT_WHAT = ("out", "resume", "overwrite", "allow_config_change", "no_figures", "device", "data_root", "threads")
"""Flags that say where or how a run is computed, not what: they may differ on ``--resume``."""


def _rules_epilog() -> str:
    """The help's epilog: the rule defaults of each ``--start`` and the run folder's rules."""
    flags = list(RULES["whole"])
    rows = [["--start", *(f"--{f.replace('_', '-')}" for f in flags)]]
    for start, rules in RULES.items():
        quick = QUICK_RULES.get(start, {})
        cells = []
        for flag in flags:
            value = rules[flag]
            shown = "none" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
            cells.append(shown + (f" (--quick: {quick[flag]:,})" if flag in quick else ""))
        rows.append([start, *cells])
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    table = "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
    return (
        "RULES: the defaults of the rule flags for each --start (an explicit flag wins):\n" + table + "\n\n"
        "run folder: --out (default runs/<dataset>-seed<seed>, runs/<dataset>-seed<seed>-quick with --quick) holds\n"
        "one run. A new run refuses a folder that holds another run's checkpoint (model.pt): pass --resume to\n"
        "continue that run, --overwrite to start over, or another --out. --resume refuses flags that differ from\n"
        "the run's stored ones (config.json and the checkpoint) unless --allow-config-change is given."
    )


def thread_setting(text: str) -> str | int:
    """``--threads``: ``auto`` or a positive count.

    >>> thread_setting("auto"), thread_setting("2")
    ('auto', 2)
    """
    if text == "auto":
        return text
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected auto or a positive count of threads, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The command line of this script; every flag's help names its default."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=_rules_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, default="mnist",
                   help="data set; mnist ships with ncg (default: %(default)s)")
    p.add_argument("--data-root", default=None,
                   help="folder holding <dataset>/ IDX files (default: $NCG_DATA_DIR, then the shipped copy)")
    p.add_argument("--data", default=None,
                   help="train on your own table instead of --dataset: a .csv (needs --target) or an .npz / .pt "
                        "holding x and y, split 70/15/15 by --seed; classification or regression is read from the "
                        "target (default: none)")
    p.add_argument("--target", default=None, help="target column of a --data CSV (default: none)")
    p.add_argument("--task", choices=TASKS, default=None,
                   help="what the --data target is (default: classification for text labels or at most 50 distinct "
                        "integers, else regression)")
    p.add_argument("--tensorboard", default=None, metavar="DIR",
                   help="also log every round to TensorBoard in DIR: metrics, graph size, edits, step time, "
                        "weight histograms and the topology figure (needs pip install \"ncg[tensorboard]\"; "
                        "default: off)")
    p.add_argument("--standardize", action="store_true",
                   help="scale --data features to mean 0 and std 1 over the training split (default: off)")
    p.add_argument("--neurons", type=int, default=None,
                   help=f"hidden neurons of the initial DAG, {SMALL_TABLE['neurons']} for a --data table of under "
                        f"{SMALL_TABLE['rows']:,} training rows (default: {FULL['neurons']}; "
                        f"--quick: {QUICK['neurons']})")
    p.add_argument("--start", choices=sorted(RULES), default="whole",
                   help="whole: complete DAG over input nodes and neurons (input connections are edges); complete: "
                        "complete DAG of neurons behind a dense encoder; sparse: random sparse DAG with input nodes "
                        "(default: %(default)s). It sets the RULES defaults below")
    p.add_argument("--fan-in", type=int, default=75,
                   help="incoming edges per neuron of --start sparse (default: %(default)s)")
    p.add_argument("--layers", type=int, nargs="+", default=None, metavar="SIZE",
                   help="hidden layer sizes summing to --neurons: the layered control of --start whole or sparse "
                        "(edges only between consecutive layers, kept by every edit; docs/evolve.md) (default: "
                        "layer-free)")
    p.add_argument("--reach", type=int, default=None, metavar="HOPS",
                   help="hop cap of --start whole: an edge between hidden neurons joins neurons at most HOPS apart in "
                        "the topological order, kept by every edit (ncg.layers.within_reach; the sparse-local-granet "
                        "rule of docs/results.md uses 16) (default: none)")
    p.add_argument("--init", choices=INITS, default="fan_in",
                   help="start weights of --start whole or sparse: fan_in U(+-1/sqrt(d)) for a neuron of d incoming "
                        "edges, he U(+-sqrt(6/d)), by_source (input and neuron edges each scaled by their own count) "
                        "(default: %(default)s)")
    p.add_argument("--lift-layers", action="store_true",
                   help="start from the --layers graph, then lift its constraint, so the rules may wire any neuron "
                        "to any later one (start layered, then free the edges)")
    p.add_argument("--activation", default="relu", choices=[name for name in ACTIVATIONS if name != "identity"],
                   help="activation of every neuron (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs per evolve round (default: {FULL['epochs']}; --quick: {QUICK['epochs']}; a "
                        f"--data table of under {SMALL_TABLE['rows']:,} training rows: {SMALL_TABLE['steps']} steps' "
                        "worth)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"evolve rounds, train -> record -> edit (default: {FULL['rounds']}; "
                        f"--quick: {QUICK['rounds']})")
    p.add_argument("--final-epochs", type=int, default=None,
                   help=f"fine-tuning epochs after the last round (default: {FULL['final_epochs']}; "
                        f"--quick: {QUICK['final_epochs']})")
    p.add_argument("--tau", type=float, default=0.25,
                   help="Hebbian threshold of the coactivation rules: prune below, grow above (default: %(default)s)")
    p.add_argument("--measure", choices=["phi", "joint"], default="phi",
                   help="coactivation measure of the coactivation rules (default: %(default)s)")
    p.add_argument("--prune-score", choices=sorted(PRUNE_SCORES), default=None,
                   help="prune rule (default: per --start, see RULES below)")
    p.add_argument("--grow-score", choices=sorted(GROW_SCORES), default=None,
                   help="grow rule for new edges (default: per --start, see RULES below)")
    p.add_argument("--prune-fraction", type=float, default=None,
                   help="largest fraction of the edges pruned per round (default: per --start, see RULES below)")
    p.add_argument("--add-fraction", type=float, default=None,
                   help="most edges added per round, as a fraction of the edges (default: per --start, see RULES "
                        "below)")
    p.add_argument("--target-parameters", type=int, default=None,
                   help="stop pruning at this many parameters, edges + neuron biases (default: per --start and "
                        "--quick, see RULES below)")
    p.add_argument("--grow-neurons", type=int, default=0,
                   help="new neurons proposed per round (default: %(default)s); --grow-score picks the edges' rule")
    p.add_argument("--constant-budget", action="store_true", help="grow as many edges as pruned each round")
    p.add_argument("--decay", choices=["constant", "cosine"], default="constant",
                   help="decay of the edit fractions over the rounds (default: %(default)s)")
    p.add_argument("--no-evolve", action="store_true", help="control run: the same epochs and learning rates, no edits")
    p.add_argument("--keep-dead", action="store_true", help="do not remove neurons that never fire")
    p.add_argument("--keep-going", action="store_true", help="train every round even after a round without edits")
    p.add_argument("--record-samples", type=int, default=None,
                   help=f"samples streamed to record coactivation and gradient scores (default: "
                        f"{FULL['record_samples']:,}; --quick: {QUICK['record_samples']:,})")
    p.add_argument("--lr", type=float, default=SCHEDULE.lr,
                   help="Adam learning rate of the evolve rounds (default: %(default)s)")
    p.add_argument("--finetune-lr", type=float, default=SCHEDULE.finetune_lr,
                   help="learning rate of the final fine-tuning epochs (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"training batch size, the global batch under torchrun (default: {BATCH_SIZE}; a --data table "
                        f"of under {SMALL_TABLE['rows']:,} training rows: {SMALL_TABLE['batch_size']}, see "
                        "table_schedule)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the graph, the weights, the batch order and the edits; it names the default --out "
                        "(default: %(default)s)")
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:K, or auto: this rank's GPU if any (default: %(default)s)")
    p.add_argument("--threads", type=thread_setting, default="auto",
                   help="torch's intra-op threads: auto gives a small step one thread and a large one the cores that "
                        "other processes leave free, measured every half second; a count pins them for the whole "
                        "run, which repeats a run bit for bit (default: %(default)s)")
    p.add_argument("--out", default=None,
                   help="run folder (default: runs/<dataset>-seed<seed>; --quick: runs/<dataset>-seed<seed>-quick)")
    p.add_argument("--no-figures", action="store_true", help="skip rendering the figures")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run saved in --out (after a crash or a stop) with its stored flags")
    again.add_argument("--overwrite", action="store_true",
                       help="start a new run in an --out that holds another run, deleting that run's files")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: continue the run under flags other than its stored ones (it prints them)")
    p.add_argument("--quick", action="store_true",
                   help="seconds-long smoke run: small net, 2,000 training samples, 2 short rounds, its own default "
                        "--out (explicit flags still win)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` and fill the defaults that depend on ``--quick`` and ``--start``."""
    p = build_parser()
    args = p.parse_args(argv)
    defaults = {**(QUICK if args.quick else FULL), **RULES[args.start]}
    if args.data:  # the schedule waits for the table's size: table_schedule
        defaults = {name: value for name, value in defaults.items()
                    if name not in ("neurons", "epochs", "final_epochs")}
    elif args.batch_size is None:
        args.batch_size = BATCH_SIZE
    if args.quick:
        defaults.update(QUICK_RULES.get(args.start, {}))
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("neurons", "record_samples"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    for name in ("epochs", "rounds", "final_epochs"):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.target is not None and args.data is None:
        p.error("--target names a column of a --data CSV; pass --data FILE too")
    if args.task is not None and args.data is None:
        p.error("--task sets what a --data table's target is; pass --data FILE too")
    if args.batch_size is not None and args.batch_size < 1:
        p.error(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.out is None:
        name = Path(args.data).stem if args.data else args.dataset
        args.out = f"runs/{name}-seed{args.seed}" + ("-quick" if args.quick else "")
    return args


def table_schedule(args: argparse.Namespace, rows: int) -> str | None:
    """Fill ``--neurons``, ``--batch-size``, ``--epochs`` and ``--final-epochs`` not given for a
    ``--data`` table of ``rows`` training rows: the main job's for a large table, steps rather
    than epochs for a small one (:data:`SMALL_TABLE`). Returns the line that tells a small
    table's schedule.

    Examples
    --------
    >>> args = argparse.Namespace(neurons=None, batch_size=None, epochs=None, final_epochs=None, quick=False)
    >>> table_schedule(args, 106)
    'small table (106 training rows): --neurons 64 --batch-size 16 --epochs 43 --final-epochs 65, 301 steps ...'
    >>> args.neurons, args.batch_size, args.epochs, args.final_epochs
    (64, 16, 43, 65)
    """
    sizes = QUICK if args.quick else FULL
    if rows >= SMALL_TABLE["rows"]:
        for name, value in (("neurons", sizes["neurons"]), ("batch_size", BATCH_SIZE), ("epochs", sizes["epochs"]),
                            ("final_epochs", sizes["final_epochs"])):
            if getattr(args, name) is None:
                setattr(args, name, value)
        return None
    if args.neurons is None:
        args.neurons = min(SMALL_TABLE["neurons"], sizes["neurons"])
    if args.batch_size is None:
        args.batch_size = SMALL_TABLE["batch_size"]
    steps_per_epoch = -(-rows // args.batch_size)
    if args.epochs is None:
        args.epochs = -(-SMALL_TABLE["quick_steps" if args.quick else "steps"] // steps_per_epoch)
    if args.final_epochs is None:
        args.final_epochs = -(-3 * args.epochs // 2)
    epoch_steps = sizes["epochs"] * -(-rows // BATCH_SIZE)
    return (f"small table ({rows:,} training rows): --neurons {args.neurons} --batch-size {args.batch_size} "
            f"--epochs {args.epochs} --final-epochs {args.final_epochs}, {args.epochs * steps_per_epoch:,} steps a "
            f"round (at batch {BATCH_SIZE} and {sizes['epochs']} epochs it would be {epoch_steps}); give these flags "
            "to choose")


def target_edges(parameters: int | None, biases: int) -> int | None:
    """The edge count at which ``parameters`` (edges + ``biases``, one per non-input neuron of
    the initial graph: PyTorch's ``sum(p.numel() for p in model.parameters())`` of a FreeNet whose
    inputs are graph nodes) are reached, or None for no target.

    Examples
    --------
    >>> target_edges(40_000, 522), target_edges(None, 522)
    (39478, None)
    """
    if parameters is None:
        return None
    if parameters < biases:
        raise NCGError(f"--target-parameters {parameters} is below the {biases} neuron biases alone")
    return parameters - biases


def pick_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if name in ("auto", "cuda"):  # under torchrun, this rank's GPU
        return distributed.default_device()
    return torch.device(name)


def round_line(record: RoundRecord) -> str:
    m = record.metrics
    key = next((f"{split}_{name}" for split in ("val", "train") for name in ("accuracy", "mse") if f"{split}_{name}" in m),
               None)
    acc = f"{key.replace('_accuracy', '').replace('_', ' ')} {m[key]:.4f}" if key else "no metrics"
    return (
        f"round {record.round:2d} | {acc} | edges {record.num_edges:7,d} | neurons {record.num_neurons:4d} | "
        f"depth {record.depth:4d} | pruned {record.count('prune_edge'):6,d} | added {record.count('add_edge'):5,d} | "
        f"neurons -{record.count('remove_neuron')} +{record.count('add_neuron')} | "
        f"{1e3 * record.timing.get('seconds_per_step', 0.0):5.1f} ms/step | {record.seconds:5.1f}s"
    )


def say(*parts: object) -> None:
    """Print on rank 0 only."""
    if distributed.is_main():
        print(*parts, flush=True)


def build_model(args: argparse.Namespace, data, device: torch.device) -> FreeNet:
    """The starting FreeNet of a new run: ``--start``, ``--neurons``, ``--layers`` (``--lift-layers``),
    ``--reach``, ``--init``, ``--activation``."""
    if args.layers and sum(args.layers) != args.neurons:
        raise NCGError(f"--layers {' '.join(map(str, args.layers))} sum to {sum(args.layers)}, but --neurons is "
                       f"{args.neurons}; give hidden layer sizes that sum to --neurons")
    if args.reach is not None and args.start != "whole":
        raise NCGError(f"--reach caps the hops of --start whole, got --start {args.start}")
    if args.reach is not None and args.layers:
        raise NCGError("--reach and --layers exclude each other: a hop cap is a layer-free start")
    if args.lift_layers and not args.layers:
        raise NCGError("--lift-layers lifts the constraint of a --layers start; give --layers too")
    if args.start in ("sparse", "whole"):
        wiring = {"fan_in": args.fan_in} if args.start == "sparse" else {"density": 1.0}
        graph = sparse_start(data.num_features, args.neurons, data.num_classes, seed=args.seed,
                             layers=args.layers, reach=args.reach, **wiring)
        if args.lift_layers:
            graph = lift_constraint(graph)
        graph = initialized(graph, args.init, args.seed)
    elif args.layers:
        raise NCGError("--layers needs --start whole or sparse (input nodes in layer 0)")
    elif args.init != "fan_in":
        raise NCGError(f"--init {args.init} needs --start whole or sparse (the edges of the input nodes)")
    else:
        graph = NCG.complete(args.neurons + data.num_classes, num_outputs=data.num_classes, seed=args.seed)
    return FreeNet(graph, in_features=data.num_features, activation=args.activation, seed=args.seed).to(device)


def summarize(history: History, model: FreeNet, test: dict[str, float], data, args: argparse.Namespace) -> dict:
    """The run's ``summary.json`` (without the timing and device fields, which ``main`` adds)."""
    totals = history.totals()
    final = history.rounds[-1]
    stats = graph_summary(model)
    return {
        "dataset": data.name,
        "test_split": data.test_split,
        **{f"test_{name}": value for name, value in test.items()},
        **{name: value for name, value in final.metrics.items() if name.startswith("val_")},
        "edges": final.num_edges,
        "initial_edges": history.rounds[0].num_edges,
        "neurons": final.num_neurons,
        "depth": final.depth,
        "generations": final.num_generations,
        "density_vs_complete_dag": stats["density"],
        "parameters": stats["parameters"],
        "edges_pruned": totals.get("prune_edge", 0),
        "edges_added": totals.get("add_edge", 0),
        "edges_dropped_with_neurons": history.rounds[0].num_edges - totals.get("prune_edge", 0)
        + totals.get("add_edge", 0) - final.num_edges,
        "neurons_removed": totals.get("remove_neuron", 0),
        "neurons_added": totals.get("add_neuron", 0),
        "rounds": sum(record.phase == "evolve" for record in history.rounds),
        "seed": args.seed,
    }


def print_summary(summary: dict, out: Path) -> None:
    width = max(len(k) for k in summary)
    print("\n" + "-" * (width + 30))
    for key, value in summary.items():
        if isinstance(value, float):
            shown = f"{value:.4f}" if abs(value) <= 1 else f"{value:,.1f}"
        else:
            shown = f"{value:,}" if isinstance(value, int) else value
        print(f"{key:<{width}}  {shown}")
    print("-" * (width + 30) + f"\nrun folder: {out}")


def resume_command(argv: list[str]) -> str:
    """The command line that continues the run of ``argv``: the same flags, ``--resume``, no ``--overwrite``.

    Examples
    --------
    >>> resume_command(["--quick", "--overwrite", "--out", "runs/my run"])
    "python examples/evolve_mnist.py --quick --out 'runs/my run' --resume"
    """
    kept = [flag for flag in argv if flag not in ("--overwrite", "--resume")]
    return shlex.join(["python", "examples/evolve_mnist.py", *kept, "--resume"])


def main(argv: list[str] | None = None, callbacks: Sequence[Callable[[FreeEvolve, RoundRecord], None]] = ()) -> dict:
    """Run the job of the flags ``argv`` (default: ``sys.argv[1:]``) and return its summary;
    ``callbacks`` run after each round, after its checkpoint.

    A run that stops before it saved its first round leaves no half-written folder
    (:meth:`RunFolder.abandon <ncg.run_folder.RunFolder.abandon>`). Ctrl-C raises a
    ``KeyboardInterrupt`` whose message is the one line to print: how to resume, or that
    nothing was saved.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    folder = RunFolder(args.out)
    created = not folder.path.exists()
    try:
        with intra_op_threads(None if args.threads == "auto" else args.threads):  # a count holds for everything
            return run(args, folder, callbacks)
    except BaseException as error:
        left = folder.abandon(f"{type(error).__name__}: {error}", created) if distributed.is_main() else ""
        if not isinstance(error, KeyboardInterrupt):
            raise
        if folder.holds_run():
            line = f"interrupted; {left}; continue it with: {resume_command(argv)}"
        else:
            line = f"interrupted before the first round was saved; {left}"
        raise KeyboardInterrupt(line) from None


def run(args: argparse.Namespace, folder: RunFolder,
        callbacks: Sequence[Callable[[FreeEvolve, RoundRecord], None]] = ()) -> dict:
    """The body of :func:`main`: train, evolve, write ``folder``; return the summary."""
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    _, processes = distributed.init_from_env(device)
    folder.check_new_run(resume=args.resume, overwrite=args.overwrite)

    if args.data:
        data = load_table(args.data, target=args.target, standardize=args.standardize, task=args.task, seed=args.seed)
    else:
        try:
            data = load_dataset(args.dataset, root=args.data_root)
        except NCGError as error:  # the library names its argument, this command line its flag
            raise NCGError(str(error).replace("pass root=ROOT", "pass --data-root ROOT")) from None
    task = getattr(data, "task", "classification")
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (s.tensors for s in (data.train, data.val, data.test))
    if args.quick:
        x_train, y_train = x_train[:2000], y_train[:2000]
    say(f"{data}\n{len(x_train):,} training samples on {device}" + (f" x {processes} processes" if processes > 1 else ""))
    if args.data:
        classes = data.classes
        shown = ", ".join(map(str, classes[:10])) + (", ..." if len(classes) > 10 else "")
        say(f"task: {task}" + (f", {len(classes)} classes ({shown})" if classes else "") + "; --task sets it")
        schedule = table_schedule(args, len(x_train))
        if schedule:
            say(schedule)

    resume_state = None
    resuming = args.resume and folder.holds_run()  # else --resume starts the run
    if resuming:
        model, extra = folder.load_checkpoint(map_location=device)
        resume_state = extra.get("evolve")
        initial = resume_state["history"]["rounds"][0] if resume_state else None  # the target counts its biases
        biases = (initial["num_neurons"] if initial else model.num_neurons) - model.inputs.numel()
    else:
        model = build_model(args, data, device)
        biases = model.bias.numel()
    config = EvolveConfig(
        rounds=args.rounds, epochs_per_round=args.epochs, final_epochs=args.final_epochs, tau=args.tau,
        measure=args.measure, prune_score=args.prune_score, grow_score=args.grow_score,
        evolve=not args.no_evolve, remove_dead=not args.keep_dead, stop_when_unchanged=not args.keep_going,
        budget=EditBudget(prune_fraction=args.prune_fraction, add_fraction=args.add_fraction, grow_neurons=args.grow_neurons,
                          regrow=args.constant_budget, decay=args.decay,
                          target_edges=target_edges(args.target_parameters, biases)),
        record_samples=args.record_samples, batch_size=args.batch_size, lr=args.lr, finetune_lr=args.finetune_lr, seed=args.seed, progress=True,
        task=task,
    )
    if resuming:
        changes = folder.check_resume(vars(args), config.to_dict(), (resume_state or {}).get("config"),
                                      ignore=WHERE_NOT_WHAT, allow_changes=args.allow_config_change)
        say(f"resuming {folder.file('model.pt')} after round {extra.get('round')}"
            + (f" under changed flags: {'; '.join(changes)}" if changes else ""))
    if distributed.is_main():
        if args.overwrite:
            folder.clear()
        folder.write_config(args=vars(args), evolve=config.to_dict(), model=model.config())
        if args.data:
            folder.write_classes(args.target, task, data.classes)
    say(f"start: {model}")

    def checkpoint(evolve: FreeEvolve, record: RoundRecord) -> None:
        say(round_line(record))
        if distributed.is_main():
            extra = {"round": record.round, "image_shape": list(data.image_shape or []), "evolve": evolve.state_dict()}
            folder.write_round(evolve.history, model, extra)
        distributed.barrier()

    callbacks = [checkpoint, *callbacks]
    if args.tensorboard and distributed.is_main():
        from ncg.tensorboard import TensorBoardCallback
        from viz import draw_topology

        callbacks.append(TensorBoardCallback(args.tensorboard, figure=draw_topology))
    evolve = FreeEvolve(model, config, callbacks=callbacks, threads=args.threads)
    if resume_state is not None:
        evolve.load_state_dict(resume_state)
    history = evolve.run((x_train, y_train), (x_val, y_val))
    test = evaluate(model, x_test, y_test, task=task, threads=args.threads)
    if distributed.is_main():  # statistics of the final graph (the last round's recording predates its edits)
        final = record_coactivation(model, x_val, max_samples=args.record_samples, progress=True, threads=args.threads)
        folder.write_final(model, final)

    summary = {**summarize(history, model, test, data, args), "device": str(device), "processes": processes,
               "threads": args.threads,
               "wall_seconds": round(time.perf_counter() - start, 1)}
    if not distributed.is_main():
        return summary
    if not args.no_figures:
        from viz import explore, render_run

        say(f"rendering the figures into {folder.path} (--no-figures skips them)")
        render_run(folder.path)
        explore(folder.path, folder.path / "explorer.html", summary=summary)
        summary["wall_seconds_with_figures"] = round(time.perf_counter() - start, 1)
    folder.write_summary(summary)
    print_summary(summary, folder.path)
    return summary


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except NCGError as error:  # bad input: one line, not a traceback, and argparse's status
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as stop:  # Ctrl-C: how to resume, in one line, and the shell's status
        print(stop.args[0] if stop.args else "interrupted", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        # every file is written atomically, so nothing is lost by skipping the interpreter's
        # shutdown; it would run the finalizers of half-built objects (a progress bar that
        # Ctrl-C interrupted in its constructor prints a traceback from __del__)
        os._exit(130)
