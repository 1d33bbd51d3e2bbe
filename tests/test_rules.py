"""Prune / grow rules, schedules and the baselines built from them (SET, RigL, IMP, random DAG)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
import torch

from ncg import NCG, FreeNet
from ncg.errors import NCGError
from ncg.evolve.apply import apply_edits
from ncg.evolve.lottery import iterative_magnitude_pruning, stages_after
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.evolve.operators import forward_non_edges, grow_edges
from ncg.evolve.rules import GROW_SCORES, ScoreContext, edge_gradients
from ncg.experiments.methods import METHODS, Budget, Setting, evolve_config, mlp_width_for, rigl_config
from ncg.kernels.reference import reference_forward


def _data(n: int = 256, features: int = 6, classes: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=gen)
    return x, (x[:, :classes]).argmax(1)


def test_forward_non_edges_are_exactly_the_missing_forward_pairs():
    g = NCG.random_dag(12, density=0.4, num_outputs=2, seed=1)
    src, dst = forward_non_edges(g)
    edges = set(map(tuple, g.edge_index.t().tolist()))
    position = g.position.numpy()
    pairs = set(zip(src.tolist(), dst.tolist()))
    assert not pairs & edges and (position[src] < position[dst]).all()
    assert len(pairs) == 12 * 11 // 2 - g.num_edges


def test_forward_non_edges_samples_when_the_complete_dag_is_too_large():
    g = NCG.random_dag(300, num_edges=500, num_outputs=2, seed=0)
    src, dst = forward_non_edges(g, max_pairs=1000, rng=np.random.default_rng(0))
    assert 0 < src.size <= 1000
    assert len(set(zip(src.tolist(), dst.tolist()))) == src.size
    assert (g.position.numpy()[src] < g.position.numpy()[dst]).all()


def test_edge_gradients_match_autograd_on_a_real_edge_added_at_zero():
    torch.manual_seed(0)
    x, y = _data()
    g = NCG.random_dag(8, density=0.5, num_outputs=3, seed=0)
    net = FreeNet(g, in_features=6, seed=0)
    src, dst = forward_non_edges(g)
    predicted = edge_gradients(net, x, y, src, dst)
    # Add the candidate edges for real with weight 0 and read autograd's gradient.
    from ncg.evolve.edits import Edit

    ids = g.neuron_ids.tolist()
    grown, _ = apply_edits(g, [Edit("add_edge", ids[s], ids[d]) for s, d in zip(src, dst)])
    wide = FreeNet(grown, in_features=6, seed=0)
    wide.encoder.weight.data.copy_(net.encoder.weight.data)
    loss = torch.nn.functional.cross_entropy(wide(x), y, reduction="sum")
    loss.backward()
    assert np.allclose(predicted, wide.weight.grad[g.num_edges:].numpy(), atol=1e-4)


def test_rigl_regrows_the_highest_gradient_non_edges():
    torch.manual_seed(0)
    x, y = _data()
    net = FreeNet(NCG.random_dag(10, density=0.3, num_outputs=3, seed=2), in_features=6, seed=0)
    ctx = ScoreContext(net.graph, None, net, (x, y), samples=256)
    src, dst, score = GROW_SCORES["gradient"].score(ctx)
    edits = grow_edges(net.graph, src, dst, score, max_edits=3)
    best = np.argsort(-score)[:3]
    ids = net.neuron_ids.numpy()
    assert [(e.source, e.target) for e in edits] == list(zip(ids[src[best]].tolist(), ids[dst[best]].tolist()))
    assert all(e.weight == 0.0 for e in edits)
    assert np.allclose(score, np.abs(edge_gradients(net, x, y, src, dst)))


def test_set_keeps_the_edge_count_and_changes_edges():
    x, y = _data()
    g = NCG.random_dag(20, density=0.3, num_outputs=3, seed=0)
    net = FreeNet(g, in_features=6, seed=0)
    config = EvolveConfig(rounds=3, final_epochs=0, prune_score="magnitude", grow_score="random", grow_init="uniform",
                          remove_dead=False, budget=EditBudget(prune_fraction=0.3, regrow=True), record_samples=64)
    history = FreeEvolve(net, config).run((x, y))
    assert [r.num_edges for r in history.rounds] == [g.num_edges] * len(history.rounds)
    assert all(r.count("prune_edge") == r.count("add_edge") > 0 for r in history.rounds if r.phase == "evolve")
    before = set(map(tuple, g.edge_index.t().tolist()))
    assert set(map(tuple, net.edge_index.t().tolist())) != before
    added = [e for r in history.rounds for e in r.edits if e.op == "add_edge"]
    assert any(e.weight != 0.0 for e in added)  # SET draws new weights


def test_cosine_schedule_decays_to_zero():
    budget = EditBudget(prune_fraction=0.3, regrow=True, decay="cosine", decay_end=0.75)
    g = NCG.complete(30, num_outputs=2)
    counts = [budget.for_graph(g, progress=t / 8)[0] for t in range(8)]
    assert counts[0] == int(0.3 * g.num_edges) and counts[6:] == [0, 0]
    assert all(a >= b for a, b in zip(counts, counts[1:]))


def test_rigl_keeps_the_edge_count_and_stops_updating_after_decay_end():
    x, y = _data()
    setting = Setting(Budget(neurons=12, stages=((4, 1e-2),), rounds=1), in_features=6, num_classes=3)
    net = METHODS["rigl"].build(setting, 0)
    start = net.edge_index.shape[1]
    assert start == setting.target_edges
    history = FreeEvolve(net, rigl_config(setting, 0)).run((x, y))
    evolve = [r for r in history.rounds if r.phase == "evolve"]
    assert len(evolve) == 4 and all(r.num_edges == start for r in history.rounds)
    assert evolve[0].count("add_edge") > 0 and evolve[-1].edits == []


def test_imp_reaches_the_target_and_rewinds():
    x, y = _data()
    net = FreeNet(NCG.complete(12, num_outputs=3, seed=0), in_features=6, seed=0)
    torch.manual_seed(0)
    result = iterative_magnitude_pruning(net, (x, y), target_edges=20, cycles=2, epochs=[(3, 1e-2)], rewind_epochs=1)
    assert net.edge_index.shape[1] == 20 and result["epochs"] == 3 + 2 * 2
    assert [edges for _, edges in result["segments"]] == [66, round(66 * (20 / 66) ** 0.5), 20]
    assert stages_after([(3, 1e-2)], 1) == [(2, 1e-2)]


def test_imp_rewinds_surviving_weights_to_the_rewind_point(monkeypatch):
    """With no retraining after the rewind, the ticket's weights are the early ones."""
    x, y = _data()
    net = FreeNet(NCG.complete(10, num_outputs=3, seed=0), in_features=6, seed=0)
    import ncg.evolve.lottery as lottery

    snapshots = []
    real_fit = lottery.fit

    def fit(model, *args, **kwargs):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_fit(model, *args, **kwargs)

    monkeypatch.setattr(lottery, "fit", fit)
    iterative_magnitude_pruning(net, (x, y), target_edges=30, cycles=1, epochs=[(2, 1e-2)], rewind_epochs=1)
    rewind = snapshots[1]  # the state when the post-rewind-point training started
    retrain_start = snapshots[2]
    assert torch.equal(retrain_start["encoder.weight"], rewind["encoder.weight"])
    assert torch.equal(retrain_start["bias"], rewind["bias"])
    old = {tuple(e): w for e, w in zip(rewind["edge_index"].t().tolist(), rewind["weight"].tolist())}
    for e, w in zip(retrain_start["edge_index"].t().tolist(), retrain_start["weight"].tolist()):
        assert old[tuple(e)] == w


def test_random_dag_method_has_the_requested_edges_and_is_valid():
    setting = Setting(Budget(neurons=30, density=0.2), in_features=5, num_classes=4)
    net = METHODS["static-random"].build(setting, 0)
    assert net.edge_index.shape[1] == round(0.2 * 34 * 33 / 2) == setting.target_edges
    net.graph.validate(unreachable="ignore")


def test_mlp_methods_match_neurons_and_parameters():
    setting = Setting(Budget(neurons=512), in_features=784, num_classes=10)
    by_neurons = METHODS["mlp-neurons"].build(setting, 0)
    by_params = METHODS["mlp-params"].build(setting, 0)
    assert by_neurons[0].out_features == 512
    count = sum(p.numel() for p in by_params.parameters())
    assert abs(count - setting.target_parameters()) <= 795
    assert mlp_width_for(407_050, 784, 10) == 512


def test_no_evolution_switch_trains_every_epoch_without_edits():
    x, y = _data()
    net = FreeNet(NCG.complete(10, num_outputs=3, seed=0), in_features=6, seed=0)
    setting = Setting(Budget(neurons=7, stages=((4, 1e-2), (1, 1e-3)), rounds=2), in_features=6, num_classes=3)
    history = FreeEvolve(net, evolve_config(setting, 0, evolve=False)).run((x, y))
    assert [r.phase for r in history.rounds] == ["start", "evolve", "evolve", "finetune"]
    assert all(not r.edits for r in history.rounds)


def test_grow_edges_rejects_nothing_it_proposes_and_the_forward_pass_matches_the_reference():
    g = NCG.random_dag(15, density=0.3, num_outputs=2, seed=3)
    src, dst = forward_non_edges(g)
    grown, _ = apply_edits(g, grow_edges(g, src, dst, np.ones(src.size), init_weights=0.5))
    assert grown.num_edges == 15 * 14 // 2
    net = FreeNet(grown, in_features=4, seed=0)
    x = torch.randn(5, 4)
    plan, codes = net.plan()
    u = net.encoder.weight[plan.perm] @ x.t() + net.bias[plan.perm, None]
    assert torch.allclose(
        net._neuron_states(x)[1], reference_forward(u, net.weight, plan, codes), atol=1e-5
    )


def test_unknown_rules_are_named():
    with pytest.raises(NCGError, match="grow_score must be one of"):
        EvolveConfig(grow_score="lucky").validate()
    with pytest.raises(NCGError, match="decay must be one of"):
        EditBudget(decay="linear").validate()
    with pytest.raises(NCGError, match="needs a coactivation recording"):
        net = FreeNet(NCG.complete(4, num_outputs=1), in_features=2)
        GROW_SCORES["coactivation"].score(ScoreContext(net.graph, None, net, _data(8, 2, 1)))


def test_coactivation_weighted_magnitude_discounts_edges_between_neurons_that_do_not_fire_together():
    from ncg.evolve.coactivation import record_coactivation
    from ncg.evolve.rules import PRUNE_SCORES

    x, y = _data()
    net = FreeNet(NCG.complete(10, num_outputs=3, seed=0), in_features=6, seed=0)
    co = record_coactivation(net, x)
    ctx = ScoreContext(net.graph, co, net, (x, y))
    phi = co.score("phi")[co.pair_index(*net.edge_index.numpy())]
    expected = net.weight.detach().abs().numpy() * (1 + phi) / 2
    assert np.allclose(PRUNE_SCORES["coactivation_magnitude"].score(ctx), expected)


def test_coactive_gradient_grows_only_pairs_that_fire_together():
    from ncg.evolve.coactivation import record_coactivation

    x, y = _data()
    net = FreeNet(NCG.random_dag(12, density=0.3, num_outputs=3, seed=0), in_features=6, seed=0)
    co = record_coactivation(net, x)
    ctx = ScoreContext(net.graph, co, net, (x, y), tau=0.1)
    src, dst, score = GROW_SCORES["coactive_gradient"].score(ctx)
    phi = co.score("phi")[co.pair_index(src, dst)]
    assert src.size and (phi > 0.1).all()
    assert np.allclose(score, np.abs(edge_gradients(net, x, y, src, dst)))


def test_a_constant_budget_holds_the_edge_count_even_when_the_grow_rule_runs_short():
    x, y = _data()
    g = NCG.random_dag(20, density=0.3, num_outputs=3, seed=0)
    net = FreeNet(g, in_features=6, seed=0)
    config = EvolveConfig(rounds=3, final_epochs=0, prune_score="magnitude", grow_score="coactivation", tau=0.6,
                          remove_dead=False, budget=EditBudget(prune_fraction=0.5, regrow=True), record_samples=128)
    history = FreeEvolve(net, config).run((x, y))
    assert all(r.num_edges == g.num_edges for r in history.rounds)
    assert any(r.count("prune_edge") < int(0.5 * g.num_edges) for r in history.rounds if r.phase == "evolve")


def test_imp_prunes_input_edges_of_a_whole_sparse_network():
    from ncg.build import sparse_start

    x, y = _data()
    net = FreeNet(sparse_start(6, 10, 3, fan_in=4, seed=0), in_features=6, seed=0)
    start_inputs = net.graph.num_input_edges
    iterative_magnitude_pruning(net, (x, y), target_edges=20, cycles=2, epochs=[(2, 1e-2)], rewind_epochs=1)
    assert net.edge_index.shape[1] == 20 and net.graph.num_inputs == 6
    assert net.graph.num_input_edges < start_inputs


def test_every_rule_that_reads_coactivation_is_declared():
    from ncg.evolve.rules import PRUNE_SCORES

    x, y = _data()
    net = FreeNet(NCG.complete(6, num_outputs=3, seed=0), in_features=6, seed=0)
    ctx = ScoreContext(net.graph, None, net, (x, y), samples=32)
    for name, rule in [*PRUNE_SCORES.items(), *GROW_SCORES.items()]:
        try:
            rule.score(ctx)
        except NCGError as error:
            assert "needs a coactivation recording" in str(error) and rule.needs_coactivation, name
        else:
            assert not rule.needs_coactivation, name


def _two_scale_net():
    """A whole-network graph whose second hidden neuron's incoming weights are 10x the first's."""
    from ncg.build import sparse_start

    graph = sparse_start(4, 2, 1, density=1.0, seed=0)
    weight = graph.weight.clone()
    weight[graph.edge_index[1] == 5] *= 10.0
    graph.weight = weight
    return FreeNet(graph, in_features=4, seed=0)


def test_normalized_magnitude_compares_each_neurons_edges_on_its_own_scale():
    from ncg.evolve.rules import PRUNE_SCORES, ScoreContext

    net = _two_scale_net()
    ctx = ScoreContext(net.graph, None, net, (torch.randn(8, 4), torch.zeros(8, dtype=torch.long)))
    w, dst = net.graph.weight.numpy().astype(np.float64), net.graph.edge_index[1].numpy()
    expected = np.abs(w) / np.array([np.sqrt(np.mean(w[dst == d] ** 2)) for d in dst])
    scores = PRUNE_SCORES["normalized_magnitude"].score(ctx)
    assert np.allclose(scores, expected)
    scaled = dst == 5
    assert np.allclose(scores[scaled], PRUNE_SCORES["normalized_magnitude"].score(
        ScoreContext(_unscaled(net.graph), None, net, ctx.train))[scaled])


def _unscaled(graph):
    graph = graph.clone()
    weight = graph.weight.clone()
    weight[graph.edge_index[1] == 5] /= 10.0
    graph.weight = weight
    return graph


@given(st.integers(2, 12), st.integers(0, 2**16), st.floats(0.1, 0.9))
@settings(max_examples=30, deadline=None)
def test_quota_pruning_keeps_every_neurons_largest_edges_in_proportion_to_its_share(hidden, seed, keep):
    from ncg.build import sparse_start
    from ncg.evolve.operators import prune_edges
    from ncg.evolve.rules import PRUNE_SCORES, ScoreContext, neuron_quota

    graph = sparse_start(5, hidden, 2, density=1.0, seed=seed)
    net = FreeNet(graph, in_features=5, seed=seed)
    ctx = ScoreContext(graph, None, net, (torch.randn(8, 5), torch.zeros(8, dtype=torch.long)))
    scores = PRUNE_SCORES["quota"].score(ctx)
    assert scores.shape == (graph.num_edges,) and np.isfinite(scores).all() and (scores > 0).all()
    pruned = prune_edges(graph, scores, tau=None, max_edits=int((1 - keep) * graph.num_edges))
    gone = {(e.source, e.target) for e in pruned}
    src, dst = graph.edge_index.numpy()
    magnitude = graph.weight.abs().numpy()
    quota = neuron_quota(graph)
    for j in np.unique(dst):
        into = np.flatnonzero(dst == j)
        kept = [k for k in into if (src[k], j) not in gone and src[k] < 5]  # (a neuron's best way out is protected)
        dropped = [k for k in into if (src[k], j) in gone]
        if kept and dropped:  # within a neuron, the largest weights stay
            assert magnitude[kept].min() >= magnitude[dropped].max() - 1e-7
    if gone:  # every neuron keeps at least its share at the cut: the ranks r with quota / (r + 1) above it
        cut = max(scores[k] for k in range(graph.num_edges) if (src[k], dst[k]) in gone)
        for j in np.unique(dst):
            into = np.flatnonzero(dst == j)
            share = int(sum(quota[j] / (r + 1) > cut * (1 + 1e-6) for r in range(into.size)))
            assert sum((src[k], j) not in gone for k in into) >= share
