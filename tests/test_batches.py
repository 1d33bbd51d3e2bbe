"""Data of any form (ncg.batches): tensors, a Dataset and a DataLoader give the same batches and
the same runs for the same order."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, TensorDataset

import ncg.batches
from ncg import NCG, FreeNet
from ncg.batches import as_batches
from ncg.errors import NCGError
from ncg.evolve.coactivation import record_coactivation
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.evolve.rules import edge_gradients, saliency_scores
from ncg.train import evaluate, fit, train_epoch


class Pairs(Dataset):
    """A map-style Dataset that is not a TensorDataset: items are read one by one."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.reads = x, y, 0

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int):
        self.reads += 1
        return self.x[i], int(self.y[i])


class SeededPermutation(Sampler):
    """Each pass draws ``torch.randperm(n)`` from its own generator: the tensor path's order."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.generator = n, torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=self.generator).tolist())


class Stream(IterableDataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __iter__(self):
        return zip(self.x, self.y)


@pytest.fixture
def data():
    torch.manual_seed(0)
    x = torch.randn(300, 5)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y


def _net() -> FreeNet:
    return FreeNet(NCG.complete(14, num_outputs=3, seed=0), in_features=5, seed=0, block_size=4)


def _same_model(a: FreeNet, b: FreeNet) -> None:
    assert torch.equal(a.graph.edge_index, b.graph.edge_index)
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name


# ------------------------------------------------------------------ batches


def test_forms_give_the_same_batches(data):
    x, y = data
    expected = [(xb, yb) for xb, yb in as_batches(x, y).in_order(64)]
    for form in ((x, y), TensorDataset(x, y), Pairs(x, y), DataLoader(TensorDataset(x, y), batch_size=64)):
        got = list(as_batches(form).in_order(64))
        assert len(got) == len(expected) == 5
        assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(got, expected))


def test_shuffled_dataset_reads_only_its_batches_and_matches_tensors(data):
    x, y = data
    pairs = Pairs(x, y)
    tensor = list(as_batches(x, y).shuffled(64, torch.Generator().manual_seed(3)))
    streamed = list(as_batches(pairs).shuffled(64, torch.Generator().manual_seed(3)))
    assert [b.total for b in streamed] == [64, 64, 64, 64, 44]
    assert all(torch.equal(a.x, b.x) and torch.equal(a.y, b.y) for a, b in zip(tensor, streamed))
    assert pairs.reads == 300


def test_first_and_sizes(data):
    x, y = data
    loader = DataLoader(TensorDataset(x, y), batch_size=64)
    assert as_batches(loader).num_samples == 300 and as_batches(loader).num_batches(7) == 5
    assert [xb.shape[0] for xb, _ in as_batches(loader).first(100).in_order()] == [64, 36]
    assert as_batches(Pairs(x, y)).first(10).num_samples == 10
    assert as_batches(DataLoader(Stream(x, y), batch_size=8)).num_samples is None


def test_local_share_under_two_ranks(data, monkeypatch):
    x, y = data
    monkeypatch.setattr(ncg.batches, "world", lambda: (1, 2))
    share = as_batches(Pairs(x, y)).first(101).local()
    assert share.num_samples == 50
    assert torch.equal(next(share.in_order(1000))[0], x[51:101])
    with pytest.raises(NCGError, match="cannot be split over the 2 data-parallel ranks.*pass its Dataset"):
        as_batches(DataLoader(TensorDataset(x, y), batch_size=8), argument="training data").local()
    with pytest.raises(NCGError, match="training data: a DataLoader cannot be split"):
        next(as_batches(DataLoader(TensorDataset(x, y)), argument="training data").shuffled(8))


def test_errors_name_the_data(data):
    x, y = data
    with pytest.raises(NCGError, match="train: expected tensors .*got int"):
        as_batches(3, argument="train")
    with pytest.raises(NCGError, match="IterableDataset yields single samples; wrap it in a DataLoader"):
        as_batches(Stream(x, y))
    with pytest.raises(NCGError, match=r"batch 0 must be tensors \(x, y\) or x alone, got \(str, NoneType\)"):
        list(as_batches([("a",)]).in_order())


# ------------------------------------------------------------------ training


def test_train_epoch_dataset_and_loader_equal_tensors(data):
    x, y = data
    results = []
    for form in ("tensors", "dataset", "loader"):
        net = _net()
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(5)
        source = {"tensors": (x, y), "dataset": Pairs(x, y),
                  "loader": DataLoader(TensorDataset(x, y), batch_size=32, sampler=SeededPermutation(300, 5))}[form]
        stats = [train_epoch(net, opt, source, batch_size=32, generator=gen) for _ in range(2)]
        results.append((net, stats, evaluate(net, source)))
    (net0, stats0, eval0), *others = results
    for net, stats, ev in others:
        _same_model(net, net0)
        assert stats == stats0
        assert ev == pytest.approx(eval0, rel=1e-6)  # the loader evaluates in its own order


def test_fit_takes_a_dataset(data):
    x, y = data
    a, b = _net(), _net()
    ma = fit(a, (x, y), (x[:50], y[:50]), epochs=[(2, 1e-2)], batch_size=64, seed=1)
    mb = fit(b, Pairs(x, y), DataLoader(Pairs(x[:50], y[:50]), batch_size=7), epochs=[(2, 1e-2)], batch_size=64, seed=1)
    _same_model(a, b)
    assert ma == pytest.approx(mb, rel=1e-6)


def test_streamed_batches_are_checked_batch_by_batch(data):
    x, y = data
    bad = y.clone()
    bad[200] = 7
    with pytest.raises(NCGError, match="training data, batch 3: label 7 is outside"):
        train_epoch(_net(), torch.optim.SGD(_net().parameters(), lr=0.1), DataLoader(TensorDataset(x, bad), batch_size=64))


def test_a_used_up_iterator_is_an_error(data):
    x, y = data
    net = _net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    batches = iter([(x[:64], y[:64])])
    train_epoch(net, opt, batches)
    with pytest.raises(NCGError, match="yielded no batch.*one-shot iterator"):
        train_epoch(net, opt, batches)


# ------------------------------------------------------------------ Free-Evolve

CONFIGS = {
    "coactivation, recorded in training": {},
    "magnitude + gradient, recorded in a pass": {
        "prune_score": "magnitude", "grow_score": "gradient", "record_during_training": False},
    "saliency + coactive gradient": {"prune_score": "saliency", "grow_score": "coactive_gradient", "tau": 0.0},
}


def _evolve(train, val, **overrides) -> tuple[FreeNet, FreeEvolve]:
    net = _net()
    settings = {"rounds": 2, "epochs_per_round": 2, "final_epochs": 1, "record_samples": 120, "batch_size": 32,
                "tau": 0.1, "seed": 4, "budget": EditBudget(prune_fraction=0.2, add_fraction=0.1)}
    config = EvolveConfig(**{**settings, **overrides})
    evolve = FreeEvolve(net, config)
    evolve.run(train, val)
    return net, evolve


def _same_run(a: tuple[FreeNet, FreeEvolve], b: tuple[FreeNet, FreeEvolve]) -> None:
    _same_model(a[0], b[0])
    ra, rb = a[1].history.rounds, b[1].history.rounds
    assert [r.metrics for r in ra] == [r.metrics for r in rb]
    assert [r.edits for r in ra] == [r.edits for r in rb]


@pytest.mark.parametrize("overrides", CONFIGS.values(), ids=CONFIGS.keys())
def test_evolve_on_a_dataset_equals_tensors(data, overrides):
    x, y = data
    tensors = _evolve((x, y), (x[:60], y[:60]), **overrides)
    assert sum(len(r.edits) for r in tensors[1].history.rounds) > 0
    _same_run(_evolve(Pairs(x, y), Pairs(x[:60], y[:60]), **overrides), tensors)


def test_evolve_on_a_loader_equals_tensors_in_the_same_order(data):
    x, y = data
    loader = DataLoader(TensorDataset(x, y), batch_size=32, sampler=SeededPermutation(300, 4))  # seed = config.seed
    val = DataLoader(TensorDataset(x[:60], y[:60]), batch_size=60)  # evaluate() reads 60 samples in one batch too
    _same_run(_evolve(loader, val), _evolve((x, y), (x[:60], y[:60])))


def test_evolve_on_a_loader_with_gradient_rules_runs(data):
    x, y = data
    net, evolve = _evolve(DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True), None,
                          **CONFIGS["magnitude + gradient, recorded in a pass"])
    assert evolve.history.rounds[-1].phase == "finetune" and net.graph.num_edges > 0


def test_recording_in_training_needs_a_sized_loader(data):
    x, y = data
    with pytest.raises(NCGError, match="record_during_training=True .*pass record_during_training=False"):
        _evolve(DataLoader(Stream(x, y), batch_size=32), None)
    net, evolve = _evolve(DataLoader(Stream(x, y), batch_size=32), None, record_during_training=False)
    assert evolve.history.rounds[-1].timing["seconds_per_step"] == 0.0  # a stream of unknown length


# ------------------------------------------------------------------ recording and scoring


def test_recording_and_gradient_scores_from_any_form(data):
    x, y = data
    net = _net()
    tensor = record_coactivation(net, x, max_samples=150, batch_size=40)
    for form in (Pairs(x, y), DataLoader(TensorDataset(x, y), batch_size=64), (x, y)):
        co = record_coactivation(net, form, max_samples=150, batch_size=40)
        assert co.num_samples == 150
        np.testing.assert_array_equal(co.joint, tensor.joint)
        np.testing.assert_array_equal(co.firing_rate, tensor.firing_rate)
    src, dst = np.array([0, 1, 2]), np.array([5, 9, 13])
    expected = edge_gradients(net, x, y, src, dst)
    np.testing.assert_allclose(edge_gradients(net, Pairs(x, y), None, src, dst), expected, rtol=1e-10)
    np.testing.assert_allclose(edge_gradients(net, DataLoader(Pairs(x, y), batch_size=50), None, src, dst),
                               expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(saliency_scores(net, Pairs(x, y)), saliency_scores(net, x, y))
