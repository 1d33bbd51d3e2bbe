"""The scripts of ``benchmarks/`` imported as modules, for their smoke tests."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark_module(name: str) -> Iterator[ModuleType]:
    """``benchmarks/<name>.py`` as a module, with its folder on ``sys.path`` (the scripts import
    their shared ``common``) until the generator ends: the body of a module-scoped fixture
    (``yield from benchmark_module("bench_load")``)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
