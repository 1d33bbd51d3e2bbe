"""One parameter count: ``FreeNet.num_parameters()`` is PyTorch's ``sum(p.numel() for p in
net.parameters())`` for every kind of FreeNet, and input nodes hold no bias parameter."""
from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncg import NCG, FreeNet, load_freenet, save_freenet
from ncg.build import sparse_start
from ncg.checkpoint import payload_checksum
from ncg.evolve import Edit, apply_edits
from ncg.evolve.apply import rewire
from ncg.io import read_graphml, summary, write_graphml
from tests.strategies import dags


def pytorch_count(net: FreeNet) -> int:
    return sum(p.numel() for p in net.parameters())


def expected_count(net: FreeNet) -> int:
    """Edges + one bias per non-input neuron + a learned encoder + a linear decoder."""
    count = net.edge_index.shape[1] + net.num_neurons - net.inputs.numel()
    if net.encoder_kind == "linear":
        count += net.num_neurons * net.in_features
    if net.decoder_kind == "linear":
        count += (net.graph_num_outputs + 1) * net.out_features
    return count


@st.composite
def input_graphs(draw) -> NCG:
    """Random whole-network graphs: input nodes, hidden neurons and outputs."""
    inputs, hidden, outputs = draw(st.integers(1, 6)), draw(st.integers(0, 8)), draw(st.integers(1, 3))
    density = draw(st.sampled_from([0.2, 0.5, 1.0]))
    return sparse_start(inputs, hidden, outputs, density=density, seed=draw(st.integers(0, 2**31 - 1)))


@st.composite
def freenets(draw) -> FreeNet:
    """FreeNets of every encoder kind (graph, linear, random) and decoder kind."""
    if draw(st.booleans()):
        graph, encoder = draw(input_graphs()), "graph"
        in_features = graph.num_inputs
    else:
        graph, encoder = draw(dags(max_neurons=12)), draw(st.sampled_from(["linear", "random"]))
        in_features = draw(st.integers(1, 5))
    out_features = graph.num_outputs + draw(st.sampled_from([0, 0, 2]))
    return FreeNet(graph, in_features=in_features, out_features=out_features, encoder=encoder, seed=0)


def random_edits(graph: NCG, seed: int) -> list[Edit]:
    """Prune some edges, remove some hidden neurons, add a neuron fed by an earlier one."""
    rng = np.random.default_rng(seed)
    ids = graph.neuron_ids.numpy()
    src, dst = graph.edge_index.numpy()
    edits = [Edit("prune_edge", int(ids[s]), int(ids[d])) for s, d in zip(src, dst) if rng.random() < 0.3]
    fixed = set(graph.inputs.tolist()) | set(graph.outputs.tolist())
    hidden = [v for v in range(graph.num_neurons) if v not in fixed]
    edits += [Edit("remove_neuron", int(ids[v]), -1) for v in hidden if rng.random() < 0.4]
    removed = {e.source for e in edits if e.op == "remove_neuron"}
    edits = [e for e in edits if e.op != "prune_edge" or not {e.source, e.target} & removed]
    anchor = int(ids[graph.order[0]])
    if anchor not in removed:
        new = int(ids.max()) + 1
        edits += [Edit("add_neuron", anchor, new), Edit("add_edge", anchor, new, weight=0.5)]
    return edits


@settings(max_examples=60, deadline=None)
@given(freenets(), st.integers(0, 2**31 - 1))
def test_pytorch_count_is_num_parameters_after_edits(net, seed):
    assert pytorch_count(net) == net.num_parameters() == expected_count(net)
    assert net.bias.shape == (net.num_neurons - net.inputs.numel(),)
    new, maps = apply_edits(net.graph, random_edits(net.graph, seed), unreachable="ignore")
    net.set_graph(new, neuron_map=maps.neuron_map)
    assert pytorch_count(net) == net.num_parameters() == expected_count(net)
    assert summary(net)["parameters"] == pytorch_count(net)


@settings(max_examples=30, deadline=None)
@given(input_graphs())
def test_input_nodes_hold_no_bias(graph):
    net = FreeNet(graph, in_features=graph.num_inputs)
    assert not set(net.bias_neurons.tolist()) & set(graph.inputs.tolist())
    full = net.neuron_bias()
    assert torch.equal(full[net.inputs], torch.zeros(graph.num_inputs))
    assert torch.equal(full[net.bias_neurons], net.bias.detach())
    assert torch.equal(net.graph.bias[net.bias_neurons], graph.bias[net.bias_neurons])
    assert summary(net)["graph_parameters"] - net.num_parameters() == graph.num_inputs


def test_random_encoder_is_a_buffer_that_follows_neurons():
    net = FreeNet(NCG.complete(5, num_outputs=2, seed=0), in_features=3, encoder="random", seed=0)
    assert "encoder.weight" in dict(net.named_buffers()) and "encoder.weight" in net.state_dict()
    assert "encoder.weight" not in dict(net.named_parameters())
    rows = net.encoder.weight.clone()
    small, maps = apply_edits(net.graph, [Edit("remove_neuron", 1, -1)], unreachable="ignore")
    net.set_graph(small, neuron_map=maps.neuron_map)
    assert "encoder.weight" in dict(net.named_buffers())
    assert torch.equal(net.encoder.weight, rows[maps.neuron_map])
    assert net.num_parameters() == pytorch_count(net) == small.num_edges + small.num_neurons


def test_gradients_reach_the_bias_of_non_input_neurons():
    graph = sparse_start(4, 5, 2, density=0.6, seed=3)
    fast, slow = FreeNet(graph, in_features=4), FreeNet(graph, in_features=4, evaluator="reference")
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(0))
    for net in (fast, slow):
        net(x).square().sum().backward()
    torch.testing.assert_close(fast.bias.grad, slow.bias.grad)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), slow(x))  # the one-call inference path


def _full_bias_state(net: FreeNet) -> dict:
    """``net``'s state_dict as older versions wrote it: a bias for every neuron (junk at inputs)."""
    state = dict(net.state_dict())
    full = torch.full((net.num_neurons,), 7.0)
    full[net.bias_neurons] = net.bias.detach()
    state["bias"] = full
    return state


def test_an_older_state_dict_with_a_bias_per_neuron_loads():
    graph = sparse_start(4, 6, 2, density=0.7, seed=1)
    net = FreeNet(graph, in_features=4, seed=0)
    with torch.no_grad():
        net.bias.normal_(generator=torch.Generator().manual_seed(2))
    x = torch.randn(3, 4)
    other = FreeNet(graph, in_features=4, seed=5)
    other.load_state_dict(_full_bias_state(net))
    assert torch.equal(other.bias, net.bias) and torch.equal(other(x), net(x))
    # another topology (an evolved model) is rebuilt from the older state_dict too
    small, _ = apply_edits(graph, [Edit("remove_neuron", 5, -1)], unreachable="ignore")
    evolved = FreeNet(small, in_features=4, seed=0)
    other.load_state_dict(_full_bias_state(evolved))
    assert other.num_neurons == small.num_neurons and torch.equal(other(x), evolved(x))


def test_an_older_checkpoint_with_a_bias_per_neuron_loads(tmp_path):
    net = FreeNet(sparse_start(4, 6, 2, density=0.7, seed=1), in_features=4, seed=0)
    with torch.no_grad():
        net.bias.normal_(generator=torch.Generator().manual_seed(2))
    path = tmp_path / "net.pt"
    save_freenet(net, path, extra={"epoch": 2})
    payload = torch.load(path, weights_only=True)
    payload["version"], payload["state_dict"] = 2, _full_bias_state(net)
    payload["checksum"] = payload_checksum(payload)
    torch.save(payload, path)
    loaded, extra = load_freenet(path)
    x = torch.randn(3, 4)
    assert extra == {"epoch": 2} and torch.equal(loaded.bias, net.bias) and torch.equal(loaded(x), net(x))
    assert loaded.num_parameters() == pytorch_count(loaded) == net.num_parameters()


def test_graphml_round_trip_keeps_biases_and_count(tmp_path):
    net = FreeNet(sparse_start(4, 6, 2, density=0.7, seed=1), in_features=4, out_features=3, seed=0)
    with torch.no_grad():
        net.bias.normal_(generator=torch.Generator().manual_seed(2))
    path = tmp_path / "net.graphml"
    write_graphml(net, path, inline_dense=True)
    loaded = read_graphml(path)
    x = torch.randn(3, 4)
    assert torch.equal(loaded.bias, net.bias) and torch.equal(loaded(x), net(x))
    assert torch.equal(loaded.graph.bias, net.graph.bias)
    assert loaded.num_parameters() == pytorch_count(loaded) == net.num_parameters()
    # a file of an older version: its checksum summed a bias per node, input nodes included
    text = path.read_text()
    legacy = payload_checksum({**net.state_dict(), "bias": net.neuron_bias().detach()})
    path.write_text(text.replace(payload_checksum(net.state_dict()), legacy))
    assert legacy in path.read_text()
    assert torch.equal(read_graphml(path)(x), net(x))


def test_rewire_keeps_the_adam_state_of_surviving_biases():
    graph = sparse_start(3, 6, 2, density=0.8, seed=4)
    net = FreeNet(graph, in_features=3, seed=0)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        optimizer.zero_grad()
        net(x).square().mean().backward()
        optimizer.step()
    old_ids = net.neuron_ids[net.bias_neurons].tolist()
    old_state = {k: v.clone() for k, v in optimizer.state[net.bias].items()}
    new, maps = apply_edits(net.graph, [Edit("remove_neuron", 4, -1), Edit("add_neuron", 5, 99),
                                        Edit("add_edge", 5, 99, weight=0.1)], unreachable="ignore")
    rewire(net, new, maps, optimizer)
    state = optimizer.state[net.bias]
    assert state["exp_avg"].shape == net.bias.shape
    for k, neuron in enumerate(net.neuron_ids[net.bias_neurons].tolist()):
        if neuron == 99:  # new: first moment 0, second moment the survivors' mean
            assert state["exp_avg"][k] == 0
        else:
            assert state["exp_avg"][k] == old_state["exp_avg"][old_ids.index(neuron)]
            assert state["exp_avg_sq"][k] == old_state["exp_avg_sq"][old_ids.index(neuron)]
    optimizer.zero_grad()
    net(x).square().mean().backward()
    optimizer.step()  # the optimiser trains the new parameters
