"""Smoke tests of benchmarks/bench_onnx.py: it loads a run folder's net (or runs a --quick main
job), checks both FreeNet files against the net, and names every timing and ratio in its JSON line."""
from __future__ import annotations

import json

import pytest

from ncg import FreeNet
from ncg.build import sparse_start
from ncg.checkpoint import save_freenet

from benchmark_modules import benchmark_module

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def bench_onnx():
    yield from benchmark_module("bench_onnx")


def check_result(bench_onnx, result: dict, output: str) -> None:
    assert json.loads(output.strip().splitlines()[-1]) == result
    for batch in bench_onnx.BATCHES:
        for name in ("freenet", "slab", "mlp", "mlp_torch"):
            assert result[f"{name}_b{batch}_ms"] > 0
        assert result[f"freenet_vs_mlp_onnx_b{batch}"] > 0 and result[f"slab_vs_mlp_onnx_b{batch}"] > 0
    assert result["cpu"] in output and "| 10,000 |" in output


def test_a_run_folder_is_timed(bench_onnx, tmp_path, capsys):
    net = FreeNet(sparse_start(784, 24, 10, fan_in=30, seed=0), in_features=784, seed=0)
    save_freenet(net, tmp_path / "model.pt")
    result = bench_onnx.main(["--run", str(tmp_path), "--repeats", "1", "--warmup", "0"])
    check_result(bench_onnx, result, capsys.readouterr().out)
    assert result["edges"] == net.edge_index.shape[1]


@pytest.mark.slow
def test_tiny_run_trains_the_quick_main_job(bench_onnx, capsys):
    check_result(bench_onnx, bench_onnx.main(["--tiny"]), capsys.readouterr().out)
