"""The files of a sweep: one JSON row per finished cell, skip-if-done resume, ``runs.json`` and ``runs.csv``.

The experiment runner (:mod:`ncg.experiments.runner`) and the polynomial sweep
(:mod:`ncg.experiments.polynomial`) both run a grid of cells, write each finished cell's row to its
own JSON file atomically (so a killed sweep resumes by skipping the cells whose file exists), and
gather the rows into ``runs.json`` and ``runs.csv``. A :class:`CellStore` holds what differs
between them: where the cell files lie, the row order, and the text format of the files.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> store = CellStore(Path(tempfile.mkdtemp()), "cells/*.json", order=lambda row: row["seed"])
>>> store.done(store.out / "cells" / "s1.json")
False
>>> store.write(store.out / "cells" / "s1.json", {"seed": 1, "loss": 0.5})
>>> store.write(store.out / "cells" / "s0.json", {"seed": 0, "loss": 0.25})
>>> rows = store.rows()
>>> [row["seed"] for row in rows]
[0, 1]
>>> store.write_runs(rows, ["seed", "loss"])
>>> (store.out / "runs.csv").read_text()
'seed,loss\\n0,0.25\\n1,0.5\\n'
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ncg.atomic import atomic_write_csv, atomic_write_json

__all__ = ["CellStore"]


@dataclass(frozen=True)
class CellStore:
    """Where a sweep keeps its cell rows and tables, and in which text format.

    Attributes
    ----------
    out : Path
        The sweep's folder; ``runs.json`` and ``runs.csv`` are written into it.
    pattern : str
        Glob of the cell files under ``out`` (``"cells/*/*/seed*.json"``).
    order : callable
        Sort key of the rows in :meth:`rows`.
    end : str, default "\\n"
        Written after each JSON document (its last line's end).
    lineterminator : str, default "\\n"
        Line end of ``runs.csv``.
    """

    out: Path
    pattern: str
    order: Callable[[dict], Any]
    end: str = "\n"
    lineterminator: str = "\n"

    def done(self, path: str | os.PathLike, check: Callable[[Path, dict], None] | None = None) -> bool:
        """Whether the cell whose row lives at ``path`` is finished (its file exists); when it
        is and ``check`` is given, ``check(path, row)`` may raise to refuse the stored row."""
        path = Path(path)
        if not path.is_file():
            return False
        if check is not None:
            check(path, self.read(path))
        return True

    def write(self, path: str | os.PathLike, row: dict) -> None:
        """Write a finished cell's ``row`` to ``path`` atomically (creating its folder)."""
        atomic_write_json(path, row, end=self.end)

    def read(self, path: str | os.PathLike) -> dict:
        """The row stored at ``path``."""
        return json.loads(Path(path).read_text())

    def rows(self) -> list[dict]:
        """Every stored row under ``out``, sorted by ``order``."""
        return sorted((self.read(p) for p in sorted(self.out.glob(self.pattern))), key=self.order)

    def write_runs(self, rows: Sequence[dict], fields: Sequence[str]) -> None:
        """Write ``rows`` to ``runs.json`` and, with the columns ``fields``, to ``runs.csv``."""
        atomic_write_json(self.out / "runs.json", list(rows), end=self.end)
        atomic_write_csv(self.out / "runs.csv", rows, fields, lineterminator=self.lineterminator)
