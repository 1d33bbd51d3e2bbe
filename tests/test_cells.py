"""The sweep plumbing (ncg/experiments/cells.py) shared by the runner and the polynomial sweep."""
from __future__ import annotations

import pytest

from ncg.errors import NCGError
from ncg.experiments.cells import CellStore


def test_rows_resume_and_tables(tmp_path):
    store = CellStore(tmp_path, "cells/*/*.json", order=lambda r: (r["method"], r["seed"]))
    for method, seed in (("b", 0), ("a", 1), ("a", 0)):
        path = tmp_path / "cells" / method / f"seed{seed}.json"
        assert not store.done(path)
        store.write(path, {"method": method, "seed": seed, "loss": 0.5, "budget": {"epochs": 1}})
        assert store.done(path)
    rows = store.rows()
    assert [(r["method"], r["seed"]) for r in rows] == [("a", 0), ("a", 1), ("b", 0)]
    store.write_runs(rows, ["method", "seed", "loss"])
    assert (tmp_path / "runs.csv").read_text().splitlines() == ["method,seed,loss", "a,0,0.5", "a,1,0.5", "b,0,0.5"]
    assert store.read(tmp_path / "runs.json") == rows
    assert (tmp_path / "runs.json").read_text().endswith("]\n")


def test_a_check_may_refuse_a_finished_cell(tmp_path):
    store = CellStore(tmp_path, "*.json", order=lambda r: r["seed"])
    store.write(tmp_path / "s0.json", {"seed": 0, "budget": {"epochs": 1}})

    def same_budget(path, row):
        if row["budget"] != {"epochs": 2}:
            raise NCGError(f"{path} was run with another budget")

    with pytest.raises(NCGError, match="s0.json was run with another budget"):
        store.done(tmp_path / "s0.json", check=same_budget)
    assert not store.done(tmp_path / "s1.json", check=same_budget)  # not run yet: nothing to check


def test_the_text_format_is_the_sweeps_own(tmp_path):
    store = CellStore(tmp_path, "*.json", order=lambda r: r["seed"], end="", lineterminator="\r\n")
    store.write(tmp_path / "s0.json", {"seed": 0})
    assert (tmp_path / "s0.json").read_bytes() == b'{\n  "seed": 0\n}'
    store.write_runs(store.rows(), ["seed"])
    assert (tmp_path / "runs.csv").read_bytes() == b"seed\r\n0\r\n"
