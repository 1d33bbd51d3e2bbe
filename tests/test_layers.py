"""Topology constraints (ncg.layers): starts, operators, edits, files and the MLP equivalence."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ncg import FreeNet
from ncg.build import sparse_start
from ncg.checkpoint import load_freenet, save_freenet
from ncg.errors import EditError, NCGError
from ncg.evolve.apply import apply_edits
from ncg.evolve.coactivation import record_coactivation
from ncg.evolve.edits import Edit, EditSet
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.evolve.operators import augment_edges, forward_non_edges, grow_edges, grow_neurons, prune_edges, remove_neurons
from ncg.io.graphml import read_graphml, write_graphml
from ncg.layers import allowed_layers, consecutive, describe, with_skips, within_reach


def _forbidden(graph) -> int:
    src, dst = graph.edge_index.numpy()
    return int((~graph.allows(src, dst)).sum())


@st.composite
def layered_graphs(draw):
    """A layered start: random hidden layer sizes, connection scheme, fan-in or density."""
    layers = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    connect = draw(st.sampled_from(["consecutive", "skips", "reach"]))
    if connect == "reach":
        connect = within_reach(len(layers) + 2, draw(st.integers(1, 3)))
    inputs, outputs = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    if draw(st.booleans()):
        return sparse_start(inputs, sum(layers), outputs, fan_in=draw(st.integers(1, 4)), seed=seed,
                            layers=tuple(layers), connect=connect)
    return sparse_start(inputs, sum(layers), outputs, density=draw(st.sampled_from([0.3, 1.0])), seed=seed,
                        layers=tuple(layers), connect=connect)


@given(layered_graphs(), st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_no_operator_creates_a_forbidden_edge(graph, seed):
    assert _forbidden(graph) == 0
    model = FreeNet(graph, in_features=graph.num_inputs, seed=seed)
    x = torch.randn(64, graph.num_inputs, generator=torch.Generator().manual_seed(seed))
    coactivation = record_coactivation(model, (x, torch.zeros(64, dtype=torch.long)), threshold=0.0)
    rng = np.random.default_rng(seed)
    src, dst = forward_non_edges(graph, rng=rng)
    assert graph.allows(src, dst).all()
    proposals = [
        EditSet.concat([prune_edges(graph, rng.random(graph.num_edges), tau=0.5),
                        grow_edges(graph, src, dst, rng.random(src.size), max_edits=5)]),
        augment_edges(graph, coactivation, tau=-1.0, max_edits=5),
        grow_neurons(graph, coactivation, num_new=3, tau=-1.0, seed=seed),
        remove_neurons(graph, rng.random(graph.num_neurons), min_rate=0.2),
    ]
    for batch in proposals:
        new, _ = apply_edits(graph, batch, unreachable="ignore")
        assert new.allowed_layers is not None and _forbidden(new) == 0
        assert (new.layer[new.inputs] == 0).all()


@given(layered_graphs())
@settings(max_examples=25, deadline=None)
def test_every_forbidden_edge_is_refused(graph):
    n = graph.num_neurons
    src, dst = np.triu_indices(n, 1)
    missing = ~graph.is_input[dst].numpy()
    keys = set((graph.edge_index[0] * n + graph.edge_index[1]).tolist())
    missing &= np.array([s * n + d not in keys for s, d in zip(src, dst)], dtype=bool)
    bad = missing & ~graph.allows(src, dst)
    for s, d in list(zip(src[bad], dst[bad]))[:5]:
        with pytest.raises(EditError, match="forbids"):
            apply_edits(graph, [Edit("add_edge", int(s), int(d))])


def test_grown_neuron_joins_the_layer_after_its_anchor():
    graph = sparse_start(2, 4, 1, density=1.0, layers=(2, 2), seed=0)
    ids = graph.neuron_ids
    new, _ = apply_edits(graph, [Edit("add_neuron", int(ids[3]), 99), Edit("add_edge", int(ids[2]), 99),
                                 Edit("add_edge", 99, int(ids[6]))])
    assert int(new.layer[new.neuron_ids == 99]) == 2
    with pytest.raises(EditError, match="forbids"):
        apply_edits(graph, [Edit("add_neuron", int(ids[2]), 99), Edit("add_edge", 99, int(ids[4]))])
    with pytest.raises(EditError, match="after the last layer"):
        apply_edits(graph, [Edit("add_neuron", int(ids[6]), 99)])


@pytest.mark.parametrize("sizes", [(5,), (4, 3), (3, 3, 2)])
def test_layered_complete_start_is_the_mlp(sizes):
    """A consecutive constraint over a complete start is the MLP of that shape: same outputs and
    gradients to rounding, in float64."""
    torch.manual_seed(0)
    f, k = 6, 3
    graph = sparse_start(f, sum(sizes), k, density=1.0, layers=sizes, seed=0)
    assert graph.num_edges == sum(a * b for a, b in zip((f, *sizes), (*sizes, k)))
    widths = (f, *sizes, k)
    linears = [nn.Linear(a, b).double() for a, b in zip(widths, widths[1:])]
    mlp = nn.Sequential(*[m for lin in linears for m in (lin, nn.ReLU())][:-1])
    offsets = np.cumsum((0, *widths))
    weight = torch.zeros(graph.num_edges, dtype=torch.float64)
    bias = torch.zeros(graph.num_neurons, dtype=torch.float64)
    src, dst = graph.edge_index
    for layer, lin in enumerate(linears):
        into = (dst >= offsets[layer + 1]) & (dst < offsets[layer + 2])
        weight[into] = lin.weight.detach()[dst[into] - offsets[layer + 1], src[into] - offsets[layer]]
        bias[offsets[layer + 1]:offsets[layer + 2]] = lin.bias.detach()
    graph.weight, graph.bias = weight, bias
    net = FreeNet(graph, in_features=f).double()
    x = torch.randn(17, f, dtype=torch.float64)
    out_net, out_mlp = net(x), mlp(x)
    torch.testing.assert_close(out_net, out_mlp, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out_mlp)
    out_net.backward(grad)
    out_mlp.backward(grad)
    for layer, lin in enumerate(linears):
        into = (dst >= offsets[layer + 1]) & (dst < offsets[layer + 2])
        expected = lin.weight.grad[dst[into] - offsets[layer + 1], src[into] - offsets[layer]]
        torch.testing.assert_close(net.weight.grad[into], expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(net.bias.grad, torch.cat([lin.bias.grad for lin in linears]), rtol=1e-10, atol=1e-12)


def test_evolution_keeps_the_constraint_and_files_store_it(tmp_path):
    graph = sparse_start(8, 12, 3, density=0.5, layers=(6, 6), seed=0)
    net = FreeNet(graph, in_features=8, seed=0)
    x, y = torch.randn(256, 8), torch.randint(0, 3, (256,))
    config = EvolveConfig(rounds=3, epochs_per_round=1, final_epochs=0, record_samples=128, tau=0.0,
                          prune_score="magnitude", grow_score="random", grow_init="uniform", remove_dead=False,
                          budget=EditBudget(prune_fraction=0.3, regrow=True))
    history = FreeEvolve(net, config).run((x, y))
    assert history.totals().get("add_edge", 0) > 0
    evolved = net.graph
    assert describe(evolved.allowed_layers) == "consecutive" and _forbidden(evolved) == 0
    save_freenet(net, tmp_path / "model.pt")
    write_graphml(net, tmp_path / "graph.graphml")
    for loaded in (load_freenet(tmp_path / "model.pt")[0], read_graphml(tmp_path / "graph.graphml")):
        assert torch.equal(loaded.layer, net.layer) and torch.equal(loaded.allowed_layers, net.allowed_layers)


def test_bad_constraints_are_named():
    graph = sparse_start(2, 2, 1, density=1.0, seed=0)
    with pytest.raises(NCGError, match="together"):
        type(graph)(graph.edge_index, graph.num_neurons, graph.outputs, inputs=graph.inputs,
                    layer=torch.zeros(graph.num_neurons, dtype=torch.long))
    with pytest.raises(NCGError, match="forbids"):
        type(graph)(graph.edge_index, graph.num_neurons, graph.outputs, inputs=graph.inputs,
                    layer=torch.tensor([0, 0, 1, 2, 3]), allowed_layers=consecutive(4))
    with pytest.raises(NCGError, match="input node"):
        type(graph)(torch.zeros(2, 0, dtype=torch.long), 3, torch.tensor([2]), inputs=torch.tensor([0]),
                    layer=torch.tensor([1, 1, 2]), allowed_layers=with_skips(3))
    with pytest.raises(NCGError, match="summing to num_hidden"):
        sparse_start(2, 4, 1, fan_in=2, layers=(2, 1))
    with pytest.raises(NCGError, match="connect must be"):
        allowed_layers(3, "dense")


def test_a_budget_reaches_its_target_or_says_it_did_not():
    """A schedule whose prune fraction is too small for its target prunes faster; a run that
    still ends above the target (a thresholded rule with nothing below tau) warns."""
    from dataclasses import replace

    from ncg import NCG
    from ncg.errors import TargetMissedWarning

    x, y = torch.randn(128, 4), torch.randint(0, 2, (128,))
    config = EvolveConfig(rounds=2, epochs_per_round=1, final_epochs=0, prune_score="magnitude", grow_score="none",
                          remove_dead=False, stop_when_unchanged=False, record_samples=64,
                          budget=EditBudget(prune_fraction=0.1, add_fraction=0.0, target_edges=40))
    net = FreeNet(NCG.complete(30, num_outputs=2, seed=0), in_features=4, seed=0)
    FreeEvolve(net, config).run((x, y))
    assert net.graph.num_edges == 40  # 10% a round would have left 352 of the 435
    net = FreeNet(NCG.complete(30, num_outputs=2, seed=0), in_features=4, seed=0)
    with pytest.warns(TargetMissedWarning, match="above the target of 40"):
        FreeEvolve(net, replace(config, prune_score="coactivation", tau=-1.0)).run((x, y))


@given(st.integers(1, 12), st.integers(1, 6), st.integers(0, 2**16))
@settings(max_examples=25, deadline=None)
def test_a_hop_cap_start_keeps_short_edges_between_neurons_and_every_input_and_output_edge(hidden, reach, seed):
    graph = sparse_start(3, hidden, 2, density=1.0, seed=seed, reach=reach)
    src, dst = graph.edge_index.numpy()
    between = (src >= 3) & (dst < 3 + hidden)
    assert (dst[between] - src[between] <= reach).all()
    expected = 3 * (hidden + 2) + hidden * 2 + sum(min(reach, hidden - 1 - k) for k in range(hidden))
    assert graph.num_edges == expected and _forbidden(graph) == 0


def test_bad_hop_caps_are_named():
    with pytest.raises(NCGError, match="reach must be an int >= 1, got 0"):
        within_reach(4, 0)
    with pytest.raises(NCGError, match=r"\[L, L\] bool over the L = 4 layers"):
        sparse_start(2, 2, 1, density=1.0, layers=(1, 1), connect=within_reach(3, 1))
    with pytest.raises(NCGError, match="give at most one of layers and reach"):
        sparse_start(2, 2, 1, density=1.0, layers=(1, 1), reach=1)
    with pytest.raises(NCGError, match="reach must be an int >= 1, got 0"):
        sparse_start(2, 2, 1, density=1.0, reach=0)
