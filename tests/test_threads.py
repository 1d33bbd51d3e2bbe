"""The loops' thread policy (ncg.threads), the measure of free cores it reads (ncg.cores) and the
one multiply-add count (ncg.cost)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from ncg import NCG, FreeNet, NCGError
from ncg.build import sparse_start
from ncg.cost import macs_per_sample
from ncg import threads as threads_module
from ncg.cores import CoreUse, available_cpus
from ncg.evolve.coactivation import record_coactivation
from ncg.threads import SMALL_STEP_MACS, AutoThreads, intra_op_threads, resolve_threads, step_threads, thread_scope
from ncg.train import evaluate, fit, train_epoch


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _small_net(seed: int = 0) -> FreeNet:
    return FreeNet(sparse_start(20, 12, 3, fan_in=6, seed=seed), in_features=20, seed=seed)


def _data(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 20, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_macs_count_every_kind_of_model():
    assert macs_per_sample(nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))) == 784 * 512 + 5120
    whole = _small_net()
    assert macs_per_sample(whole) == whole.edge_index.shape[1]  # graph inputs, identity decoder
    dense = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=4, out_features=5)
    assert macs_per_sample(dense) == 4 * 6 + 15 + 2 * 5  # encoder, edges, linear decoder
    random = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=4, encoder="random")
    assert macs_per_sample(random) == 4 * 6 + 15  # a fixed projection still costs its multiply-adds


def test_small_freenet_steps_take_one_thread_and_everything_else_torch_s_setting():
    small = _small_net()
    assert step_threads(small, 256) == 1
    large = FreeNet(sparse_start(784, 512, 10, density=1.0, seed=0), in_features=784)
    assert macs_per_sample(large) * 256 >= SMALL_STEP_MACS and step_threads(large, 256) is None
    assert step_threads(small, SMALL_STEP_MACS) is None  # a batch large enough makes any step large
    assert step_threads(nn.Linear(4, 2), 8) is None  # not a FreeNet: torch decides


@pytest.mark.parametrize("bad", ["fast", 0, -2, 1.5, True, "2"])
def test_a_bad_thread_setting_is_named(bad):
    with pytest.raises(NCGError, match="threads must be 'auto', None or a positive int"):
        resolve_threads(bad, _small_net(), 32)
    with pytest.raises(NCGError, match="threads must be"):
        train_epoch(_small_net(), torch.optim.SGD(_small_net().parameters(), lr=0.1), *_data(), threads=bad)


def test_intra_op_threads_restores_the_setting_even_when_the_block_raises(two_threads):
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="boom"), intra_op_threads(1):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    with intra_op_threads(None):
        assert torch.get_num_threads() == 2


@pytest.mark.parametrize(("threads", "inside"), [("auto", 1), (None, 2), (1, 1), (2, 2)])
def test_train_epoch_runs_its_steps_under_the_setting_and_restores_torch_s(two_threads, threads, inside):
    net = _small_net()
    seen: list[int] = []
    net.activation_hook = lambda h: seen.append(torch.get_num_threads())
    train_epoch(net, torch.optim.Adam(net.parameters(), lr=1e-2), *_data(), batch_size=32, threads=threads)
    assert seen == [inside] * 3 and torch.get_num_threads() == 2


def test_the_thread_count_does_not_change_a_small_freenet_s_training(two_threads):
    """The policy's premise: a small step gives the same numbers on one thread as on two."""
    runs = []
    for threads in (1, 2):
        net = _small_net(seed=3)
        fit(net, _data(), epochs=[(2, 1e-2)], batch_size=32, seed=0, threads=threads)
        runs.append([p.detach().clone() for p in net.parameters()])
    for one, two in zip(*runs):
        assert torch.equal(one, two)



class _Clock:
    """Wall and own CPU seconds that a test advances by hand."""

    def __init__(self) -> None:
        self.wall, self.cpu = 100.0, 5.0

    def advance(self, wall: float, cpu: float) -> None:
        self.wall += wall
        self.cpu += cpu


def _stat(path: Path, ticks: list[int]) -> None:
    """A /proc/stat whose cpuK line counts ``ticks[K]`` user ticks (and an idle column)."""
    lines = [f"cpu  {sum(ticks)} 0 0 1000 0 0 0 0 0 0"]
    lines += [f"cpu{k} {t} 0 0 500 0 0 0 0 0 0" for k, t in enumerate(ticks)]
    path.write_text("\n".join(lines + ["intr 1 2 3", "ctxt 9"]) + "\n")


@pytest.fixture
def fake_cores(tmp_path, monkeypatch):
    """A CoreUse over two CPUs reading a /proc/stat the test writes, with hand-driven clocks."""
    monkeypatch.setattr("ncg.cores.available_cpus", lambda: [0, 1])
    clock, stat = _Clock(), tmp_path / "stat"
    _stat(stat, [0, 0])
    use = CoreUse(stat, clock=lambda: clock.wall, own=lambda: clock.cpu)
    use.tick_seconds = 0.01
    return use, clock, stat


def test_core_use_is_the_busy_time_of_the_cpus_less_this_process_s_own(fake_cores):
    use, clock, stat = fake_cores
    assert use.num_cpus == 2 and use.sample() is None  # the first sample starts the window
    clock.advance(wall=1.0, cpu=0.8)  # this process used 0.8 s; the CPUs 1.8 s: others 1.0 core
    _stat(stat, [100, 80])
    assert use.sample() == pytest.approx(1.0)
    clock.advance(wall=2.0, cpu=2.0)  # only this process ran
    _stat(stat, [200, 180])
    assert use.sample() == pytest.approx(0.0)
    clock.advance(wall=1.0, cpu=0.0)  # more ticks than the CPUs can hold: clamped
    _stat(stat, [900, 900])
    assert use.sample() == 2.0
    assert use.sample() is None  # no time passed


def test_core_use_without_counters_says_nothing(tmp_path, fake_cores, monkeypatch):
    use = CoreUse(tmp_path / "missing")
    assert use.sample() is None and use.sample() is None and use.age() is None
    monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: pytest.fail("waited for a window"))
    assert AutoThreads(use).choose(ceiling=2) == 2  # torch's setting, at once
    (tmp_path / "partial").write_text("cpu0 1 0 0 5 0 0 0 0\n")  # cpu1 has no line
    assert CoreUse(tmp_path / "partial").sample() is None


@pytest.mark.parametrize(("others", "ceiling", "count"), [(1.0, 2, 1), (0.2, 2, 2), (0.6, 2, 1), (0.0, 1, 1), (2.0, 2, 1)])
def test_auto_threads_give_the_cores_others_leave_free(fake_cores, monkeypatch, others, ceiling, count):
    use, clock, stat = fake_cores
    auto = AutoThreads(use)
    use.sample()
    clock.advance(wall=1.0, cpu=0.0)
    _stat(stat, [round(others * 100), 0])
    assert auto.choose(ceiling) == count


def test_auto_threads_keep_the_last_count_over_a_window_too_short_to_measure(fake_cores, monkeypatch):
    use, clock, stat = fake_cores
    auto = AutoThreads(use)
    use.sample()
    clock.advance(wall=1.0, cpu=0.0)
    _stat(stat, [100, 0])  # a neighbour on one core
    assert auto.choose(2) == 1
    clock.advance(wall=0.001, cpu=0.0)
    _stat(stat, [100, 0])  # 1 ms: no tick could have been counted
    assert auto.choose(2) == 1 and auto.counts == [1]
    monkeypatch.setattr(threads_module.time, "sleep", lambda seconds: clock.advance(seconds, 0.0))
    fresh = AutoThreads(CoreUse(stat, clock=lambda: clock.wall, own=lambda: clock.cpu))
    assert fresh.choose(2) == 2  # the first measurement waits for its window (no tick in it: idle)


def test_thread_scope_gives_a_large_step_the_free_cores_and_restores_torch_s_setting(two_threads, fake_cores,
                                                                                      monkeypatch):
    use, clock, stat = fake_cores
    auto = AutoThreads(use)
    monkeypatch.setattr(threads_module, "auto_threads", lambda: auto)
    large = FreeNet(sparse_start(784, 512, 10, density=1.0, seed=0), in_features=784)
    use.sample()
    clock.advance(wall=1.0, cpu=0.5)
    _stat(stat, [150, 0])  # another process on one core
    with thread_scope("auto", large, 256) as tick:
        assert torch.get_num_threads() == 1
        clock.advance(wall=0.1, cpu=0.1)
        _stat(stat, [160, 0])
        tick()  # too soon to measure again
        assert torch.get_num_threads() == 1
        clock.advance(wall=1.0, cpu=2.0)
        _stat(stat, [260, 100])  # the neighbour left: the CPUs did this process's work alone
        tick()
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 2 and auto.counts == [1, 2]
    with pytest.raises(RuntimeError, match="boom"), thread_scope("auto", large, 256):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


@contextlib.contextmanager
def _busy_process():
    """One other process spinning on the first CPU this process may use."""
    cpu = available_cpus()[0]
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
    spinner = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)  # let it start spinning
        yield
    finally:
        spinner.kill()
        spinner.wait()


needs_two_cpus = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(available_cpus()) < 2
                                    or not Path("/proc/stat").exists(),
                                    reason="needs Linux affinity, /proc/stat and two CPUs")


@needs_two_cpus
def test_a_busy_neighbour_is_measured_and_steps_keep_making_progress(two_threads):
    """Beside a process spinning on a core, the free cores drop by about one and training with the
    default threads still steps at a pace the benchmark's figure (1.0-1.5x one thread) is far
    inside: the bound is loose enough for a loaded CI machine."""
    large = FreeNet(sparse_start(784, 128, 10, density=1.0, seed=0), in_features=784, seed=0)
    x, y = torch.randn(512, 784, generator=torch.Generator().manual_seed(0)), torch.randint(0, 10, (512,))
    assert step_threads(large, 256) is None  # a step large enough to be given the free cores
    with _busy_process():
        use = CoreUse()
        use.sample()
        time.sleep(0.3)
        assert use.sample() >= 0.5
        auto = AutoThreads(CoreUse())
        assert auto.choose(ceiling=len(available_cpus())) <= len(available_cpus()) - 1
        for model in (_small_net(), large):
            data = _data(512) if model is not large else (x, y)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            start = time.perf_counter()
            stats = train_epoch(model, optimizer, *data, batch_size=256 if model is large else 64)
            assert time.perf_counter() - start < 30 and stats["loss"] > 0


def test_evaluate_and_recording_take_the_setting(two_threads):
    net = _small_net()
    seen: list[int] = []
    net.activation_hook = lambda h: seen.append(torch.get_num_threads())
    evaluate(net, *_data(), batch_size=32, threads=2)
    activations = net.neuron_activations
    net.neuron_activations = lambda x: seen.append(torch.get_num_threads()) or activations(x)
    record_coactivation(net, _data()[0], batch_size=48, threads=1)
    evaluate(net, *_data(), batch_size=32)  # auto: a small FreeNet
    assert seen == [2, 2, 2, 1, 1, 1, 1, 1] and torch.get_num_threads() == 2
    with pytest.raises(NCGError, match="threads must be"):
        evaluate(net, *_data(), threads="many")
