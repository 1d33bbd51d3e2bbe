"""The paths that make a learned FreeNet's cost follow its edges: one-call inference
(`csr_infer`), the graph-input training path that builds no `u`, and the backward that pushes
nothing into input nodes. Each is held against the per-neuron reference evaluator."""
from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ncg import NCG, FreeNet
from ncg.activations import ACTIVATIONS as TABLE
from ncg.build import sparse_start
from ncg.errors import NCGError
from ncg.evolve import Edit, apply_edits
from ncg.kernels.sparse import csr_infer, graph_train_forward
from ncg.kernels.sweep import cpp_available
from ncg.schedule import build_plan

ACTIVATIONS = sorted(TABLE)


def _pair(graph, evaluator: str = "auto", **kwargs) -> tuple[FreeNet, FreeNet]:
    net = FreeNet(graph, in_features=graph.num_inputs, evaluator=evaluator, **kwargs)
    ref = FreeNet(graph, in_features=graph.num_inputs, evaluator="reference", **kwargs)
    ref.load_state_dict(net.state_dict())
    return net, ref


def _edited(graph):
    """The graph after a prune, an added input edge and a removed hidden neuron."""
    src, dst = graph.edge_index
    hidden = [v for v in range(graph.num_neurons) if v not in set(graph.inputs.tolist()) | set(graph.outputs.tolist())]
    existing = set(zip(src.tolist(), dst.tolist()))
    missing = next((i, o) for i in graph.inputs.tolist() for o in graph.outputs.tolist() if (i, o) not in existing)
    edits = [Edit("prune_edge", int(src[0]), int(dst[0])), Edit("add_edge", *missing, 0.3),
             Edit("remove_neuron", hidden[0], -1)]
    return apply_edits(graph, edits, unreachable="ignore")[0]


RANDOM_CASES = given(seed=st.integers(0, 10_000), fan_in=st.integers(1, 6),
                     batch=st.sampled_from([1, 2, 63, 64, 65, 130, 300]), activation=st.sampled_from(ACTIVATIONS),
                     edited=st.booleans())
"""Random graphs with input nodes (edited or not), batches across the kernels' tile widths, every
activation."""


def _random_case(seed: int, fan_in: int, batch: int, activation: str, edited: bool):
    """A float64 FreeNet on the sparse evaluator, its reference twin and a batch."""
    graph = sparse_start(9, 14, 3, fan_in=fan_in, seed=seed)
    graph = _edited(graph) if edited else graph
    net, ref = _pair(graph, "sparse", activation=activation)
    x = torch.randn(batch, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    return net.double(), ref.double(), x


@RANDOM_CASES
def test_inference_matches_the_reference(seed, fan_in, batch, activation, edited):
    net, ref, x = _random_case(seed, fan_in, batch, activation, edited)
    with torch.inference_mode():
        fast = net(x)
    torch.testing.assert_close(fast, ref(x).detach(), rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(not cpp_available(), reason="needs the compiled kernel")
def test_inference_runs_in_one_compiled_call_and_caches_its_gathers():
    net = FreeNet(sparse_start(20, 30, 4, fan_in=5, seed=0), in_features=20, evaluator="sparse")
    x = torch.randn(5, 20)
    with torch.no_grad():
        first = net(x)
        frozen = net._state().fast
        cached = frozen._parameters
        assert frozen.checked and cached is not None
        assert net(x).equal(first) and frozen._parameters is cached  # nothing changed: nothing gathered again
        net.weight.mul_(2.0)  # an optimiser step bumps the version: gathered again
        assert not net(x).equal(first) and frozen._parameters is not cached


def test_graph_input_training_matches_the_reference_forward_and_backward():
    for evaluator in ("sparse", "dense", "auto"):
        for x_needs_grad in (False, True):
            net, ref = _pair(sparse_start(12, 20, 3, fan_in=5, seed=1), evaluator)
            net, ref = net.double(), ref.double()
            x = torch.randn(130, 12, dtype=torch.float64, requires_grad=x_needs_grad)
            grads = []
            for model in (net, ref):
                x.grad = None
                model(x).square().sum().backward()
                grads.append([model.weight.grad, model.bias.grad, x.grad])
            for fast, slow in zip(*grads):
                if slow is None:
                    assert fast is None
                else:
                    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


@RANDOM_CASES
def test_one_call_training_matches_the_reference(seed, fan_in, batch, activation, edited):
    net, ref, x = _random_case(seed, fan_in, batch, activation, edited)
    target = torch.randn(batch, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 1))
    for model in (net, ref):
        (model(x) * target).sum().backward()
    frozen = net._state().fast
    assert frozen.trains_in_one_call == (frozen.inputs_in_order and not TABLE[activation].needs_preactivation)
    assert (net.execution_plan().training == "one_call") == frozen.trains_in_one_call
    assert frozen.train_checked == (frozen.trains_in_one_call and cpp_available())
    torch.testing.assert_close(net(x), ref(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(net.weight.grad, ref.weight.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(net.bias.grad, ref.bias.grad, rtol=1e-10, atol=1e-10)


def test_one_call_training_equals_the_blocked_evaluator():
    # the same kernel sweeps both: outputs and weight gradients agree bit for bit
    net = FreeNet(sparse_start(30, 40, 5, fan_in=6, seed=3), in_features=30, evaluator="sparse")
    x = torch.randn(200, 30)
    assert net.execution_plan().training == "one_call"  # inputs in feature order, all sparse, relu
    results = []
    for path in ("one_call", "blocked"):
        net.zero_grad(set_to_none=True)
        net.path = path
        out = net(x)
        out.square().sum().backward()
        results.append((out.detach(), net.weight.grad, net.bias.grad))
    (out, dw, db), (out_ref, dw_ref, db_ref) = results
    assert out.equal(out_ref) and dw.equal(dw_ref)
    torch.testing.assert_close(db, db_ref)


def test_one_call_training_reads_strided_features():
    net = FreeNet(sparse_start(30, 40, 5, fan_in=6, seed=3), in_features=30, evaluator="sparse")
    x = torch.randn(30, 70).t()  # [70, 30] with column stride 70, as a transposed batch arrives
    results = []
    for batch in (x, x.contiguous(), torch.randn(70, 60)[:, ::2].copy_(x)):
        net.zero_grad(set_to_none=True)
        out = net(batch)
        out.square().sum().backward()
        results.append((out.detach(), net.weight.grad))
    for out, dw in results[1:]:
        assert out.equal(results[0][0]) and dw.equal(results[0][1])


@pytest.mark.skipif(not cpp_available(), reason="needs the compiled kernel")
def test_an_activation_hook_sees_every_neuron_on_the_one_call_path():
    # a coactivation recorder's epoch trains on the one-call path too, and sees what the blocked path computes
    net = FreeNet(sparse_start(30, 40, 5, fan_in=6, seed=3), in_features=30, evaluator="sparse")
    x = torch.randn(70, 30)
    net(x).square().sum().backward()
    grads = (net.weight.grad.clone(), net.bias.grad.clone())
    net.zero_grad(set_to_none=True)
    seen = []
    net.activation_hook = seen.append
    net(x).square().sum().backward()
    assert net._state().fast.train_checked and len(seen) == 1 and not seen[0].requires_grad
    assert net.weight.grad.equal(grads[0]) and net.bias.grad.equal(grads[1])
    net.activation_hook = None
    torch.testing.assert_close(seen[0], net.neuron_activations(x))


@pytest.mark.skipif(not cpp_available(), reason="needs the compiled kernel")
def test_graph_train_forward_checks_its_arguments(monkeypatch):
    plan = build_plan(torch.tensor([[0, 0], [1, 2]]), 3, mode="sparse")  # input node 0 -> neurons 1 and 2
    codes = torch.tensor([0, 1, 1], dtype=torch.uint8)
    x, bias, weight = torch.ones(4, 1), torch.zeros(2), torch.ones(2)
    rows = torch.tensor([1, 2])
    with pytest.raises(NCGError, match="bias_pos"):
        graph_train_forward(x, bias, weight, plan, codes, torch.tensor([1, 1]), rows)
    with pytest.raises(NCGError, match="bias must be"):
        graph_train_forward(x, torch.zeros(3), weight, plan, codes, rows, rows)
    with pytest.raises(NCGError, match="out_pos"):
        graph_train_forward(x, bias, weight, plan, codes, rows, torch.tensor([3]))
    with pytest.raises(NCGError, match="pre-activation"):
        graph_train_forward(x, bias, weight, plan, torch.tensor([0, 1, TABLE["gelu"].code], dtype=torch.uint8),
                            rows, rows)
    assert graph_train_forward(x, bias, weight, plan, codes, rows, rows).shape == (2, 4)
    monkeypatch.setattr("ncg.kernels.sparse._cpp_for", lambda *args: None)
    assert graph_train_forward(x, bias, weight, plan, codes, rows, rows) is None


def test_a_batch_of_one_leaves_the_bias_untouched():
    # at batch 1 `bias[:, None].expand(-1, 1)` is already contiguous: a view that must not be written
    net, ref = _pair(sparse_start(5, 0, 3, fan_in=2, seed=0))
    bias = net.bias.detach().clone()
    for batch in (1, 3, 1):
        x = torch.randn(batch, 5)
        with torch.no_grad():
            torch.testing.assert_close(net(x), ref(x))
        net(x).sum().backward()
    assert net.bias.detach().equal(bias)


def test_forward_states_still_gives_the_input_rows_gradient():
    # RigL-style scoring reads u.grad; an input node's row is sum over its out-edges of w * g[target]
    net, _ = _pair(sparse_start(6, 8, 2, fan_in=3, seed=0), "sparse")
    out, u, _ = net.forward_states(torch.randn(4, 6))
    u.retain_grad()
    out.sum().backward()
    position = net.plan()[0].position
    src, dst = net.edge_index
    for node in net.inputs.tolist():
        want = torch.zeros(4)
        for e in (src == node).nonzero().flatten().tolist():
            want += net.weight[e].detach() * u.grad[position[dst[e]]]
        torch.testing.assert_close(u.grad[position[node]], want)


@pytest.mark.skipif(not cpp_available(), reason="needs the compiled kernel")
def test_csr_infer_checks_its_arguments():
    plan = build_plan(torch.tensor([[0], [1]]), 2, mode="sparse")
    codes = torch.tensor([0, 1], dtype=torch.uint8)
    args = (plan, torch.tensor([0.0, 0.5]), torch.tensor([2.0]), codes, torch.tensor([0]))
    with pytest.raises(NCGError, match="out_pos"):
        csr_infer(torch.ones(1, 1), *args, torch.tensor([2]))
    with pytest.raises(NCGError, match="bias must be"):
        csr_infer(torch.ones(1, 1, dtype=torch.float64), *args, torch.tensor([1]))
    assert csr_infer(torch.ones(1, 1, requires_grad=True), *args, torch.tensor([1])) is None


def test_training_after_an_inference_mode_evaluation():
    # the plan built inside torch.inference_mode() must not be made of inference tensors
    for graph in (sparse_start(6, 8, 2, fan_in=3, seed=0), sparse_start(6, 8, 2, density=1.0, seed=0)):
        net = FreeNet(graph, in_features=6)
        x = torch.randn(3, 6)
        with torch.inference_mode():
            before = net(x)
        net(x).sum().backward()
        assert net.weight.grad is not None and torch.allclose(net(x), before)


def _two_thread_forward(queue) -> None:
    torch.set_num_threads(2)
    net = FreeNet(sparse_start(30, 60, 4, fan_in=10, seed=0), in_features=30, evaluator="sparse")
    with torch.no_grad():
        queue.put(net(torch.ones(512, 30)).sum().item())


@pytest.mark.skipif(not cpp_available(), reason="needs the compiled kernel")
def test_kernel_threads_survive_a_fork():
    # the kernels' thread pool lives in the parent; a forked child (DataLoader workers) gets none of
    # its threads and must start its own instead of waiting for them
    import multiprocessing

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        _two_thread_forward(queue)
        expected = queue.get(timeout=5)
        child = context.Process(target=_two_thread_forward, args=(queue,))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == 0, "the forked child hung or failed"
        assert queue.get(timeout=5) == expected
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif(not cpp_available(), reason="needs the compiled kernel")
def test_results_do_not_depend_on_which_thread_runs_a_chunk():
    net = FreeNet(sparse_start(30, 60, 4, fan_in=10, seed=0), in_features=30, evaluator="sparse")
    x = torch.randn(700, 30)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for _ in range(5):
            net.zero_grad()
            out = net(x)
            out.square().sum().backward()
            runs.append((out.detach(), net.weight.grad.clone()))
        assert all(o.equal(runs[0][0]) and g.equal(runs[0][1]) for o, g in runs)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("batch", [128, 300, 320, 520])
def test_edge_gradients_of_wide_rows_match_the_reference(batch):
    # rows with 16+ incoming edges take the batched edge-gradient paths of the compiled kernel
    # (sixteen sums at once over 128-column tiles; eight over the 64 columns left at batch 320);
    # float32 against the float64 reference
    net, ref = _pair(sparse_start(40, 60, 3, fan_in=35, seed=2), "sparse")
    ref = ref.double()
    x = torch.randn(batch, 40, generator=torch.Generator().manual_seed(batch))
    net(x).square().sum().backward()
    ref(x.double()).square().sum().backward()
    torch.testing.assert_close(net.weight.grad, ref.weight.grad.float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(net.bias.grad, ref.bias.grad.float(), rtol=1e-4, atol=1e-4)


def test_the_execution_plan_names_the_path_and_why():
    whole = FreeNet(sparse_start(30, 40, 5, fan_in=6, seed=3), in_features=30, evaluator="sparse")
    plan = whole.execution_plan()
    assert (plan.training, plan.inference, plan.path, plan.dense_blocks) == ("one_call", "one_call", "auto", 0)
    assert "one compiled call" in plan.reason and whole.execution_plan() is plan  # cached with the plan
    encoded = FreeNet(NCG.complete(8, num_outputs=2), in_features=3)
    assert (encoded.execution_plan().training, encoded.execution_plan().inference) == ("blocked", "blocked")
    assert "encoder" in encoded.execution_plan().reason
    dense = FreeNet(sparse_start(30, 40, 5, fan_in=6, seed=3), in_features=30, evaluator="dense")
    assert dense.execution_plan().training == "blocked" and "dense" in dense.execution_plan().reason
    silu = FreeNet(sparse_start(30, 40, 5, fan_in=6, seed=3), in_features=30, evaluator="sparse", activation="silu")
    assert silu.execution_plan().training in ("one_call", "blocked")
    reference = FreeNet(sparse_start(30, 40, 5, fan_in=6, seed=3), in_features=30, evaluator="reference")
    assert reference.execution_plan().training == reference.execution_plan().inference == "reference"


def test_the_execution_plan_is_immutable():
    plan = FreeNet(NCG.complete(8, num_outputs=2), in_features=3).execution_plan()
    with pytest.raises(FrozenInstanceError):
        plan.training = "one_call"


def test_a_forced_path_is_followed_or_refused():
    net = FreeNet(sparse_start(30, 40, 5, fan_in=6, seed=3), in_features=30, evaluator="sparse", path="blocked")
    assert net.execution_plan().training == net.execution_plan().inference == "blocked"
    assert "path='blocked'" in net.execution_plan().reason
    x = torch.randn(7, 30)
    blocked = net(x)
    net.path = "auto"
    torch.testing.assert_close(net(x), blocked)
    with pytest.raises(NCGError, match="path='one_call' does not apply.*encoder"):
        FreeNet(NCG.complete(8, num_outputs=2), in_features=3, path="one_call")
    with pytest.raises(NCGError, match="path must be one of"):
        net.path = "fastest"
