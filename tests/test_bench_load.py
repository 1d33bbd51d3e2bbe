"""benchmarks/bench_load.py: its ratios and table from given timings, and (slow) its tiny mode."""
from __future__ import annotations

import json

import pytest

from benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def bench_load():
    yield from benchmark_module("bench_load")


def test_ratios_are_each_setting_over_one_thread_and_the_table_names_the_target(bench_load, monkeypatch):
    monkeypatch.setattr(bench_load, "settings", lambda: {"auto": "auto", "1": "1", "2 (pinned)": "2"})
    times = {"idle": {"auto": [10.0, 12.0, 11.0], "1": [20.0, 22.0, 21.0], "2 (pinned)": [9.0, 9.0, 9.0]},
             "load": {"auto": [30.0, 24.0, 25.0], "1": [20.0, 20.0, 21.0], "2 (pinned)": [80.0, 70.0, 90.0]}}
    result = bench_load.summarise(times)
    assert result["idle_auto_vs_1t"] == pytest.approx(11 / 21) and result["load_auto_vs_1t"] == pytest.approx(1.25)
    assert result["load_2_vs_1t"] == pytest.approx(4.0) and result["load_1_seconds"] == 20.0
    info = {"cpu": "CPU", "isa": "AVX2", "cores": 2, "torch": "2.x", "load": 0.1}
    text = bench_load.render([], info, times, [0.97, 0.98], result)
    assert "**1.25** (met)" in text and "| load | 25.0 | 20.0 | 80.0 | 1.25 | 4.00 |" in text
    assert "0.9700-0.9800" in text


@pytest.mark.slow
def test_tiny_run_times_every_setting_idle_and_under_load(bench_load, tmp_path, capsys):
    page = tmp_path / "benchmarks.md"
    result = bench_load.main(["--tiny", "--doc", str(page)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    for condition in ("idle", "load"):
        assert result[f"{condition}_auto_seconds"] > 0 and result[f"{condition}_1_vs_1t"] == 1.0
    assert "beside a busy neighbour" in page.read_text()
