"""Smoke test of benchmarks/bench_export_c.py: its tiny mode compiles the export, checks it against
the FreeNet, times every row and names them in the JSON line."""
from __future__ import annotations

import json

import pytest
import torch

from ncg import save_freenet

from benchmark_modules import benchmark_module


@pytest.fixture(scope="module")
def bench_export_c():
    yield from benchmark_module("bench_export_c")


def test_tiny_run_of_a_run_folder_times_every_row(bench_export_c, tmp_path, capsys):
    if bench_export_c.compiler() is None:
        pytest.skip("no C compiler (cc or gcc) on PATH")
    net, _ = bench_export_c.learned_net(None, tiny=True)
    save_freenet(net, tmp_path / "model.pt")
    threads = torch.get_num_threads()
    result = bench_export_c.main(["--tiny", "--run", str(tmp_path)])
    out = capsys.readouterr().out.strip().splitlines()
    assert json.loads(out[-1]) == result and torch.get_num_threads() == threads
    assert result["edges"] == net.edge_index.shape[1] and result["cpu"] in out[0]
    for row in ("mlp512", "freenet", *bench_export_c.FLAG_SETS):
        for batch in bench_export_c.BATCHES:
            assert result[f"{row}_b{batch}_ms"] > 0 and result[f"{row}_b{batch}_vs_mlp512"] > 0, (row, batch)
    assert isinstance(result["target_met"], bool) and result["c_o3_compile_seconds"] > 0
    table = "\n".join(out)
    assert "C export, `-O3 -march=native`" in table and "MLP 784-512-10 in PyTorch" in table
    assert f"Net: `{tmp_path}/model.pt`" in table and "Target: the C export at batch 1 <= 0.5x" in table
