"""The run folder of a Free-Evolve run: its files, the one writer and the one reader.

``examples/evolve_mnist.py`` writes a run folder and ``viz.render_run`` draws from it; both go
through :class:`RunFolder`, which alone knows the file names (:data:`FILES`) and formats. Every
file is written atomically (:mod:`ncg.atomic`): a reader, or a run killed at any point, finds each
file either old or complete. ``config.json`` names its ``format`` (:data:`FORMAT`) and ``version``
(:data:`VERSION`); one without them is read as version 1 (the folders written before the fields
existed hold the same layout). A folder holds one run: :meth:`RunFolder.check_new_run` and
:meth:`RunFolder.check_resume` say when a new run or a resumed one may write into it.

Examples
--------
>>> import tempfile
>>> folder = RunFolder(tempfile.mkdtemp())
>>> folder.write_config(args={"seed": 0}, evolve={"rounds": 2}, model={"activation": "relu"})
>>> config = folder.read_config()
>>> config["format"], config["version"], config["args"]
('ncg.run', 2, {'seed': 0})
>>> folder.holds_run(), folder.load_history() is None
(False, True)
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable

from ncg.atomic import atomic_write, atomic_write_csv, atomic_write_json
from ncg.checkpoint import load_freenet, save_freenet
from ncg.errors import NCGError
from ncg.evolve.coactivation import Coactivation
from ncg.evolve.history import History, RoundRecord
from ncg.evolve.loop import config_changes
from ncg.io import read_graphml, write_graphml
from ncg.model import FreeNet

__all__ = ["FORMAT", "VERSION", "READABLE_VERSIONS", "FILES", "FAILED", "RunFolder", "metrics_rows"]

FORMAT = "ncg.run"
VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Version 1: a ``config.json`` without ``format`` and ``version``; the layout is the same."""

FILES = {
    "config.json": "format, version, the flags (args), the EvolveConfig (evolve), the model's config (model)",
    "metrics.csv": "one row per round: size, edits, timing, metrics",
    "metrics.json": "the rows of metrics.csv as a JSON list",
    "history.json": "every edit of every round, replayable (ncg.evolve.History)",
    "model.pt": "the checkpoint, rewritten after every round with the optimiser and RNG state (resumable)",
    "graph.graphml": "the final graph with its weights and firing rates (ncg.io.write_graphml)",
    "graph.weights.npz": "the exact float weights beside graph.graphml",
    "coactivation.npz": "coactivation statistics of the final graph (ncg.evolve.Coactivation)",
    "summary.json": "the run's result: test metrics, final size, edit totals, timing",
    "classes.json": "a --data table's target, task and classes: output k predicts the target value classes[k]",
}
"""The files of a run folder besides the figures (``viz.FIGURES``); ``--overwrite`` deletes them."""

FAILED = "FAILED"
"""The file that says why a run stopped before saving its first round, in a folder it did not
create (:meth:`RunFolder.abandon`); the next run in the folder deletes it."""


def metrics_rows(records: Iterable[RoundRecord]) -> list[dict[str, Any]]:
    """The rows of ``metrics.csv`` / ``metrics.json``: one per round record.

    Examples
    --------
    >>> from ncg.evolve import RoundRecord
    >>> record = RoundRecord(round=0, num_neurons=3, num_edges=2, depth=3, num_generations=3,
    ...                      edges=[[0, 1], [1, 2]], outputs=[2], order=[0, 1, 2],
    ...                      metrics={"val_accuracy": 0.5}, seconds=1.23456)
    >>> row = metrics_rows([record])[0]
    >>> row["edges"], row["pruned"], row["seconds"], row["val_accuracy"]
    (2, 0, 1.235, 0.5)
    """
    return [
        {"round": r.round, "edges": r.num_edges, "neurons": r.num_neurons, "depth": r.depth,
         "generations": r.num_generations, "pruned": r.count("prune_edge"), "added": r.count("add_edge"),
         "seconds": round(r.seconds, 3), **{k: round(v, 6) for k, v in r.timing.items()}, **r.metrics}
        for r in records
    ]


def _check_format(path: Path, config: dict) -> dict:
    """``config`` with ``format`` and ``version`` filled in (version 1 when absent); raises
    :class:`NCGError` for another format or a version this code cannot read."""
    found, version = config.get("format", FORMAT), config.get("version", 1)
    if found != FORMAT:
        raise NCGError(f"{path} has format {found!r}, expected {FORMAT!r}: it is no ncg run folder's config")
    if version not in READABLE_VERSIONS:
        raise NCGError(f"{path} has version {version!r}; this ncg reads versions {list(READABLE_VERSIONS)} "
                       "(a newer ncg wrote it?)")
    return {**config, "format": found, "version": version}


def _read_json(path: Path, kind: type) -> Any:
    """The JSON value of ``path``, which must be a ``kind`` (dict or list); FileNotFoundError
    if there is no such file, NCGError naming the file for anything else."""
    try:
        value = json.loads(path.read_bytes())
    except ValueError as error:
        raise NCGError(f"{path} is not valid JSON ({error})") from None
    except OSError as error:
        if not path.exists():
            raise
        raise NCGError(f"{path} cannot be read ({error})") from None
    if not isinstance(value, kind):
        raise NCGError(f"{path} holds a JSON {type(value).__name__}, expected {'an object' if kind is dict else 'a list'}")
    return value


class RunFolder:
    """A run folder: where each file of a run lives, how it is written and read back.

    Parameters
    ----------
    path : str or PathLike
        The folder; it need not exist (the first write creates it).

    Examples
    --------
    >>> RunFolder("runs/mnist-seed0")
    RunFolder('runs/mnist-seed0')
    >>> RunFolder("runs/mnist-seed0").file("summary.json").as_posix()
    'runs/mnist-seed0/summary.json'
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path.as_posix()!r})"

    def file(self, name: str) -> Path:
        """The path of the run file ``name`` (a key of :data:`FILES`)."""
        if name not in FILES:
            raise NCGError(f"{name!r} is no run folder file; expected one of {list(FILES)}")
        return self.path / name

    # ------------------------------------------------------------------ checks before writing
    def holds_run(self) -> bool:
        """Whether the folder holds a run's checkpoint (``model.pt``)."""
        return self.file("model.pt").is_file()

    def stored_args(self) -> dict[str, Any]:
        """The flags stored in ``config.json``; empty when there is none.

        Raises
        ------
        NCGError
            If ``config.json`` cannot be read, is no JSON object, has no ``args`` object, another
            format or an unknown version: a resumed run would otherwise skip comparing its flags.

        Examples
        --------
        >>> import tempfile
        >>> folder = RunFolder(tempfile.mkdtemp())
        >>> folder.stored_args()
        {}
        >>> _ = folder.file("config.json").write_text("{")
        >>> folder.stored_args()
        Traceback (most recent call last):
        ...
        ncg.errors.NCGError: .../config.json is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))
        """
        if not self.file("config.json").exists():
            return {}
        config = self.read_config()
        if not isinstance(config.get("args"), dict):
            raise NCGError(f"{self.file('config.json')} has no 'args' object (found {config.get('args')!r})")
        return dict(config["args"])

    def check_new_run(self, resume: bool = False, overwrite: bool = False) -> None:
        """Refuse a new run in a folder that holds another run's checkpoint, unless ``resume``
        or ``overwrite`` (the flags ``--resume`` and ``--overwrite`` of the example).

        Raises
        ------
        NCGError
            If the folder holds a run and neither flag is given; the message says which kind
            of run (``--quick`` or full) and the three ways out. If ``resume`` is given for a
            folder that does not exist.

        Examples
        --------
        >>> import tempfile
        >>> RunFolder(tempfile.mkdtemp()).check_new_run()  # an empty folder takes a new run
        """
        if resume and not self.path.is_dir():
            raise NCGError(f"--resume: the run folder {self.path} does not exist, so there is no run to continue; "
                           "check --out, or drop --resume to start a new run there")
        if resume or overwrite or not self.holds_run():
            return
        kind = {True: " of a --quick run", False: " of a full run"}.get(self.stored_args().get("quick"), "")
        raise NCGError(f"--out {self.path} already holds a run: {self.file('model.pt')} is the checkpoint{kind}; "
                       "pass --resume to continue it, --overwrite to start over (deleting its files), or another --out")

    def resume_changes(self, args: dict[str, Any], evolve: dict, saved: dict | None,
                       ignore: Iterable[str] = ()) -> list[str]:
        """How the flags ``args`` differ from the stored ones, as ``--flag: stored (stored) vs
        given (given)``; when they agree (or none are stored), how the EvolveConfig dict
        ``evolve`` differs from the checkpoint's ``saved``. Flags in ``ignore`` (where or how a
        run is computed, not what) may differ.

        Examples
        --------
        >>> import tempfile
        >>> folder = RunFolder(tempfile.mkdtemp())
        >>> folder.write_config(args={"seed": 0, "out": "a"}, evolve={}, model={})
        >>> folder.resume_changes({"seed": 1, "out": "b"}, {}, None, ignore=["out"])
        ['--seed: 0 (stored) vs 1 (given)']
        """
        stored = self.stored_args()
        given = json.loads(json.dumps(args))  # tuples as the stored lists
        ignored = set(ignore)
        shown = [f"--{name.replace('_', '-')}: {stored[name]!r} (stored) vs {given[name]!r} (given)"
                 for name in given if name in stored and name not in ignored and stored[name] != given[name]]
        if not shown and saved is not None:
            shown = [f"EvolveConfig.{name}: {old!r} (stored) vs {new!r} (given)"
                     for name, (old, new) in config_changes(saved, evolve).items()]
        return shown

    def check_resume(self, args: dict[str, Any], evolve: dict, saved: dict | None, ignore: Iterable[str] = (),
                     allow_changes: bool = False) -> list[str]:
        """The :meth:`resume_changes` of a resumed run, refused unless ``allow_changes`` (the
        example's ``--allow-config-change``).

        Raises
        ------
        NCGError
            If there are changes and ``allow_changes`` is False; the message lists them.
        """
        changes = self.resume_changes(args, evolve, saved, ignore)
        if changes and not allow_changes:
            raise NCGError(f"--resume: {self.path} holds a run with other flags ({'; '.join(changes)}); resume it "
                           "with its stored flags, pass --allow-config-change to continue it under the new ones, or "
                           "--overwrite to start over")
        return changes

    def clear(self) -> None:
        """Delete the run's files (:data:`FILES`), leaving figures and anything else."""
        for name in FILES:
            self.file(name).unlink(missing_ok=True)

    def abandon(self, reason: str, created: bool) -> str:
        """Tidy up after a run that stopped (an error, Ctrl-C) and say what is left, in a line.

        A run that saved a round (``model.pt``) is left as it is: ``--resume`` continues it.
        One that saved none leaves no half-written folder: the folder is removed if this run
        ``created`` it, otherwise its run files are deleted (:meth:`clear`) and ``FAILED``
        holds ``reason``. A folder without ``config.json`` (the run stopped before writing) is
        left untouched.

        Examples
        --------
        >>> import tempfile
        >>> folder = RunFolder(Path(tempfile.mkdtemp()) / "run")
        >>> folder.write_config(args={}, evolve={}, model={})
        >>> folder.abandon("stopped", created=True).endswith("was removed"), folder.path.exists()
        (True, False)
        """
        if self.holds_run():
            return f"{self.path} holds the run up to its last saved round"
        if not self.file("config.json").is_file():  # the run stopped before it wrote anything
            return f"nothing was written to {self.path}"
        if created:
            shutil.rmtree(self.path, ignore_errors=True)
            return f"no round was saved; the run folder {self.path} was removed"
        self.clear()
        if self.path.is_dir():
            atomic_write(self.path / FAILED, lambda handle: handle.write(reason.encode() + b"\n"))
        return f"no round was saved; {self.path / FAILED} says why"

    # ------------------------------------------------------------------ writer
    def write_config(self, args: dict[str, Any], evolve: dict, model: dict) -> None:
        """Write ``config.json``: the format and version, the flags, the EvolveConfig dict and
        the model's config (creating the folder; a ``FAILED`` of an earlier attempt is removed)."""
        (self.path / FAILED).unlink(missing_ok=True)
        atomic_write_json(self.file("config.json"),
                          {"format": FORMAT, "version": VERSION, "args": args, "evolve": evolve, "model": model})

    def write_round(self, history: History, model: FreeNet, extra: dict) -> None:
        """Write what a finished round changes: ``history.json``, ``metrics.*`` and the
        checkpoint ``model.pt`` (``extra`` as in :func:`ncg.checkpoint.save_freenet`)."""
        history.save(self.file("history.json"))
        rows = metrics_rows(history.rounds)
        atomic_write_json(self.file("metrics.json"), rows)
        atomic_write_csv(self.file("metrics.csv"), rows, list(dict.fromkeys(k for row in rows for k in row)))
        save_freenet(model, self.file("model.pt"), extra=extra)

    def write_final(self, model: FreeNet, coactivation: Coactivation) -> None:
        """Write the final graph (``graph.graphml`` + ``graph.weights.npz``, with the firing
        rates) and its coactivation statistics (``coactivation.npz``)."""
        atomic_write(self.file("coactivation.npz"), coactivation.save)
        write_graphml(model, self.file("graph.graphml"), firing_rate=coactivation.firing_rate)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        atomic_write_json(self.file("summary.json"), summary)

    def write_classes(self, target: str | None, task: str, classes: Iterable[Any]) -> None:
        """Write ``classes.json`` for a run on a table: output ``k`` predicts ``classes[k]``."""
        atomic_write_json(self.file("classes.json"), {"target": target, "task": task, "classes": list(classes)})

    # ------------------------------------------------------------------ reader
    def read_config(self) -> dict[str, Any]:
        """``config.json``, with ``format`` and ``version`` (1 when the file has none).

        Raises
        ------
        FileNotFoundError
            If there is no ``config.json``.
        NCGError
            If it is no JSON object, has another format or an unknown version.
        """
        path = self.file("config.json")
        return _check_format(path, _read_json(path, dict))

    def read_classes(self) -> list[Any] | None:
        """The target value each output predicts (``classes.json``): empty for regression, None
        for a run on an image data set, which writes no such file."""
        path = self.file("classes.json")
        return json.loads(path.read_text())["classes"] if path.is_file() else None

    def read_summary(self) -> dict[str, Any]:
        """``summary.json`` (raises FileNotFoundError before the run has finished, NCGError
        when it is no JSON object)."""
        return _read_json(self.file("summary.json"), dict)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.json`` (see :func:`metrics_rows`; NCGError when it is no
        JSON list of objects)."""
        path = self.file("metrics.json")
        rows = _read_json(path, list)
        if not all(isinstance(row, dict) for row in rows):
            raise NCGError(f"{path} holds a list whose rows are not all JSON objects")
        return rows

    def load_checkpoint(self, map_location: Any = "cpu") -> tuple[FreeNet, dict]:
        """The model and the ``extra`` dict of ``model.pt`` (:func:`ncg.checkpoint.load_freenet`)."""
        return load_freenet(self.file("model.pt"), map_location=map_location)

    def load_model(self) -> tuple[FreeNet | None, dict, str]:
        """The run's model, its checkpoint's ``extra`` and the file it came from: ``model.pt``,
        else ``graph.graphml`` (no ``extra``), else ``(None, {}, "")``."""
        if self.holds_run():
            model, extra = self.load_checkpoint()
            return model, extra, "model.pt"
        if self.file("graph.graphml").is_file():
            return read_graphml(self.file("graph.graphml")), {}, "graph.graphml"
        return None, {}, ""

    def load_history(self) -> History | None:
        """``history.json``, or None when there is none."""
        path = self.file("history.json")
        return History.load(path) if path.is_file() else None

    def load_coactivation(self) -> Coactivation | None:
        """``coactivation.npz``, or None when there is none."""
        path = self.file("coactivation.npz")
        return Coactivation.load(path) if path.is_file() else None

