"""Smoke test of benchmarks/bench_tables.py: its tiny mode runs, checks both parsers agree, and
prints its JSON last."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench_tables():
    sys.path.insert(0, str(BENCHMARKS))
    yield importlib.import_module("bench_tables")
    sys.path.remove(str(BENCHMARKS))


def test_tiny_run_times_both_parsers(bench_tables, capsys):
    result = bench_tables.main(["--tiny"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert result["rows"] == 200 and result["python_seconds"] > 0 and result["load_table_seconds"] > 0
