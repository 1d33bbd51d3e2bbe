"""Input connections as graph edges: sparse starts, the graph encoder, edits, files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ncg import NCG, FreeNet, load_freenet, save_freenet
from ncg.build import sparse_start
from ncg.errors import EditError, EdgeIndexError, NCGError
from ncg.evolve.apply import apply_edits
from ncg.evolve.edits import Edit
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.evolve.operators import forward_non_edges, grow_edges, prune_edges, remove_neurons
from ncg.experiments.methods import parameters, structure
from ncg.io import read_graphml, write_graphml


def _manual_forward(net: FreeNet, x: torch.Tensor) -> torch.Tensor:
    """Neuron by neuron in the stored order: inputs take x, the others act(b + sum w h)."""
    g = net.graph
    h = torch.zeros(x.shape[0], g.num_neurons, dtype=torch.float64)
    feature = {int(v): f for f, v in enumerate(g.inputs.tolist())}
    src, dst = g.edge_index
    for v in g.order.tolist():
        if v in feature:
            h[:, v] = x[:, feature[v]].double()
            continue
        into = dst == v
        z = g.bias[v].double() + h[:, src[into]] @ g.weight[into].double()
        h[:, v] = z if v in g.outputs.tolist() else torch.relu(z)
    return h[:, g.outputs].float()


@given(
    inputs=st.integers(1, 12), hidden=st.integers(0, 15), outputs=st.integers(1, 3),
    fan_in=st.integers(1, 6), seed=st.integers(0, 1000),
)
def test_sparse_start_fan_in_is_acyclic_and_every_neuron_is_wired(inputs, hidden, outputs, fan_in, seed):
    g = sparse_start(inputs, hidden, outputs, fan_in=fan_in, seed=seed)
    g.validate(unreachable="raise")  # acyclic, and every hidden neuron reaches an output
    indeg = torch.bincount(g.edge_index[1], minlength=g.num_neurons)
    assert (indeg[g.inputs] == 0).all()
    for j in range(inputs, g.num_neurons):
        allowed = min(j, inputs + hidden)
        assert indeg[j] >= min(fan_in, allowed)  # plus any repair edge from a hidden neuron
    drawn = sum(min(fan_in, min(j, inputs + hidden)) for j in range(inputs, g.num_neurons))
    assert drawn <= g.num_edges <= drawn + hidden
    assert g.num_inputs == inputs and g.num_outputs == outputs


def test_sparse_start_density_gives_the_requested_fraction():
    f, h, k = 100, 60, 10
    g = sparse_start(f, h, k, density=0.1, seed=0)
    allowed = h * f + h * (h - 1) // 2 + k * (f + h)
    assert abs(g.num_edges / allowed - 0.1) < 0.01
    g.validate(unreachable="raise")


def test_sparse_start_errors_name_the_argument():
    with pytest.raises(NCGError, match="exactly one of fan_in and density"):
        sparse_start(4, 2, 1)
    with pytest.raises(NCGError, match="density must be in"):
        sparse_start(4, 2, 1, density=0.0)
    with pytest.raises(NCGError, match="num_inputs must be an int >= 1"):
        sparse_start(0, 2, 1, fan_in=2)


def test_graph_encoder_forward_matches_the_neuron_by_neuron_rule():
    torch.manual_seed(0)
    net = FreeNet(sparse_start(10, 12, 3, fan_in=4, seed=1), in_features=10, seed=0)
    assert net.encoder_kind == "graph"
    x = torch.randn(7, 10)
    assert torch.allclose(net(x), _manual_forward(net, x), atol=1e-5)


@given(seed=st.integers(0, 500), fan_in=st.integers(1, 5))
def test_graph_encoder_blocked_matches_reference_forward_and_backward(seed, fan_in):
    g = sparse_start(6, 9, 2, fan_in=fan_in, seed=seed)
    fast = FreeNet(g, in_features=6, seed=0, block_size=4)
    slow = FreeNet(g, in_features=6, seed=0, evaluator="reference")
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(seed))
    out_fast, out_slow = fast(x), slow(x)
    assert torch.allclose(out_fast, out_slow, atol=1e-5)
    out_fast.square().sum().backward()
    out_slow.square().sum().backward()
    assert torch.allclose(fast.weight.grad, slow.weight.grad, atol=1e-4)
    assert torch.allclose(fast.bias.grad, slow.bias.grad, atol=1e-4)
    assert fast.bias.shape == (g.num_neurons - g.num_inputs,)  # input nodes hold the input and no bias


def test_graph_encoder_checks_its_graph():
    with pytest.raises(NCGError, match="has 10 input nodes but in_features=5"):
        FreeNet(sparse_start(10, 3, 2, fan_in=2, seed=0), in_features=5)
    with pytest.raises(NCGError, match="needs a graph with input nodes"):
        FreeNet(NCG.complete(4, num_outputs=1), in_features=3, encoder="graph")
    with pytest.raises(EdgeIndexError, match="enters input node"):
        NCG(torch.tensor([[2], [0]]), 3, outputs=torch.tensor([2]), inputs=torch.tensor([0]))


def test_parameters_count_edges_and_neuron_biases_only():
    g = sparse_start(20, 8, 3, fan_in=5, seed=0)
    net = FreeNet(g, in_features=20, seed=0)
    assert parameters(net) == g.num_edges + 8 + 3
    info = structure(net)
    assert info["input_connections"] == g.num_input_edges
    assert info["hidden_edges"] == g.num_edges - g.num_input_edges and info["neurons"] == 11


def test_operators_edit_input_edges_and_keep_every_invariant():
    rng = np.random.default_rng(0)
    g = sparse_start(12, 10, 2, fan_in=4, seed=0)
    for step in range(8):
        scores = rng.random(g.num_edges)
        edits = prune_edges(g, scores, tau=None, max_edits=int(0.3 * g.num_edges))
        g, _ = apply_edits(g, edits, unreachable="ignore")
        src, dst = forward_non_edges(g)
        g, _ = apply_edits(g, grow_edges(g, src, dst, rng.random(src.size), max_edits=len(edits)), unreachable="ignore")
        rate = rng.random(g.num_neurons) * (rng.random(g.num_neurons) > 0.2)
        g, _ = apply_edits(g, remove_neurons(g, rate), unreachable="ignore")
        g.validate(unreachable="raise")
        assert g.num_inputs == 12 and (torch.bincount(g.edge_index[1], minlength=g.num_neurons)[g.inputs] == 0).all()
    assert g.num_input_edges > 0
    with pytest.raises(EditError, match="would remove input node"):
        apply_edits(g, [Edit("remove_neuron", int(g.neuron_ids[g.inputs[0]]), -1)])
    with pytest.raises(EditError, match="enters an input node"):
        ids = g.neuron_ids
        apply_edits(g, [Edit("add_edge", int(ids[g.inputs[0]]), int(ids[g.inputs[1]]))])


def test_input_pruning_may_disconnect_an_input_feature():
    g = sparse_start(3, 2, 1, fan_in=3, seed=0)
    from_first = (g.edge_index[0] == 0).numpy()
    scores = np.where(from_first, -1.0, 1.0)
    pruned, _ = apply_edits(g, prune_edges(g, scores, tau=0.0))
    assert not (pruned.edge_index[0] == 0).any()


@pytest.mark.slow
def test_set_style_evolution_moves_input_edges_at_a_constant_budget():
    torch.manual_seed(0)
    x = torch.rand(256, 16)
    y = (x[:, :8].sum(1) > x[:, 8:].sum(1)).long()
    net = FreeNet(sparse_start(16, 12, 2, fan_in=4, seed=0), in_features=16, seed=0)
    start = net.graph
    config = EvolveConfig(rounds=3, final_epochs=0, prune_score="magnitude", grow_score="gradient", remove_dead=False,
                          budget=EditBudget(prune_fraction=0.3, regrow=True), record_samples=128, lr=1e-2)
    history = FreeEvolve(net, config).run((x, y))
    assert all(r.num_edges == start.num_edges for r in history.rounds)
    before = set(map(tuple, start.edge_index.t().tolist()))
    after = set(map(tuple, net.edge_index.t().tolist()))
    moved = {e for e in after - before if e[0] < 16}
    assert moved, "some input connections were regrown"


def test_graphml_and_checkpoint_round_trip_with_input_nodes(tmp_path):
    net = FreeNet(sparse_start(8, 6, 2, fan_in=3, seed=0), in_features=8, seed=0)
    x = torch.randn(4, 8)
    write_graphml(net, tmp_path / "g.graphml")
    back = read_graphml(tmp_path / "g.graphml")
    assert torch.equal(back.inputs, net.inputs) and torch.allclose(back(x), net(x))
    text = (tmp_path / "g.graphml").read_text()
    assert 'attr.name="input_index"' in text and ">input<" in text
    save_freenet(net, tmp_path / "m.pt")
    loaded, _ = load_freenet(tmp_path / "m.pt")
    assert torch.equal(loaded(x), net(x)) and loaded.encoder_kind == "graph"


@pytest.mark.slow
def test_receptive_fields_are_drawn_from_input_edges(tmp_path):
    from viz.analysis import input_weights, plot_receptive_fields

    net = FreeNet(sparse_start(16, 6, 2, fan_in=3, seed=0), in_features=16, seed=0)
    rows = input_weights(net)
    g = net.graph
    src, dst = g.edge_index
    for s, d, w in zip(src.tolist(), dst.tolist(), g.weight.tolist()):
        if s < 16:
            assert rows[d, s] == pytest.approx(w)
    assert (rows != 0).sum() == g.num_input_edges
    plot_receptive_fields(net, (4, 4), tmp_path / "rf.png")
    assert (tmp_path / "rf.png").stat().st_size > 0
