"""Every evaluator path (dense blocks, sparse blocks, a mix; compiled kernel and PyTorch) against
the per-neuron reference, forward and backward, also after edits; and the scale they reach."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ncg.kernels.sparse as sparse
from ncg import NCG, FreeNet
from ncg.activations import ACTIVATIONS
from ncg.build import layered_start, sparse_start
from ncg.errors import NCGError
from ncg.evolve import Edit, apply_edits
from ncg.schedule import DENSE_MIN_DENSITY, DENSE_MIN_SHARE, block_kinds, build_plan
from strategies import dags

MODES = ("dense", "sparse", "auto")


def _outputs_and_grads(net: FreeNet, x: torch.Tensor) -> list[torch.Tensor]:
    net.zero_grad()
    out = net(x)
    out.square().sum().backward()
    return [out.detach(), *(torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in (net.weight, net.bias))]


def _assert_matches_reference(graph: NCG, mode: str, batch: int, activation: str = "relu", block_size: int = 4,
                              in_features: int = 3) -> None:
    fast = FreeNet(graph, in_features=in_features, seed=0, evaluator=mode, activation=activation, block_size=block_size)
    slow = FreeNet(graph, in_features=in_features, seed=0, evaluator="reference", activation=activation)
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(batch, in_features, generator=torch.Generator().manual_seed(batch))
    for got, want, name in zip(_outputs_and_grads(fast, x), _outputs_and_grads(slow, x), ("out", "weight", "bias")):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3, msg=f"{mode} {name}")


@pytest.fixture(params=["cpp", "torch"])
def backend(request, monkeypatch):
    """Run the sparse rows in the compiled kernel or in the PyTorch fallback."""
    if request.param == "torch":
        monkeypatch.setattr(sparse, "_cpp_for", lambda tensors, out: None)
    return request.param


@settings(max_examples=40, deadline=None)
@given(dags(max_neurons=30), st.sampled_from(MODES), st.sampled_from(sorted(set(ACTIVATIONS) - {"identity"})),
       st.sampled_from([1, 5, 70]))
def test_every_mode_matches_reference(graph, mode, activation, batch):
    _assert_matches_reference(graph, mode, batch, activation)


@pytest.mark.parametrize("mode", MODES)
def test_modes_match_reference_in_both_backends(backend, mode):
    graph = NCG.random_dag(48, density=0.2, num_outputs=3, seed=1)
    _assert_matches_reference(graph, mode, batch=37, activation="square_relu", block_size=8)


def test_a_mixed_plan_matches_reference(backend):
    # A dense core (complete DAG on the first 24 neurons) and a sparse tail after it (each tail
    # neuron reads the core's last): auto mixes both kinds.
    core = torch.triu_indices(24, 24, offset=1)
    rng = np.random.default_rng(0)
    tail_dst = np.repeat(np.arange(24, 80), 3)
    tail_src = np.where(np.arange(tail_dst.size) % 3 == 0, 23, rng.integers(0, tail_dst))
    keys = np.unique(tail_dst * 80 + tail_src)
    tail = torch.from_numpy(np.stack([keys % 80, keys // 80]))
    graph = NCG(torch.cat([core, tail], 1), 80, outputs=torch.arange(77, 80), unreachable="ignore")
    net = FreeNet(graph, in_features=3, block_size=8)
    assert set(net.plan()[0].kinds) == {"dense", "sparse"}
    _assert_matches_reference(graph, "auto", batch=33, block_size=8)


@pytest.mark.parametrize("mode", MODES)
def test_graph_encoder_and_edits_match_reference(mode):
    graph = sparse_start(6, 20, 2, fan_in=3, seed=0)
    _assert_matches_reference(graph, mode, batch=9, in_features=6)
    net = FreeNet(graph, in_features=6, evaluator=mode, block_size=4)
    net(torch.randn(2, 6))  # build and cache a plan, then edit the topology under it
    e = int(graph.num_edges // 2)
    edited, _ = apply_edits(graph, [Edit("prune_edge", int(graph.edge_index[0, e]), int(graph.edge_index[1, e])),
                                    Edit("add_edge", 6, 27)])
    net.set_graph(edited)
    _assert_matches_reference(net.graph, mode, batch=9, in_features=6)


@pytest.mark.parametrize("threads", [1, 2])
def test_weight_gradient_is_summed_over_thread_chunks(backend, threads):
    """The compiled backward adds each chunk of batch tiles' share of dL/dw into its own buffer;
    a batch of 260 = 4 full AVX-512 tiles + 4 columns exercises the chunks, the reduction and the
    last partial tile."""
    graph = NCG.random_dag(200, density=0.1, num_outputs=4, seed=3)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _assert_matches_reference(graph, "sparse", 260, activation="square_relu")
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("columns", [1, 37, 256])
def test_pair_dots_are_row_dot_products(backend, dtype, columns):
    gen = torch.Generator().manual_seed(columns)
    a, b = torch.randn(50, columns, generator=gen, dtype=dtype), torch.randn(50, columns, generator=gen, dtype=dtype)
    rows_a, rows_b = torch.randint(0, 50, (300,), generator=gen), torch.randint(0, 50, (300,), generator=gen)
    want = torch.einsum("kt,kt->k", a[rows_a], b[rows_b])
    torch.testing.assert_close(sparse.pair_dots(a, b, rows_a, rows_b), want)


def test_pair_dots_rejects_rows_out_of_range():
    a = torch.zeros(4, 3)
    with pytest.raises((NCGError, IndexError), match="rows_b\\[1\\] = 4 is not a row|out of bounds"):
        sparse.pair_dots(a, a, torch.tensor([0, 1]), torch.tensor([0, 4]))


def test_auto_picks_dense_for_dense_blocks_and_sparse_for_sparse_ones():
    complete = build_plan(NCG.complete(200, num_outputs=2).edge_index, 200)
    assert set(complete.kinds) == {"dense"}
    thin = NCG.random_dag(400, density=0.01, num_outputs=2, seed=0)
    assert set(build_plan(thin.edge_index, 400).kinds) == {"sparse"}
    # The threshold itself: a block receiving just enough edges is dense, one fewer is not.
    pairs = 4 * 4 + 4 * 3 // 2
    need = int(np.ceil(DENSE_MIN_DENSITY * pairs))
    assert block_kinds(((4, 8, 0, 8),), np.array([need])) == ("dense",)
    assert block_kinds(((4, 8, 0, 8),), np.array([need - 1])) == ("sparse",)
    # Dense blocks that receive too small a share of all the edges are not worth their slabs.
    blocks = ((4, 8, 0, 8), (200, 204, 0, 300))  # the second is sparse at up to 402 edges
    rest = int(need / DENSE_MIN_SHARE) - need  # the most the second may receive for the first to stay dense
    assert block_kinds(blocks, np.array([need, rest])) == ("dense", "sparse")
    assert block_kinds(blocks, np.array([need, rest + 1])) == ("sparse", "sparse")
    with pytest.raises(NCGError, match="mode must be one of"):
        build_plan(thin.edge_index, 400, mode="fast")


def test_kernel_rejects_bad_csr_with_a_named_argument():
    plan = build_plan(torch.tensor([[0], [1]]), 2, mode="sparse")
    z, h = torch.zeros(2, 3), torch.zeros(2, 3)
    codes = torch.ones(2, dtype=torch.uint8)
    if sparse._cpp_for((z,), None) is None:
        pytest.skip("compiled kernel unavailable")
    with pytest.raises(NCGError, match="w must be a contiguous"):
        sparse.csr_forward(z, h, plan, torch.zeros(3), codes, 0, 2)
    with pytest.raises(NCGError, match="rows"):
        sparse.csr_forward(z, h, plan, torch.zeros(1), codes, 0, 5)


def test_layered_start_bounds_depth_and_reaches_outputs():
    from ncg.schedule import topological_generations

    g = layered_start(num_inputs=30, num_hidden=300, num_outputs=4, depth=5, fan_in=4, seed=1)
    assert int(topological_generations(g.edge_index, g.num_neurons).max()) <= 6
    assert bool(g.reaches_output()[30:].all())
    assert g.num_edges >= 0.9 * 4 * 304
    with pytest.raises(NCGError, match="depth must be at most"):
        layered_start(3, 2, 1, depth=3, fan_in=1)


SCALE = textwrap.dedent("""
    import resource, torch
    from ncg import FreeNet
    from ncg.build import layered_start
    torch.manual_seed(0)
    net = FreeNet(layered_start(784, 100_000, 10, depth=8, fan_in=10, seed=0), in_features=784, seed=0)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.rand(64, 784), torch.randint(0, 10, (64,))
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(loss) and net.weight.grad.abs().sum() > 0
    assert set(net.plan()[0].kinds) == {"sparse"} and net.encoder is None
    print(net.edge_index.shape[1], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


@pytest.mark.slow
def test_a_100k_neuron_sparse_freenet_trains_without_any_n_by_n_tensor():
    # One N x N float32 tensor would be 40 GB; the whole step must stay under 1.5 GiB of RSS.
    result = subprocess.run([sys.executable, "-c", SCALE], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    edges, peak_kib = map(int, result.stdout.split())
    assert edges > 1_000_000
    assert peak_kib < 1.5 * 2**20, f"peak RSS {peak_kib / 2**20:.2f} GiB"


@pytest.mark.parametrize("mode", MODES)
def test_float64_matches_reference_in_every_mode(backend, mode):
    graph = NCG.random_dag(40, density=0.15, num_outputs=2, seed=3)
    fast = FreeNet(graph, in_features=3, seed=0, evaluator=mode, block_size=8).double()
    slow = FreeNet(graph, in_features=3, seed=0, evaluator="reference").double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(19, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for got, want in zip(_outputs_and_grads(fast, x), _outputs_and_grads(slow, x)):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-9)
