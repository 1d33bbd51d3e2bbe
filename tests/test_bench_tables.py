"""Smoke test of benchmarks/bench_tables.py: its tiny mode runs, checks both parsers agree, and
prints its JSON last."""
from __future__ import annotations

import json

import pytest

from benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def bench_tables():
    yield from benchmark_module("bench_tables")


def test_tiny_run_times_both_parsers(bench_tables, capsys):
    result = bench_tables.main(["--tiny"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    assert result["rows"] == 200 and result["python_seconds"] > 0 and result["load_table_seconds"] > 0
