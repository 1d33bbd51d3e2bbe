"""Smoke test of benchmarks/bench_learned.py: its tiny mode (a --quick main job, every row, the
under-load rows) names its rows in the JSON line and rewrites its page section in place."""
from __future__ import annotations

import json

import pytest
import torch

from benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def bench_learned():
    yield from benchmark_module("bench_learned")


@pytest.mark.slow
def test_tiny_run_names_its_rows_and_keeps_the_hand_written_text(bench_learned, tmp_path, capsys):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nhand-written\n\n{bench_learned.BEGIN}\nold\n{bench_learned.END}\n\nafter\n")
    result = bench_learned.main(["--tiny", "--load", "--doc", str(page)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    ratios = [f"{row}_vs_mlp512_{threads}" for row in bench_learned.ROWS for threads in ("1t", "default")]
    for key in [*ratios, "load_default_vs_1t_train", "load_default_vs_1t_infer_b256", "main_job_train_vs_mlp512",
                "main_job_whole_vs_mlp512", "freenet_infer_b10000_ms_1t", "mlp512_train_b256_ms_default",
                "mlp50_train_b256_ms_1t", "main_job_train_seconds", "mlp512_main_job_schedule_seconds"]:
        assert result[key] > 0, key
    assert {"program_infer_b256_ms_1t", "onnx_infer_b256_ms_1t"} <= result.keys()  # None where not available
    text = page.read_text()
    assert "hand-written" in text and text.rstrip().endswith("after") and "\nold\n" not in text
    assert text.count(bench_learned.BEGIN) == 1 and "MLP 784-512-10" in text and "Under load" in text


def test_a_page_without_the_section_gets_it_appended(bench_learned, tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nhand-written\n")
    bench_learned.write_section(page, "first")
    bench_learned.write_section(page, "second")
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nhand-written\n\n" + bench_learned.TITLE)
    assert text.count(bench_learned.TITLE) == 1 and "second" in text and "first" not in text


def test_skipping_the_main_job_needs_a_run_folder(bench_learned):
    with pytest.raises(SystemExit):
        bench_learned.main(["--tiny", "--skip-main-job"])


def test_the_main_job_table_shows_seconds_per_step_where_the_metrics_have_it(bench_learned):
    x, y = torch.zeros(512, 784), torch.zeros(512, dtype=torch.long)
    epochs = [bench_learned.Epoch(phase, x, y, 256, torch.optim.Adam, {"lr": 1e-3}, seconds=0.5)
              for phase in ("round 1", "round 1", "fine-tune")]
    job = bench_learned.MainJob(epochs, [0.25] * 3, [1.2, 0.6], [None, 0.003], whole_seconds=3.0, summary={})
    lines = bench_learned.main_job_table(job)
    assert "s / step (metrics.json)" in lines[0] and "| 3.00 ms |" in lines[3]
    assert lines[2].startswith("| round 1 | 2 | 4 | 1.00 |") and lines[-1].endswith("| **2.00** |")
    job.seconds_per_step = [None, None]
    assert "s / step (metrics.json)" not in bench_learned.main_job_table(job)[0]
