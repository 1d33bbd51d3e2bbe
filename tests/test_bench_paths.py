"""Smoke test of benchmarks/bench_paths.py: its quick mode (a --quick main job) times every row
and names them in its JSON line."""
from __future__ import annotations

import json

import pytest

from benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def bench_paths():
    yield from benchmark_module("bench_paths")


def test_quick_run_names_its_rows(bench_paths, capsys):
    result = bench_paths.main(["--quick"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    for name in ("one", "blocked", "rec_one", "rec_blocked", "share0"):
        assert result[f"round2_{name}_ms"] > 0
    assert set(result) >= {"infer_b256_vs_mlp512", "infer_b10000_vs_mlp512"}
