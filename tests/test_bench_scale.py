"""Smoke test of benchmarks/bench_scale.py: its tiny mode runs, the alternatives it times compute
the FreeNet's outputs and gradients, and its page section is rewritten in place."""
from __future__ import annotations

import json

import pytest
import torch

from ncg import NCG, FreeNet

from benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def bench_scale():
    yield from benchmark_module("bench_scale")


def test_tiny_run_names_its_rows_and_keeps_the_hand_written_text(bench_scale, tmp_path, capsys):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nhand-written\n\n{bench_scale.BEGIN}\nold\n{bench_scale.END}\n\nafter\n")
    result = bench_scale.main(["--tiny", "--repeats", "1", "--doc", str(page)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == result
    for key in ("complete32_vs_mlp", "complete64_vs_mlp", "sparse1_speedup_vs_dense", "sparse10_speedup_vs_dense",
                "sparse1_vs_equal_weight_mlp", "sparse1_pyg_step_vs_ncg", "sparse10_sparse_step_vs_ncg"):
        assert result[key] > 0, key
    assert {"100k_peak_gib", "1m_peak_gib", "1m_step_seconds"} <= result.keys()
    text = page.read_text()
    assert "hand-written" in text and text.rstrip().endswith("after") and "\nold\n" not in text
    assert text.count(bench_scale.BEGIN) == 1 and "PyG MessagePassing per generation" in text


@pytest.mark.parametrize("density", [0.05, 0.4])
def test_the_alternatives_compute_the_freenet(bench_scale, density):
    torch.manual_seed(0)
    net = FreeNet(NCG.random_dag(40, density=density, num_outputs=3, seed=1), in_features=6, seed=0)
    x = torch.randn(5, 6)
    for alternative in (bench_scale.PyGGenerations(net), bench_scale.TorchSparseGenerations(net)):
        bench_scale.verify(alternative, net, x)
    pytest.importorskip("neat")
    assert bench_scale.neat_seconds(net, x, samples=3) > 0  # checks neat's outputs against the FreeNet's
