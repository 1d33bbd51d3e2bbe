"""Data-parallel Free-Evolve under torchrun (2 CPU processes, gloo on loopback) against one
process with the same global batch, and the pure helpers of ncg.distributed."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st

from ncg import distributed
from ncg.distributed import local_samples_before, local_slice, shard_from_env

WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
RUNS = ("hebbian", "gradient", "linf")

needs_gloo = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is not available")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(*args: str, processes: int = 1) -> subprocess.CompletedProcess:
    """``python ARGS`` with one thread, under ``torchrun --nproc_per_node processes`` on loopback
    when ``processes > 1``; fails the test unless it exits with 0 within 150 s."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    launcher = ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(processes),
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())] if processes > 1 else []
    result = subprocess.run([sys.executable, *launcher, *args], env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[dict, dict, dict]:
    """(one process, rank 0, rank 1) of the same training with a global batch of 64."""
    one, two = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    _run(str(WORKER), str(one))
    _run(str(WORKER), str(two), processes=2)
    paths = (one / "rank0.pt", two / "rank0.pt", two / "rank1.pt")
    return tuple(torch.load(path, weights_only=False) for path in paths)


@pytest.mark.slow
@needs_gloo
def test_both_ranks_end_with_the_identical_graph_and_weights(runs):
    _, rank0, rank1 = runs
    assert (rank0["rank"], rank0["size"], rank1["rank"]) == (0, 2, 1)
    for name in RUNS:
        for key, value in rank0[name]["state"].items():
            assert torch.equal(value, rank1[name]["state"][key]), (name, key)
    for name in ("hebbian", "gradient"):
        assert rank0[name]["edits"] == rank1[name]["edits"] and sum(rank0[name]["edits"]) > 0, name


@pytest.mark.slow
@needs_gloo
def test_the_weights_equal_a_one_process_run_with_the_same_global_batch(runs):
    one, rank0, _ = runs
    for name in RUNS:
        for key, value in one[name]["state"].items():
            other = rank0[name]["state"][key]
            if value.is_floating_point():
                assert torch.allclose(value, other, rtol=1e-4, atol=1e-5), (name, key, (value - other).abs().max())
            else:
                assert torch.equal(value, other), (name, key)  # the same graph
        assert one[name]["metrics"] == pytest.approx(rank0[name]["metrics"], rel=1e-5), name
    assert one["hebbian"]["edits"] == rank0["hebbian"]["edits"] and one["gradient"]["edits"] == rank0["gradient"]["edits"]


@pytest.mark.slow
@needs_gloo
def test_a_rank_that_differs_is_an_error_on_every_rank(runs):
    one, rank0, rank1 = runs
    for name in ("hebbian", "gradient"):
        assert one[name]["mismatch"] is None
        for rank in (rank0, rank1):
            assert "after a deliberate change on rank 1: ranks [1] hold a different model" in rank[name]["mismatch"]


@pytest.mark.slow
@needs_gloo
def test_bytes_per_step_and_per_round(runs):
    """What docs/scaling.md reports: 4 (P + 3) bytes of gradients per step (P parameters and one
    flag per parameter tensor) and 8 (N + N^2 + 1) bytes of coactivation counts per round."""
    _, rank0, _ = runs
    first_round = rank0["hebbian"]["traffic"][0]  # 2 epochs of 8 steps on the start graph
    neurons = 34
    parameters = neurons * (neurons - 1) // 2 + neurons + neurons * 64
    assert first_round["gradients"] == {"calls": 16, "bytes": 16 * 4 * (parameters + 3)}
    assert first_round["statistics"] == {"calls": 1, "bytes": 8 * (neurons + neurons ** 2 + 1)}
    assert first_round["digests"] == {"calls": 2, "bytes": 2 * 32}  # at the start and after the round
    assert first_round["metrics"]["bytes"] == 3 * 2 * 8  # 2 epochs and one evaluation, 2 sums each
    gradient_rules = rank0["gradient"]["traffic"][0]
    assert gradient_rules["statistics"]["calls"] == 3  # coactivation counts, saliency, grow gradients


@given(st.integers(0, 500), st.integers(1, 9))
def test_local_slices_split_a_batch_into_contiguous_balanced_parts(n, size):
    slices = [local_slice(n, rank, size) for rank in range(size)]
    assert slices[0][0] == 0 and slices[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
    lengths = [stop - start for start, stop in slices]
    assert max(lengths) - min(lengths) <= 1


@given(st.integers(0, 300), st.integers(1, 70), st.integers(0, 320), st.integers(1, 5))
def test_local_samples_before_counts_a_ranks_samples_in_epoch_order(n, batch, end, size):
    for rank in range(size):
        positions = [start + i for start in range(0, n, batch)
                     for i in range(*local_slice(min(batch, n - start), rank, size))]
        assert local_samples_before(n, batch, end, rank, size) == sum(p < end for p in positions)


def test_shards_come_from_torchrun_or_a_slurm_array():
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "3", "SLURM_ARRAY_TASK_ID": "0"}) == (2, 3)
    slurm = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_STEP": "2",
             "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shard_from_env(slurm) == (3, 4)
    assert shard_from_env({"WORLD_SIZE": "1"}) == (0, 1)


def test_one_process_is_the_identity():
    layer = torch.nn.Linear(3, 2)
    layer(torch.ones(4, 3)).sum().backward()
    grad = layer.weight.grad.clone()
    distributed.reset_traffic()
    distributed.all_reduce_gradients(layer.parameters())
    distributed.check_consistent(layer, "here")
    distributed.barrier()
    assert torch.equal(layer.weight.grad, grad) and distributed.traffic() == {}
    assert distributed.init_from_env("cpu") == (0, 1) and not dist.is_initialized()


@pytest.mark.slow
@needs_gloo
def test_a_sweep_spreads_its_cells_over_torchrun_ranks_and_rank_0_reports(tmp_path):
    out = tmp_path / "sweep"
    result = _run("-m", "ncg.experiments", "run", "--datasets", "digits", "--methods", "mlp-neurons", "--seeds", "0",
                  "1", "--neurons", "8", "--epochs", "1", "--rounds", "1", "--finetune-epochs", "0",
                  "--train-samples", "200", "--out", str(out), processes=2)
    rows = json.loads((out / "runs.json").read_text())
    assert [(r["seed"], r["threads"]) for r in rows] == [(0, 1), (1, 1)]
    assert result.stdout.count("2 runs in") == 1 and (out / "table.md").is_file()  # rank 0 reports, once
