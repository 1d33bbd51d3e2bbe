"""The activations added after the first five (gelu, silu, elu, leaky_relu) on every evaluator
path, against the per-neuron reference, forward and backward, in float64: dense and sparse blocks
(compiled kernel and PyTorch), the graph-input training path, one-call inference, hidden and
output neurons; and the exporters. gelu and silu need the pre-activation in the backward, so these
also hold the evaluators' kept ``z`` against autograd."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ncg.kernels.sparse as sparse
import ncg.kernels.sweep as sweep
from ncg import NCG, FreeNet
from ncg.activations import ACTIVATIONS
from ncg.build import sparse_start
from ncg.evolve import Edit, apply_edits
from ncg.io import export_onnx, to_module
from ncg.kernels.blocked import _evaluate
from ncg.schedule import build_plan
from strategies import dags

NEW = ["gelu", "silu", "elu", "leaky_relu"]
MODES = ["dense", "sparse", "auto"]
TOLERANCE = dict(rtol=1e-10, atol=1e-10)


def _pair(graph: NCG, in_features: int, mode: str, **kwargs) -> tuple[FreeNet, FreeNet]:
    fast = FreeNet(graph, in_features=in_features, seed=0, evaluator=mode, block_size=4, **kwargs).double()
    slow = FreeNet(graph, in_features=in_features, seed=0, evaluator="reference", **kwargs).double()
    slow.load_state_dict(fast.state_dict())
    return fast, slow


def _outputs_and_grads(net: FreeNet, x: torch.Tensor) -> list[torch.Tensor]:
    """The output and the gradients of the edge weights, the biases and the input."""
    net.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    out = net(x)
    out.square().sum().backward()
    return [out.detach(), *(torch.zeros_like(t) if t.grad is None else t.grad for t in (net.weight, net.bias, x))]


def _assert_paths_agree(fast: FreeNet, slow: FreeNet, x: torch.Tensor) -> None:
    names = ("out", "weight", "bias", "input")
    for got, want, name in zip(_outputs_and_grads(fast, x), _outputs_and_grads(slow, x), names):
        torch.testing.assert_close(got, want, **TOLERANCE, msg=lambda m: f"{name}: {m}")
    with torch.inference_mode():  # one-call inference where the plan is all sparse
        torch.testing.assert_close(fast(x), slow(x), **TOLERANCE)


@pytest.fixture(params=["cpp", "torch"])
def backend(request, monkeypatch):
    """Run the sweeps in the compiled kernel or in the PyTorch fallback."""
    if request.param == "torch":
        for module in (sweep, sparse):
            monkeypatch.setattr(module, "_cpp_for", lambda tensors, out: None)
    return request.param


def _input_graph(seed: int, edited: bool) -> NCG:
    """Input nodes, hidden neurons and outputs; edited: an edge pruned, one grown, a neuron gone."""
    graph = sparse_start(7, 16, 3, fan_in=3, seed=seed)
    if not edited:
        return graph
    src, dst = graph.edge_index
    existing = set(zip(src.tolist(), dst.tolist()))
    grown = next((i, o) for i in range(7) for o in range(9, 26) if (i, o) not in existing)
    edits = [Edit("prune_edge", int(src[0]), int(dst[0])), Edit("add_edge", *grown, 0.3),
             Edit("remove_neuron", 8, -1)]
    return apply_edits(graph, edits, unreachable="ignore")[0]


RANDOM_DAGS = given(graph=dags(max_neurons=30), mode=st.sampled_from(MODES), activation=st.sampled_from(NEW),
                    output_activation=st.sampled_from(["identity", "relu", *NEW]), batch=st.sampled_from([1, 5, 70]))


def _random_dag_matches(graph, mode, activation, output_activation, batch):
    fast, slow = _pair(graph, 3, mode, activation=activation, output_activation=output_activation)
    x = torch.randn(batch, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(batch))
    _assert_paths_agree(fast, slow, x)


@settings(max_examples=8, deadline=None)
@RANDOM_DAGS
def test_random_dags_match_the_reference(graph, mode, activation, output_activation, batch):
    _random_dag_matches(graph, mode, activation, output_activation, batch)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@RANDOM_DAGS
def test_many_random_dags_match_the_reference(graph, mode, activation, output_activation, batch):
    _random_dag_matches(graph, mode, activation, output_activation, batch)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 1000), edited=st.booleans(), mode=st.sampled_from(MODES),
       activation=st.sampled_from(NEW), output_activation=st.sampled_from(["identity", *NEW]),
       batch=st.sampled_from([1, 33, 130]))
def test_graphs_with_input_nodes_match_the_reference(seed, edited, mode, activation, output_activation, batch):
    graph = _input_graph(seed, edited)
    fast, slow = _pair(graph, graph.num_inputs, mode, activation=activation, output_activation=output_activation)
    x = torch.randn(batch, graph.num_inputs, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    _assert_paths_agree(fast, slow, x)
    # the training path without an input gradient: no u, nothing pushed into the input nodes
    for net in (fast, slow):
        net.zero_grad()
        net(x).square().sum().backward()
    torch.testing.assert_close(fast.weight.grad, slow.weight.grad, **TOLERANCE)
    torch.testing.assert_close(fast.bias.grad, slow.bias.grad, **TOLERANCE)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("activation", NEW)
def test_both_backends_match_the_reference(backend, mode, activation):
    # 130 columns: full float64 tiles of every instruction set, and a partial last one
    x = torch.randn(130, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    graph = _input_graph(1, edited=True)
    _assert_paths_agree(*_pair(graph, 7, mode, activation=activation, output_activation="gelu"), x)
    dag = NCG.random_dag(40, density=0.3, num_outputs=3, seed=2)
    _assert_paths_agree(*_pair(dag, 7, mode, activation="relu", output_activation=activation), x)


def test_z_is_kept_only_where_a_derivative_needs_it():
    plan = build_plan(NCG.random_dag(12, density=0.5, num_outputs=2, seed=0).edge_index, 12, mode="auto")
    weight = torch.randn(plan.src_pos.numel(), dtype=torch.float64)
    for name, a in ACTIVATIONS.items():
        codes = torch.full((12,), a.code, dtype=torch.uint8)
        u = torch.randn(12, 4, dtype=torch.float64)
        h, z, _ = _evaluate(u, weight, codes, plan)
        assert (z is not None) == a.needs_preactivation, name
        assert (h is u) != a.needs_preactivation, name  # h-only: one buffer, u overwritten in place


@pytest.mark.parametrize("activation", NEW)
def test_the_exported_module_agrees(activation):
    net = FreeNet(_input_graph(0, edited=False), in_features=7, activation=activation, output_activation=activation)
    x = torch.randn(9, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(to_module(net)(x), net(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("activation", NEW)
def test_onnx_agrees(activation, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    net = FreeNet(_input_graph(0, edited=False), in_features=7, activation=activation, output_activation=activation)
    session = ort.InferenceSession(str(export_onnx(net, tmp_path / "net.onnx")), providers=["CPUExecutionProvider"])
    x = torch.randn(9, 7, generator=torch.Generator().manual_seed(0))
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.as_tensor(got), net(x), atol=1e-5, rtol=0)
