from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from ncg import NCG, FreeNet, SquareReLU
from ncg.errors import NCGError
from strategies import dags


def _pair(graph, **kw):
    """The same FreeNet with the blocked and the reference evaluator."""
    fast = FreeNet(graph, in_features=3, seed=0, block_size=kw.pop("block_size", 4), **kw)
    slow = FreeNet(graph, in_features=3, seed=0, evaluator="reference", **kw)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


def _grads(model, x):
    model.zero_grad()
    model(x).square().sum().backward()
    return {
        k: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for k, p in model.named_parameters()
        if p.requires_grad
    }


@given(dags(), st.sampled_from(["relu", "square_relu", "tanh", "sigmoid", "identity"]), st.integers(1, 9))
def test_blocked_matches_reference_forward_and_backward(graph, activation, batch):
    fast, slow = _pair(graph, activation=activation)
    x = torch.randn(batch, 3, generator=torch.Generator().manual_seed(batch))
    torch.testing.assert_close(fast(x), slow(x), atol=1e-5, rtol=1e-4)
    g_fast, g_slow = _grads(fast, x), _grads(slow, x)
    assert g_fast.keys() == g_slow.keys()
    for k in g_fast:
        torch.testing.assert_close(g_fast[k], g_slow[k], atol=1e-4, rtol=1e-3, msg=k)


@pytest.mark.parametrize("n", [1, 2, 17, 40])
def test_complete_dag_matches_reference(n):
    fast, slow = _pair(NCG.complete(n, num_outputs=1, seed=n), activation="square_relu", block_size=8)
    x = torch.randn(5, 3)
    torch.testing.assert_close(fast(x), slow(x), atol=1e-5, rtol=1e-4)


def test_mlp_bridge_reproduces_outputs_and_gradients():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    net = FreeNet.from_mlp(mlp)
    x = torch.randn(32, 784)
    assert (net(x) - mlp(x)).abs().max().item() <= 1e-5
    target = torch.randint(0, 10, (32,))
    nn.functional.cross_entropy(mlp(x), target).backward()
    nn.functional.cross_entropy(net(x), target).backward()
    l1, l2, l3 = mlp[0], mlp[2], mlp[4]
    # Edges are laid out layer by layer, target-major: weight[j, i] of each Linear.
    edge_grad = torch.cat([l2.weight.grad.flatten(), l3.weight.grad.flatten()])
    torch.testing.assert_close(net.weight.grad, edge_grad, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(net.bias.grad, torch.cat([l.bias.grad for l in (l1, l2, l3)]), atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(net.encoder.weight.grad[:256], l1.weight.grad, atol=1e-6, rtol=1e-4)


def test_mlp_bridge_with_square_relu_and_linear_decoder():
    mlp = nn.Sequential(nn.Linear(5, 4), SquareReLU(), nn.Linear(4, 3), SquareReLU(), nn.Linear(3, 2))
    net = FreeNet.from_mlp(mlp)
    x = torch.randn(7, 5)
    torch.testing.assert_close(net(x), mlp(x), atol=1e-5, rtol=1e-5)


def test_mlp_graph_reads_the_layers():
    from ncg.build import mlp_graph

    mlp = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2), nn.Sigmoid())
    read = mlp_graph(mlp)
    assert (read.graph.num_neurons, read.graph.num_edges) == (9, 4 * 3 + 3 * 2)
    assert read.graph.outputs.tolist() == [7, 8] and read.in_features == 5
    assert (read.activation, read.output_activation) == ("tanh", "sigmoid")
    torch.testing.assert_close(read.graph.weight[:12], mlp[2].weight.detach().flatten())
    assert torch.equal(read.first_weight, mlp[0].weight.detach())
    single = mlp_graph(nn.Sequential(nn.Linear(3, 2)))
    assert single.activation is None and single.graph.num_edges == 0
    assert FreeNet.from_mlp(nn.Sequential(nn.Linear(3, 2))).activation == "relu"
    with pytest.raises(NCGError, match="mlp must be a non-empty nn.Sequential, got Linear"):
        mlp_graph(nn.Linear(3, 2))


def test_mlp_bridge_rejects_unsupported_modules():
    with pytest.raises(NCGError, match=r"mlp\[1\] is Dropout"):
        FreeNet.from_mlp(nn.Sequential(nn.Linear(3, 3), nn.Dropout(), nn.Linear(3, 1)))
    with pytest.raises(NCGError, match="expects 4 inputs but the previous layer gives 3"):
        FreeNet.from_mlp(nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(4, 1)))


def test_bad_arguments_are_named():
    g = NCG.complete(4)
    with pytest.raises(NCGError, match="activation must be one of"):
        FreeNet(g, in_features=2, activation="swish")
    with pytest.raises(NCGError, match="in_features must be a positive int"):
        FreeNet(g, in_features=0)
    with pytest.raises(NCGError, match="decoder='identity' needs out_features"):
        FreeNet(g, in_features=2, out_features=3, decoder="identity")
    with pytest.raises(NCGError, match="block_size must be an int >= 1"):
        FreeNet(g, in_features=2, block_size="4")
    with pytest.raises(NCGError, match="out_features must be a positive int"):
        FreeNet(g, in_features=2, out_features=0)
    with pytest.raises(NCGError, match="graph must be an NCG"):
        FreeNet(g, in_features=2).set_graph("x")
    with pytest.raises(NCGError, match="expects in_features=2"):
        FreeNet(g, in_features=2)(torch.zeros(1, 5))


def test_linear_decoder_and_random_encoder():
    net = FreeNet(NCG.complete(6, num_outputs=2), in_features=4, out_features=3, encoder="random", seed=0)
    assert isinstance(net.decoder, nn.Linear) and not net.encoder.weight.requires_grad
    assert net(torch.randn(2, 2, 2)).shape == (2, 3)
    assert repr(net) == "FreeNet(in_features=4, neurons=6, edges=15, outputs=2, out_features=3, activation='relu')"


def test_seed_fixes_initialisation():
    a = FreeNet(NCG.complete(6, seed=1), in_features=4, seed=5)
    b = FreeNet(NCG.complete(6, seed=1), in_features=4, seed=5)
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(va, vb), ka


def test_plan_is_cached_and_rebuilt_after_an_edit():
    net = FreeNet(NCG.complete(6), in_features=2)
    plan, _ = net.plan()
    assert net.plan()[0] is plan
    graph = net.graph
    keep = torch.arange(graph.num_edges) % 2 == 0
    graph.edge_index, graph.weight = graph.edge_index[:, keep], graph.weight[keep]
    net.set_graph(graph)
    assert net.plan()[0] is not plan and net.plan()[0].src_pos.numel() == int(keep.sum())


def test_set_graph_with_neuron_map_keeps_encoder_rows():
    net = FreeNet(NCG.complete(4, num_outputs=1), in_features=3, seed=0)
    old = net.encoder.weight.detach().clone()
    smaller = NCG(torch.tensor([[0, 1], [2, 2]]), 3, torch.tensor([2]))
    net.set_graph(smaller, neuron_map=torch.tensor([0, 2, 3]))
    torch.testing.assert_close(net.encoder.weight.detach(), old[[0, 2, 3]])
    with pytest.raises(NCGError, match="neuron_map is required"):
        net.set_graph(NCG.complete(5))


def test_autocast_bfloat16_runs_and_stays_close():
    net = FreeNet(NCG.complete(20, num_outputs=3, seed=0), in_features=8, seed=0)
    x = torch.randn(16, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
    torch.testing.assert_close(y.float(), net(x), atol=0.1, rtol=0.05)


def test_double_precision_matches_reference():
    fast, slow = _pair(NCG.complete(12, num_outputs=2, seed=0))
    fast, slow = fast.double(), slow.double()
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(fast(x), slow(x), atol=1e-12, rtol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    net = FreeNet(NCG.complete(30, num_outputs=3, seed=0), in_features=5, seed=0)
    x = torch.randn(8, 5)
    torch.testing.assert_close(net.cuda()(x.cuda()).cpu(), net.cpu()(x), atol=1e-4, rtol=1e-4)


def test_empty_batch_gives_empty_output():
    net = FreeNet(NCG.complete(5, num_outputs=2, seed=0), in_features=3)
    assert net(torch.randn(0, 3)).shape == (0, 2)


def test_changing_the_activation_after_a_forward_takes_effect():
    net = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=3, seed=0)
    x = torch.randn(4, 3)
    relu_out = net(x)
    net.activation = "tanh"
    reference = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=3, seed=0, activation="tanh")
    assert torch.allclose(net(x), reference(x)) and not torch.allclose(net(x), relu_out)


def test_load_state_dict_of_an_evolved_model_resizes_a_fresh_one():
    from ncg.evolve import Edit, apply_edits

    fresh = FreeNet(NCG.complete(8, num_outputs=2, seed=0), in_features=3, seed=0)
    graph, _ = apply_edits(fresh.graph, [Edit("remove_neuron", 1, -1), Edit("prune_edge", 0, 2),
                                         Edit("add_neuron", 3, 20), Edit("add_edge", 20, 7, weight=0.5)])
    evolved = FreeNet(graph, in_features=3, seed=1)
    fresh.load_state_dict(evolved.state_dict())
    x = torch.randn(4, 3)
    assert torch.equal(fresh(x), evolved(x))
    broken = dict(evolved.state_dict())
    del broken["order"]
    with pytest.raises(NCGError, match="load_freenet"):
        FreeNet(NCG.complete(8, num_outputs=2), in_features=3).load_state_dict(broken)


def test_square_relu_default_init_keeps_a_deep_complete_dag_finite():
    x = torch.randn(64, 784, generator=torch.Generator().manual_seed(123))  # not the encoder's stream
    graph = NCG.complete(1024, num_outputs=10, seed=0)
    net = FreeNet(graph, in_features=784, activation="square_relu", encoder="random", seed=0)
    assert net.init_scale == 0.5 and torch.isfinite(net(x)).all()
    unscaled = FreeNet(graph, in_features=784, activation="square_relu", encoder="random", seed=0, init_scale=1.0)
    assert not torch.isfinite(unscaled(x)).all()  # what the default prevents
    assert torch.equal(unscaled.weight, graph.weight) and FreeNet(graph, in_features=784).init_scale == 1.0
