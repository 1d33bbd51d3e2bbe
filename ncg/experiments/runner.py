"""Run data sets x methods x seeds, one resumable cell at a time, and collect the rows.

Each cell (data set, method, seed) trains one model under the shared :class:`Budget` and writes
``<out>/cells/<dataset>/<method>/seed<k>.json`` atomically when it is done; a cell whose file
exists is skipped, so a killed sweep resumes where it stopped (the cell that was running starts
again). ``shard=(i, n)`` runs every n-th cell from the i-th, so n processes (or machines sharing
the folder) split a sweep: the ranks of ``torchrun`` or the tasks of a SLURM array
(:func:`ncg.distributed.shard_from_env`). :func:`collect` gathers every cell file into
``runs.json`` and ``runs.csv``, one row per run; under ``torchrun`` rank 0 does it once every
rank has finished its cells.

Examples
--------
>>> import tempfile
>>> from ncg.experiments.methods import Budget
>>> budget = Budget(neurons=8, stages=((1, 1e-2),), rounds=1, train_samples=200)
>>> rows = run_sweep(["digits"], ["mlp-neurons"], [0], budget, tempfile.mkdtemp(), progress=False)
>>> rows[0]["method"], rows[0]["epochs"], 0.0 <= rows[0]["test_accuracy"] <= 1.0
('mlp-neurons', 1, True)
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, fields
from functools import partial
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ncg import distributed
from ncg.datasets import DataSplits, load_dataset
from ncg.errors import NCGError
from ncg.experiments.cells import CellStore
from ncg.experiments.methods import Budget, Method, Setting, check_methods, flops, parameters, structure
from ncg.tasks import get_task
from ncg.train import evaluate

__all__ = ["run_cell", "run_sweep", "collect", "collects", "cell_path"]

CSV_FIRST = ["dataset", "method", "seed", "metric", "test_accuracy", "test_loss", "parameters", "hidden_edges",
             "input_connections", "neurons", "depth", "train_flops", "wall_seconds", "epochs"]
SHARD_WAIT_SECONDS = 7 * 24 * 3600
"""How long a torchrun rank that finished its cells waits for the others before rank 0 collects."""


def cell_path(out: str | os.PathLike, dataset: str, method: str, seed: int) -> Path:
    """Where a cell's result lives."""
    return Path(out) / "cells" / dataset / method / f"seed{seed}.json"


def _store(out: str | os.PathLike) -> CellStore:
    """The sweep's cell files and tables; JSON without a final newline and CSV lines ending in
    ``\\r\\n``, the format of the results already in results/ (so a rerun leaves them as they are)."""
    return CellStore(Path(out), "cells/*/*/seed*.json", order=lambda r: (r["dataset"], r["method"], r["seed"]),
                     end="", lineterminator="\r\n")


def run_cell(data: DataSplits, method: Method, seed: int, budget: Budget, task: str = "classification") -> dict:
    """Train ``method`` on ``data`` with ``seed`` under ``budget``; returns the run's row."""
    start = time.perf_counter()
    train = data.train.tensors
    if budget.train_samples is not None:
        train = tuple(t[: budget.train_samples] for t in train)
    val, test = data.val.tensors, data.test.tensors
    setting = Setting(budget, data.num_features, data.num_classes, task)
    torch.manual_seed(seed)
    model = method.build(setting, seed)
    trained = method.train(model, setting, train, val, seed)
    result = {f"test_{k}": v for k, v in evaluate(model, *test, task=task).items()}
    spec = get_task(task)
    return {
        "dataset": data.name,
        "method": method.name,
        "seed": seed,
        "task": task,
        "metric": f"test_{spec.primary}",
        "higher_is_better": spec.higher_is_better,
        "candidate": method.candidate,
        **result,
        "val_accuracy": trained.metrics.get("val_accuracy"),
        "parameters": parameters(model),
        **structure(model),
        "train_flops": flops(trained, train[0].shape[0]),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "epochs": trained.epochs,
        **trained.extra,
        "train_samples": int(train[0].shape[0]),
        "test_split": data.test_split,
        "description": method.description,
        "budget": asdict(budget),
        "threads": torch.get_num_threads(),
    }


def run_sweep(
    datasets: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    budget: Budget,
    out: str | os.PathLike,
    shard: tuple[int, int] = (0, 1),
    data_root: str | None = None,
    progress: bool | None = None,
) -> list[dict]:
    """Run every missing cell of ``datasets x methods x seeds`` (this shard's), then
    :func:`collect` all cells in ``out``.

    Parameters
    ----------
    shard : (index, count)
        Run only the cells ``index, index + count, ...`` of the sweep's fixed cell order.
        When the shards are the ranks of ``torchrun`` (``shard == (RANK, WORLD_SIZE)``), the
        ranks meet in a gloo process group after their cells, and only rank 0 collects; each
        other rank returns its own cells' rows. The cells train in one process each (the group
        does not exist while they run).
    progress : bool, optional
        ``None`` (default): print one line per finished cell (its name, metric and seconds) and
        show a tqdm bar over the cells when standard error is a terminal; ``True``: the lines and
        the bar; ``False``: nothing.
    """
    budget.validate()
    chosen = check_methods(list(methods))
    index, count = shard
    if not 0 <= index < count:
        raise NCGError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    cells = [(d, m, s) for d in datasets for m in chosen for s in seeds][index::count]
    store = _store(out)
    same_budget = partial(_check_budget, budget=budget)
    todo = [c for c in cells if not store.done(cell_path(out, c[0], c[1].name, c[2]), check=same_budget)]
    if progress is not False:
        print(f"{len(todo)} of {len(cells)} cells to run into {out}", flush=True)
    loaded: dict[str, DataSplits] = {}
    bar = tqdm(todo, desc="cells", unit="cell", disable=None if progress is None else not progress)
    for dataset, method, seed in bar:
        bar.set_postfix_str(f"{dataset} {method.name} seed {seed}")
        if dataset not in loaded:
            loaded[dataset] = load_dataset(dataset, root=data_root)
        row = run_cell(loaded[dataset], method, seed, budget)
        row["dataset"] = dataset
        store.write(cell_path(out, dataset, method.name, seed), row)
        if progress is not False:
            with tqdm.external_write_mode():  # above the bar, flushed for logs
                print(f"{dataset} {method.name} seed {seed}: {row['metric']} {row[row['metric']]:.4f}, "
                      f"{row['wall_seconds']:.1f} s", flush=True)
    if _shards_are_ranks(shard):
        distributed.init_from_env("cpu", timeout=SHARD_WAIT_SECONDS)
        distributed.barrier()
    if collects(shard):
        return collect(out)
    return [store.read(cell_path(out, d, m.name, s)) for d, m, s in cells]


def _shards_are_ranks(shard: tuple[int, int]) -> bool:
    return shard[1] > 1 and distributed.env_world() == tuple(shard)


def collects(shard: tuple[int, int]) -> bool:
    """Whether the process running ``shard`` gathers the cells into ``runs.json``: every process
    that runs alone, by hand or in a SLURM array (each collects what is finished, so the last
    to finish leaves every cell in it), but only rank 0 of ``torchrun`` ranks.

    Examples
    --------
    >>> collects((0, 1)), collects((1, 4))  # not under torchrun
    (True, True)
    """
    return not _shards_are_ranks(shard) or distributed.is_main()


def _check_budget(path: Path, row: dict, budget: Budget) -> None:
    """Refuse a finished cell done under another budget (its row would be mixed into this
    sweep's tables)."""
    stored = row.get("budget", {})
    known = {f.name for f in fields(Budget)}
    if json.dumps(asdict(Budget(**{k: v for k, v in stored.items() if k in known}))) != json.dumps(asdict(budget)):
        changed = sorted(k for k in known if json.dumps(stored.get(k, getattr(Budget(), k))) != json.dumps(asdict(budget)[k]))
        raise NCGError(f"{path} was run with another budget (differs in {changed}); use another --out or delete it")


def collect(out: str | os.PathLike) -> list[dict]:
    """Gather every cell file under ``out`` into ``runs.json`` and ``runs.csv`` (sorted by data
    set, method, seed) and return the rows."""
    store = _store(out)
    rows = store.rows()
    store.write_runs(rows, CSV_FIRST + sorted({k for r in rows for k in r} - set(CSV_FIRST) - {"budget"}))
    return rows
