"""Smoke test of benchmarks/bench_paths.py: its quick mode (a --quick main job) times every row
and names them in its JSON line."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_quick_run_names_its_rows(capsys):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        bench_paths = importlib.import_module("bench_paths")
        result = bench_paths.main(["--quick"])
    finally:
        sys.path.remove(str(BENCHMARKS))
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    for name in ("one", "blocked", "rec_one", "rec_blocked", "share0"):
        assert result[f"round2_{name}_ms"] > 0
    assert set(result) >= {"infer_b256_vs_mlp512", "infer_b10000_vs_mlp512"}
