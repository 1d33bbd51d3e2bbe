"""The training loop's thread policy (ncg.threads) and the one multiply-add count (ncg.cost)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ncg import NCG, FreeNet, NCGError
from ncg.build import sparse_start
from ncg.cost import macs_per_sample
from ncg.threads import SMALL_STEP_MACS, intra_op_threads, resolve_threads, step_threads
from ncg.train import fit, train_epoch


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

