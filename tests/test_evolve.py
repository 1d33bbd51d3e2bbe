from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ncg import NCG, FreeNet
from ncg.errors import EditError, NCGError, NonFiniteError, UnreachableNeuronWarning
from ncg.evolve.apply import apply_edits, rewire
from ncg.evolve.coactivation import record_coactivation
from ncg.evolve.edits import EDIT_OPS, Edit, EditSet
from ncg.evolve.history import History
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.evolve.operators import (
    augment_edges,
    coactivation_scores,
    forward_non_edges,
    grow_edges,
    grow_neurons,
    prune_edges,
    remove_neurons,
)
from strategies import dags


def _net(graph: NCG, seed: int = 0, **kw) -> FreeNet:
    return FreeNet(graph, in_features=5, seed=seed, block_size=4, **kw)


def _brute_force(net: FreeNet, x: torch.Tensor, threshold: float = 0.0):
    fired = (net.neuron_activations(x) > threshold).double().numpy()
    return fired.mean(0), fired.T @ fired / fired.shape[0]


# ----------------------------------------------------------------- coactivation
def test_dense_and_sparse_recording_match_brute_force():
    net = _net(NCG.random_dag(30, density=0.4, num_outputs=3, seed=1))
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0))
    rate, joint = _brute_force(net, x)
    dense = record_coactivation(net, x, batch_size=64)
    sparse = record_coactivation(net, x, batch_size=64, dense_max_neurons=0, candidates_per_neuron=5)
    np.testing.assert_allclose(dense.firing_rate, rate)
    for co in (dense, sparse):
        np.testing.assert_allclose(co.joint, joint[co.src, co.dst])
    src, dst = net.edge_index.numpy()
    assert (sparse.pair_index(src, dst) >= 0).all()
    assert sparse.num_pairs <= net.edge_index.shape[1] + 5 * 30
    np.testing.assert_allclose(coactivation_scores(net.graph, dense), coactivation_scores(net.graph, sparse))


def test_phi_equals_pearson_correlation_of_firing():
    net = _net(NCG.complete(12, num_outputs=2, seed=0))
    x = torch.randn(500, 5, generator=torch.Generator().manual_seed(1))
    co = record_coactivation(net, x)
    fired = (net.neuron_activations(x) > 0).double().numpy()
    corr = np.nan_to_num(np.corrcoef(fired.T))
    np.testing.assert_allclose(co.score("phi"), corr[co.src, co.dst], atol=1e-9)
    assert co.matrix("joint").shape == (12, 12)


def test_recording_streams_batches_and_limits_samples():
    net = _net(NCG.complete(8, seed=0))
    x = torch.randn(100, 5)
    whole = record_coactivation(net, x, batch_size=100)
    streamed = record_coactivation(net, [(x[i:i + 7], None) for i in range(0, 100, 7)])
    np.testing.assert_allclose(whole.joint, streamed.joint)
    assert record_coactivation(net, x, max_samples=30, batch_size=8).num_samples == 30


def test_nan_activations_are_a_clear_error():
    net = _net(NCG.complete(6, seed=0))
    x = torch.randn(10, 5)
    x[3, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN or infinite in batch 0"):
        record_coactivation(net, x)


def test_coactivation_save_load(tmp_path):
    net = _net(NCG.complete(6, seed=0))
    co = record_coactivation(net, torch.randn(20, 5))
    co.save(tmp_path / "co.npz")
    loaded = type(co).load(tmp_path / "co.npz")
    np.testing.assert_array_equal(loaded.joint, co.joint)
    assert loaded.num_samples == 20


# ----------------------------------------------------------------- operators
def test_prune_respects_tau_budget_and_protection():
    g = NCG.complete(10, num_outputs=2, seed=0)
    scores = np.linspace(0, 1, g.num_edges)
    edits = prune_edges(g, scores, tau=0.5, max_edits=7)
    assert len(edits) == 7 and all(e.score < 0.5 for e in edits)
    assert [e.score for e in edits] == sorted(e.score for e in edits)
    assert prune_edges(g, scores, tau=0.0) == []
    everything = prune_edges(g, scores, tau=1.01)
    # every neuron keeps its best outgoing edge: 9 sources protected
    assert len(everything) == g.num_edges - 9
    new, _ = apply_edits(g, everything)
    assert bool(new.reaches_output().all())


def test_magnitude_pruning_ignores_tau_when_none():
    g = NCG.complete(6, seed=0)
    edits = prune_edges(g, g.weight.abs().numpy(), tau=None, max_edits=3)
    smallest = np.sort(np.abs(g.weight.numpy()))
    assert len(edits) == 3 and edits[0].score == pytest.approx(smallest[0])


def test_augment_adds_only_forward_non_edges_above_tau():
    g = NCG.random_dag(15, density=0.2, num_outputs=2, seed=3)
    net = _net(g)
    co = record_coactivation(net, torch.randn(200, 5))
    edits = augment_edges(g, co, tau=-1.0, max_edits=1000)
    existing = set(map(tuple, g.edge_index.t().tolist()))
    pos = g.position
    assert edits and all((e.source, e.target) not in existing for e in edits)
    assert all(pos[e.source] < pos[e.target] for e in edits)
    assert augment_edges(g, co, tau=1.0) == []
    new, maps = apply_edits(g, edits)
    assert new.num_edges == g.num_edges + len(edits)
    assert int((maps.edge_map == -1).sum()) == len(edits)


def test_augmented_edges_start_at_zero_and_keep_the_function():
    g = NCG.random_dag(12, density=0.3, num_outputs=2, seed=0)
    net = _net(g)
    x = torch.randn(50, 5)
    before = net(x)
    co = record_coactivation(net, x)
    new, maps = apply_edits(g, augment_edges(g, co, tau=-1.0))
    rewire(net, new, maps)
    torch.testing.assert_close(net(x), before)


def test_remove_neurons_drops_dead_and_stranded_hidden_neurons():
    # 0 -> 1 -> 3 (output), 2 -> 3; neuron 1 never fires, so 0 is stranded too.
    g = NCG(torch.tensor([[0, 1, 2], [1, 3, 3]]), 4, torch.tensor([3]))
    edits = remove_neurons(g, np.array([0.5, 0.0, 0.5, 0.0]))
    assert sorted(e.source for e in edits) == [0, 1]
    new, maps = apply_edits(g, edits)
    assert new.num_neurons == 2 and maps.neuron_map.tolist() == [2, 3]
    assert new.neuron_ids.tolist() == [2, 3]


def test_all_dead_hidden_neurons_leave_only_outputs():
    g = NCG.complete(8, num_outputs=2, seed=0)
    edits = remove_neurons(g, np.zeros(8))
    new, _ = apply_edits(g, edits)
    assert new.num_neurons == 2 and new.outputs.numel() == 2


def test_grow_neurons_preserves_the_function():
    g = NCG.random_dag(14, density=0.2, num_outputs=2, seed=4)
    net = _net(g)
    x = torch.randn(80, 5)
    before = net(x)
    co = record_coactivation(net, x)
    edits = grow_neurons(g, co, num_new=3, fan_in=3, tau=-1.0)
    assert sum(e.op == "add_neuron" for e in edits) == 3
    new, maps = apply_edits(g, edits)
    assert new.num_neurons == 17 and (maps.neuron_map == -1).sum() == 3
    rewire(net, new, maps)
    torch.testing.assert_close(net(x), before)


# ----------------------------------------------------------------- apply
def test_empty_edit_list_changes_nothing():
    g = NCG.random_dag(20, density=0.3, num_outputs=3, seed=2)
    new, maps = apply_edits(g, [], unreachable="ignore")
    for name in ("edge_index", "weight", "bias", "outputs", "order", "neuron_ids"):
        assert torch.equal(getattr(new, name), getattr(g, name)), name
    assert maps.edge_map.tolist() == list(range(g.num_edges))


@pytest.mark.parametrize(
    "edit, message",
    [
        (Edit("prune_edge", 0, 99), "neuron id 99"),
        (Edit("prune_edge", 1, 0), "not in the graph"),
        (Edit("remove_neuron", 3, -1), "would remove output 3"),
        (Edit("add_edge", 0, 1), "already exists"),
        (Edit("add_neuron", 0, 2), "already exists"),
        (Edit("add_neuron", 42, 7), "after neuron 42"),
    ],
)
def test_invalid_edits_are_refused(edit, message):
    g = NCG.complete(4, num_outputs=1, seed=0)
    with pytest.raises(EditError, match=message):
        apply_edits(g, [edit])


def test_backward_edge_is_refused():
    g = NCG(torch.tensor([[0], [2]]), 3, torch.tensor([2]), unreachable="ignore")
    with pytest.raises(EditError, match="backward in the topological order"):
        apply_edits(g, [Edit("add_edge", 2, 1)])
    with pytest.raises(EditError, match="op must be one of"):
        Edit("delete", 0, 1)


def test_rewire_keeps_adam_moments_of_surviving_edges():
    net = _net(NCG.complete(8, num_outputs=2, seed=0))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = torch.randn(32, 5), torch.randint(0, 2, (32,))
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
    old_moment = opt.state[net.weight]["exp_avg"].clone()
    g = net.graph
    new, maps = apply_edits(g, prune_edges(g, np.arange(g.num_edges, dtype=float), tau=5, max_edits=4))
    rewire(net, new, maps, opt)
    moment = opt.state[net.weight]["exp_avg"]
    torch.testing.assert_close(moment, old_moment[maps.edge_map])
    assert any(p is net.weight for group in opt.param_groups for p in group["params"])
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()


_OPS = st.lists(st.sampled_from(["prune", "augment", "remove", "grow"]), min_size=1, max_size=4)


@given(dags(min_neurons=2, max_neurons=25), _OPS, st.integers(0, 1000))
def test_invariants_hold_after_any_sequence_of_edits(graph, ops, seed):
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreachableNeuronWarning)
        graph, _ = apply_edits(graph, remove_neurons(graph, np.ones(graph.num_neurons)))
    net = FreeNet(graph, in_features=3, seed=0, block_size=3)
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(seed))
    for op in ops:
        g = net.graph
        co = record_coactivation(net, x)
        if op == "prune":
            edits = prune_edges(g, rng.random(g.num_edges), tau=float(rng.random()), max_edits=int(rng.integers(0, 20)))
        elif op == "augment":
            edits = augment_edges(g, co, tau=float(rng.uniform(-1, 1)), max_edits=int(rng.integers(0, 20)))
        elif op == "remove":
            edits = remove_neurons(g, rng.random(g.num_neurons) * (rng.random(g.num_neurons) > 0.3))
        else:
            edits = grow_neurons(g, co, num_new=int(rng.integers(0, 3)), fan_in=2, tau=-1.0, seed=seed)
        new, maps = apply_edits(g, edits, unreachable="raise")  # acyclic, no duplicates, all reach outputs
        kept = maps.edge_map >= 0
        assert torch.equal(new.weight[kept], g.weight[maps.edge_map[kept]])
        old_key = g.neuron_ids[g.edge_index[:, maps.edge_map[kept]]]
        assert torch.equal(new.neuron_ids[new.edge_index[:, kept]], old_key)
        assert new.num_outputs == g.num_outputs
        rewire(net, new, maps)
        reference = FreeNet(new, in_features=3, evaluator="reference")
        reference.load_state_dict(net.state_dict())
        torch.testing.assert_close(net(x), reference(x), atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------- loop
def _toy_data(n=400, features=5, classes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y.clamp(max=classes - 1)


def _evolve(seed=0, **overrides):
    cfg = dict(rounds=3, epochs_per_round=1, final_epochs=1, record_samples=200, tau=0.1, lr=1e-2,
               budget=EditBudget(prune_fraction=0.2, add_fraction=0.05, grow_neurons=1), seed=seed)
    cfg.update(overrides)
    torch.manual_seed(seed)
    net = _net(NCG.complete(20, num_outputs=3, seed=seed), seed=seed)
    seen = []
    evolve = FreeEvolve(net, EvolveConfig(**cfg), callbacks=[lambda ev, rec: seen.append(rec.round)])
    x, y = _toy_data(seed=seed)
    history = evolve.run((x[:300], y[:300]), (x[300:], y[300:]))
    return net, history, seen


def test_loop_records_every_round_and_changes_the_graph():
    net, history, seen = _evolve()
    assert len(history) == 5 and seen == [1, 2, 3, 4]
    assert history.rounds[0].num_edges == 190
    assert history.totals().get("prune_edge", 0) > 0
    assert history.rounds[-1].num_edges == net.edge_index.shape[1]
    assert {"train_loss", "val_accuracy"} <= set(history.rounds[1].metrics)
    net.graph.validate(unreachable="raise")


def test_seed_fixes_the_run():
    _, a, _ = _evolve(seed=3)
    _, b, _ = _evolve(seed=3)
    assert a.to_dict()["rounds"][-1]["edges"] == b.to_dict()["rounds"][-1]["edges"]
    assert [r.metrics for r in a.rounds] == [r.metrics for r in b.rounds]


def test_loop_stops_when_the_graph_stops_changing():
    _, history, _ = _evolve(rounds=5, tau=-1.0, budget=EditBudget(add_fraction=0.0), remove_dead=False)
    # tau=-1 prunes nothing (no score is below -1) and adding is disabled: first round is empty
    assert len(history) == 3 and history.rounds[1].edits == []


def test_magnitude_and_saliency_baselines_run():
    for score in ("magnitude", "saliency"):
        _, history, _ = _evolve(prune_score=score, rounds=1)
        assert history.rounds[1].count("prune_edge") == int(0.2 * 190)


def test_graph_without_hidden_neurons_evolves():
    net = FreeNet(NCG.complete(3, num_outputs=3, seed=0), in_features=5, seed=0)
    x, y = _toy_data()
    history = FreeEvolve(net, EvolveConfig(rounds=2, record_samples=100, tau=0.0)).run((x, y))
    assert history.rounds[-1].num_neurons == 3


def test_budget_targets_cap_pruning_and_adding():
    g = NCG.complete(11, num_outputs=1)  # 55 edges
    assert EditBudget(prune_fraction=0.5, add_fraction=0.1).for_graph(g) == (27, 5)
    assert EditBudget(prune_fraction=0.5, add_fraction=0.0, target_edges=50).for_graph(g) == (5, 0)
    # Above the target: prune no further below it than the adds bring back, add no more than pruned.
    assert EditBudget(prune_fraction=0.5, add_fraction=0.1, target_edges=30).for_graph(g) == (27, 5)
    assert EditBudget(prune_fraction=0.5, add_fraction=0.1, target_density=0.9).for_graph(g) == (10, 5)
    # At the target the round swaps edges; below it, it refills.
    assert EditBudget(prune_fraction=0.5, add_fraction=0.1, target_edges=55).for_graph(g) == (5, 5)
    assert EditBudget(prune_fraction=0.0, add_fraction=0.5, target_edges=60).for_graph(g) == (0, 5)


def test_config_errors_name_the_field():
    with pytest.raises(NCGError, match="measure must be one of"):
        EvolveConfig(measure="cosine").validate()
    with pytest.raises(NCGError, match="tau must be in \\[0.0, 1\\] for measure 'joint'"):
        EvolveConfig(measure="joint", tau=-0.5).validate()
    with pytest.raises(NCGError, match="prune_fraction must be in"):
        EditBudget(prune_fraction=2).for_graph(NCG.complete(3))
    with pytest.raises(NCGError, match="prune_fraction must be in"):
        EvolveConfig(budget=EditBudget(prune_fraction=2)).validate()
    with pytest.raises(NCGError, match="grow_neurons must be >= 0"):
        EvolveConfig(budget=EditBudget(grow_neurons=-1)).validate()


def test_history_round_trips_through_json(tmp_path):
    _, history, _ = _evolve(rounds=1)
    history.save(tmp_path / "h.json")
    loaded = History.load(tmp_path / "h.json")
    assert loaded.to_dict() == history.to_dict()


def test_a_crashed_run_resumes_to_the_same_result(tmp_path):
    from ncg import load_freenet, save_freenet

    cfg = EvolveConfig(rounds=3, epochs_per_round=1, final_epochs=1, record_samples=200, tau=0.1, lr=1e-2,
                       budget=EditBudget(prune_fraction=0.2, add_fraction=0.05, grow_neurons=1))
    x, y = _toy_data()
    train, val = (x[:300], y[:300]), (x[300:], y[300:])

    def fresh() -> FreeNet:
        torch.manual_seed(0)
        return _net(NCG.complete(20, num_outputs=3, seed=0))

    full = FreeEvolve(fresh(), cfg).run(train, val)

    class Crash(Exception):
        pass

    def checkpoint(evolve, record):
        save_freenet(evolve.model, tmp_path / "model.pt", extra={"evolve": evolve.state_dict()})
        if record.round == 2:
            raise Crash

    with pytest.raises(Crash):
        FreeEvolve(fresh(), cfg, callbacks=[checkpoint]).run(train, val)
    model, extra = load_freenet(tmp_path / "model.pt")
    evolve = FreeEvolve(model, cfg)
    evolve.load_state_dict(extra["evolve"])
    resumed = evolve.run(train, val)

    def strip(history):
        return [{k: v for k, v in r.items() if k not in ("seconds", "timing")} for r in history.to_dict()["rounds"]]

    assert strip(resumed) == strip(full)
    assert [r.phase for r in resumed.rounds] == ["start", "evolve", "evolve", "evolve", "finetune"]
    with pytest.raises(NCGError, match="lacks"):
        FreeEvolve(model, cfg).load_state_dict({"history": {}})


def test_firing_thresholds_follow_each_neurons_activation():
    net = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=5, seed=0, activation="sigmoid")
    x = torch.randn(200, 5)
    co = record_coactivation(net, x)
    h = net.neuron_activations(x)
    expected = torch.cat([(h[:, :4] > 0.5), (h[:, 4:] > 0.0)], dim=1).double().mean(0).numpy()
    np.testing.assert_allclose(co.firing_rate, expected)
    # sigmoid outputs are always > 0: a zero threshold would make every hidden neuron fire always
    assert (co.firing_rate[:4] < 1).any()
    np.testing.assert_allclose(record_coactivation(net, x, threshold=0.0).firing_rate[:4], 1.0)


def test_activation_hook_sees_every_forward():
    net = _net(NCG.complete(7, num_outputs=2, seed=0))
    x = torch.randn(9, 5)
    seen = []
    net.activation_hook = seen.append
    net(x)
    net.activation_hook = None
    torch.testing.assert_close(seen[0], net.neuron_activations(x))


def test_recording_during_training_uses_the_last_samples_of_the_epoch():
    from ncg.train import train_epoch

    net = _net(NCG.complete(10, num_outputs=3, seed=0))
    evolve = FreeEvolve(net, EvolveConfig(record_samples=70, batch_size=32))
    recorder, hook = evolve._tail_recorder(200)
    seen = []

    def spy(h):
        seen.append(h.clone())
        hook(h)

    x, y = _toy_data(200)
    net.activation_hook = spy
    train_epoch(net, evolve.optimizer, x, y, batch_size=32)
    net.activation_hook = None
    co = recorder.result()
    assert co.num_samples == 70
    fired = (torch.cat(seen)[-70:] > 0).double().numpy()
    np.testing.assert_allclose(co.firing_rate, fired.mean(0))
    np.testing.assert_allclose(co.joint, (fired.T @ fired / 70)[co.src, co.dst])


@pytest.mark.parametrize("dense_max_neurons", [4096, 2])  # the dense GEMM mode and the sampled-pairs mode
def test_a_rates_only_recording_has_the_same_firing_rates_and_no_pair(dense_max_neurons):
    net = _net(NCG.random_dag(12, density=0.4, num_outputs=3, seed=1))
    x, _ = _toy_data(90)
    both = record_coactivation(net, x, batch_size=32, dense_max_neurons=dense_max_neurons)
    rates = record_coactivation(net, x, batch_size=32, dense_max_neurons=dense_max_neurons, pairs=False)
    assert both.num_pairs > 0 and rates.num_pairs == 0 and rates.num_samples == both.num_samples == 90
    np.testing.assert_array_equal(rates.firing_rate, both.firing_rate)
    assert rates.remap(np.array([0, 2, -1])).num_pairs == 0


@pytest.mark.parametrize(("prune", "grow", "pairs"), [
    ("magnitude", "gradient", False), ("magnitude", "coactivation", True), ("coactivation", "random", True),
])
def test_a_round_records_pairs_only_for_rules_that_read_them(monkeypatch, prune, grow, pairs):
    from ncg.evolve import coactivation

    made = []
    original = coactivation.CoactivationRecorder.__init__

    def spy(self, *args, **kwargs):
        made.append(kwargs.get("pairs", True))
        original(self, *args, **kwargs)

    monkeypatch.setattr(coactivation.CoactivationRecorder, "__init__", spy)
    net = _net(NCG.complete(10, num_outputs=3, seed=0))
    x, y = _toy_data(96)
    record = FreeEvolve(net, EvolveConfig(rounds=1, prune_score=prune, grow_score=grow, batch_size=32)).step((x, y))
    assert made == [pairs] and record.num_edges > 0


def test_train_epochs_hooks_only_the_last_epoch_and_clears_the_hook():
    from ncg.train import train_epochs

    net = _net(NCG.complete(10, num_outputs=3, seed=0))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    x, y = _toy_data(200)
    seen, epochs = [], []
    metrics, seconds = train_epochs(net, optimizer, (x, y), 3, batch_size=64,
                                    on_epoch=lambda epoch, stats: epochs.append(epoch),
                                    last_epoch_hook=lambda h: seen.append(h.shape[0]))
    assert epochs == [1, 2, 3] and sum(seen) == 200 and net.activation_hook is None
    assert sorted(metrics) == ["train_accuracy", "train_loss"] and seconds > 0

    def failing(h):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        train_epochs(net, optimizer, (x, y), 1, last_epoch_hook=failing)
    assert net.activation_hook is None
    assert train_epochs(net, optimizer, (x, y), 0) == ({}, 0.0)


def test_separate_recording_pass_still_available():
    _, history, _ = _evolve(record_during_training=False, rounds=1)
    assert history.rounds[1].count("prune_edge") > 0


@pytest.mark.parametrize("seed", range(6))
def test_rounds_mixing_removal_prune_and_growth_keep_the_invariants(seed):
    torch.manual_seed(seed)
    graph = NCG.random_dag(16, density=0.6, num_outputs=3, seed=seed)
    graph.bias[:3] = -50.0  # three neurons that never fire
    net = FreeNet(graph, in_features=5, seed=seed, block_size=4)
    budget = EditBudget(prune_fraction=0.5, add_fraction=0.1, grow_neurons=2)
    checked = []

    def check(evolve, record):
        evolve.model.graph.validate(unreachable="raise")
        checked.append(record.round)

    x, y = _toy_data(seed=seed)
    config = EvolveConfig(rounds=3, tau=0.25, lr=1e-2, record_samples=200, budget=budget, seed=seed)
    history = FreeEvolve(net, config, callbacks=[check]).run((x, y))
    assert checked and history.totals().get("remove_neuron", 0) >= 3
    ids_ever = [set(r.order) for r in history.rounds]
    added = [e.target for r in history.rounds for e in r.edits if e.op == "add_neuron"]
    assert len(added) == len(set(added)) and not any(a in ids_ever[0] for a in added)


def test_dead_neurons_are_kept_for_non_relu_activations():
    graph = NCG.complete(8, num_outputs=2, seed=0)
    net = FreeNet(graph, in_features=5, seed=0, activation="tanh")
    co = record_coactivation(net, torch.randn(50, 5), threshold=100.0)  # nothing "fires"
    edits = FreeEvolve(net, EvolveConfig(tau=-1.0)).propose(co, _toy_data())
    assert not any(e.op == "remove_neuron" for e in edits)


def test_rewire_keeps_float64_weights_exact():
    net = _net(NCG.complete(6, num_outputs=2, seed=0)).double()
    with torch.no_grad():
        net.weight += 1e-12
    before = net.weight.detach().clone()
    new, maps = apply_edits(net.graph, [])
    rewire(net, new, maps)
    assert net.weight.dtype == torch.float64 and torch.equal(net.weight.detach(), before)


def test_edits_keep_float64_biases():
    g = NCG.complete(5, num_outputs=1, seed=0)
    g64 = NCG(g.edge_index, 5, g.outputs, weight=g.weight.double(), bias=torch.full((5,), 0.1, dtype=torch.float64))
    new, _ = apply_edits(g64, [Edit("prune_edge", 0, 1), Edit("add_neuron", 1, 9)])
    assert new.bias.dtype == torch.float64 and new.bias[0].item() == 0.1


@pytest.mark.parametrize(
    "y, message",
    [
        (torch.tensor([0, 1, 5, 1]), "label 5 is outside \\[0, 3\\)"),
        (torch.tensor([0.0, 1.0, 1.0, 2.0]), "class labels must be integers"),
        (torch.tensor([0, 1, 2]), "x has 4 samples but y has 3"),
        (torch.tensor([0, -1, 1, 2]), "label -1 is outside"),
    ],
)
def test_bad_training_data_is_refused_with_the_argument_named(y, message):
    net = FreeNet(NCG.complete(6, num_outputs=3, seed=0), in_features=2, seed=0)
    with pytest.raises(NCGError, match=message):
        FreeEvolve(net, EvolveConfig(rounds=1, record_samples=4)).run((torch.randn(4, 2), y))


def test_a_higher_firing_threshold_never_removes_neurons_that_still_output_something():
    # With a threshold no activation reaches, every neuron "never fires"; removing them would
    # change the function, so only stranded neurons may go (none in a complete DAG).
    _, history, _ = _evolve(rounds=1, firing_threshold=1e6, budget=EditBudget(prune_fraction=0.0, add_fraction=0.0))
    assert history.rounds[1].count("remove_neuron") == 0


def test_neuron_growth_stays_within_the_rounds_edge_budget():
    _, history, _ = _evolve(rounds=2, tau=-1.0, budget=EditBudget(prune_fraction=0.0, add_fraction=0.0, grow_neurons=3))
    assert all(r.count("add_neuron") == 0 and r.count("add_edge") == 0 for r in history.rounds)
    budget = EditBudget(prune_fraction=0.0, add_fraction=0.05, grow_neurons=3)
    net, history, _ = _evolve(rounds=2, tau=-1.0, budget=budget)
    for before, record in zip(history.rounds, history.rounds[1:]):
        if record.phase == "evolve":
            assert record.count("add_edge") <= int(0.05 * before.num_edges)


def test_first_adam_updates_of_new_edges_stay_near_the_learning_rate():
    torch.manual_seed(0)
    x, y = _toy_data()
    net = _net(NCG.random_dag(20, density=0.4, num_outputs=3, seed=0), seed=0)
    lr = 1e-3
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    from ncg.train import train_epoch

    for _ in range(3):
        train_epoch(net, optimizer, x, y, batch_size=32)
    for state in optimizer.state.values():  # as after a long run, where bias correction is ~1
        state["step"].fill_(10_000)
    graph = net.graph
    ids = graph.neuron_ids.tolist()
    from ncg.evolve.operators import forward_non_edges

    src, dst = forward_non_edges(graph)
    edits = [Edit("add_edge", ids[s], ids[d]) for s, d in zip(src[:20], dst[:20])]
    new, maps = apply_edits(graph, edits)
    rewire(net, new, maps, optimizer)
    loss = torch.nn.functional.cross_entropy(net(x[:64]), y[:64])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    fresh = maps.edge_map < 0
    moved = net.weight.detach()[fresh].abs()
    assert moved.max() <= 1.5 * lr  # a zero second moment gave ~3.2 x lr


# ------------------------------------------------------------------------ edit sets and history storage


@given(st.lists(st.tuples(st.sampled_from(EDIT_OPS), st.integers(-1, 10**12), st.integers(-1, 10**12),
                          st.floats(allow_nan=False), st.floats(allow_nan=False)), max_size=30))
def test_edit_set_round_trips_edits_and_storage(rows):
    edits = [Edit(*row) for row in rows]
    as_set = EditSet.from_edits(edits)
    assert list(as_set) == edits and as_set == edits and len(as_set) == len(edits)
    assert EditSet.from_dict(json.loads(json.dumps(as_set.to_dict()))) == as_set
    assert EditSet.from_dict([e.to_dict() for e in edits]) == as_set  # history format 1
    assert sum(as_set.count(op) for op in EDIT_OPS) == len(edits)


def test_edit_set_rejects_unknown_kinds_and_ragged_columns():
    with pytest.raises(EditError, match="op must be one of"):
        EditSet.of("grow_edge", np.array([1]), np.array([2]))
    with pytest.raises(EditError, match="one length"):
        EditSet(np.zeros(2), np.zeros(2), np.zeros(3), np.zeros(2), np.zeros(2))
    with pytest.raises(EditError, match="Edit tuples or an EditSet"):
        EditSet.from_edits([("prune_edge", 1, 2)])


@given(dags(max_neurons=25), st.integers(0, 2**32 - 1))
def test_apply_edits_takes_an_edit_set_or_its_edits_alike(graph, seed):
    rng = np.random.default_rng(seed)
    prunes = prune_edges(graph, rng.random(graph.num_edges), tau=None, max_edits=graph.num_edges // 3)
    src, dst = forward_non_edges(graph)
    edits = EditSet.concat([prunes, grow_edges(graph, src, dst, rng.random(src.size), max_edits=5, init_weights=0.5)])
    from_set, maps = apply_edits(graph, edits, unreachable="ignore")
    from_list, list_maps = apply_edits(graph, list(edits), unreachable="ignore")
    assert torch.equal(from_set.edge_index, from_list.edge_index) and torch.equal(maps.edge_map, list_maps.edge_map)
    assert from_set.num_edges == graph.num_edges - len(prunes) + edits.count("add_edge")


def test_history_stores_compressed_arrays_and_reads_format_1(tmp_path):
    graph = NCG.random_dag(300, density=0.3, num_outputs=3, seed=0)
    history = History()
    history.append_graph(graph)
    history.append_graph(graph, prune_edges(graph, graph.weight.abs().numpy(), tau=None, max_edits=100))
    history.save(tmp_path / "h.json")
    listed = json.dumps({"version": 1, "rounds": [  # format 1 predates recording input nodes
        {**{k: v for k, v in r.__dict__.items() if k != "inputs"}, "edges": r.edges.tolist(),
         "outputs": r.outputs.tolist(), "order": r.order.tolist(), "edits": [e.to_dict() for e in r.edits]}
        for r in history.rounds]})
    assert (tmp_path / "h.json").stat().st_size < len(listed) / 2
    for loaded in (History.load(tmp_path / "h.json"), History.from_dict(json.loads(listed))):
        assert [r.edits for r in loaded.rounds] == [r.edits for r in history.rounds]
        assert all(np.array_equal(a.edges, b.edges) and np.array_equal(a.order, b.order)
                   for a, b in zip(loaded.rounds, history.rounds))
        assert loaded.totals() == {"prune_edge": 100}


def test_history_keeps_input_nodes_and_reads_records_without_them(tmp_path):
    from ncg.build import sparse_start

    graph = sparse_start(num_inputs=5, num_hidden=4, num_outputs=2, fan_in=3, seed=0)
    history = History()
    history.append_graph(graph)
    history.append_graph(NCG.complete(4, seed=0))
    assert history.rounds[0].inputs.tolist() == graph.neuron_ids[graph.inputs].tolist() == [0, 1, 2, 3, 4]
    history.save(tmp_path / "h.json")
    loaded = History.load(tmp_path / "h.json")
    assert [r.inputs.tolist() for r in loaded.rounds] == [[0, 1, 2, 3, 4], []]
    old = history.to_dict()
    for record in old["rounds"]:
        del record["inputs"]
    assert [r.inputs.tolist() for r in History.from_dict(old).rounds] == [[], []]
