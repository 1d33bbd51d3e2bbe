"""Exporting a FreeNet: the plain module, the module laid out for ONNX, torch.export programs and ONNX
files agree with it."""
from __future__ import annotations

import sys
import zipfile

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncg import NCG, FreeNet
from ncg.build import sparse_start
from ncg.errors import NCGError
from ncg.evolve import Edit, apply_edits
from ncg.io.export import _ACTIVATIONS, FreeNetModule, export_program, to_module
from ncg.io.onnx_export import (_BUCKET_AREA, _CHUNK, _SMALL_BATCH, OnnxFreeNetModule, _buckets, _dense_block,
                                export_onnx, to_onnx_module)
from ncg.kernels.sweep import ACTIVATION_CODES
from strategies import dags, graphs_with_inputs

ATOL = 1e-5
ACTIVATIONS = sorted(ACTIVATION_CODES)


def sparse_net(activation: str = "relu", output_activation: str = "identity", **kwargs) -> FreeNet:
    graph = sparse_start(num_inputs=20, num_hidden=30, num_outputs=4, fan_in=6, seed=0)
    return FreeNet(graph, in_features=20, activation=activation, output_activation=output_activation, **kwargs)


def edited_net() -> FreeNet:
    """The sparse net after a round of edits: a neuron removed, one added, edges pruned and grown."""
    net = sparse_net(seed=0)
    src, dst = net.edge_index[:, 0].tolist()
    graph, maps = apply_edits(net.graph, [
        Edit("remove_neuron", 25, -1),
        Edit("prune_edge", src, dst),
        Edit("add_neuron", 30, 1000),
        Edit("add_edge", 3, 1000, weight=0.7),
        Edit("add_edge", 21, 1000, weight=-0.4),
        Edit("add_edge", 1000, 51, weight=1.3),
    ])
    net.set_graph(graph, neuron_map=maps.neuron_map)
    return net


def dense_net(**kwargs) -> FreeNet:
    return FreeNet(NCG.complete(12, num_outputs=3, seed=0), in_features=5, seed=0, **kwargs)


NETS = {
    "sparse": sparse_net,
    "edited": edited_net,
    "sparse-linear-decoder": lambda: sparse_net(out_features=7, seed=1),
    "dense": dense_net,
    "dense-random-linear-decoder": lambda: dense_net(encoder="random", out_features=2),
    "inputs-to-outputs-only": lambda: FreeNet(sparse_start(5, 0, 3, fan_in=2, seed=0), in_features=5),
}


def check(run, net: FreeNet, batches=(1, 3, 64)) -> None:
    for batch in batches:
        x = torch.randn(batch, net.in_features, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = net(x)
            # float32 rounding grows with the values the neurons of a random DAG reach: ATOL at their scale
            scale = max([1.0] + [float(t.abs().max()) for t in (net.neuron_activations(x), expected) if t.numel()])
        got = torch.as_tensor(run(x))
        assert got.shape == expected.shape
        torch.testing.assert_close(got, expected, atol=ATOL * scale, rtol=0)


def test_every_kernel_activation_is_exportable():
    assert set(_ACTIVATIONS) == set(ACTIVATION_CODES)


@pytest.mark.parametrize("kind", NETS)
def test_module_agrees(kind):
    net = NETS[kind]()
    module = to_module(net)
    assert isinstance(module, FreeNetModule) and not module.training
    check(module, net)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("output_activation", ["identity", "sigmoid"])
def test_module_agrees_for_each_activation(activation, output_activation):
    check(to_module(sparse_net(activation, output_activation)), sparse_net(activation, output_activation))


def test_module_mixes_hidden_and_output_neurons_in_a_generation():
    module = to_module(sparse_net("tanh", "sigmoid"))
    assert any(0 < hidden < size for size, hidden in module.blocks)


def test_module_flattens_samples_and_copies_the_weights():
    net = sparse_net()
    module = to_module(net)
    x = torch.randn(6, 4, 5)
    expected = net(x).detach()
    with torch.no_grad():
        net.weight.add_(1.0)
    torch.testing.assert_close(module(x), expected, atol=ATOL, rtol=0)


def test_module_stores_no_dense_edge_matrix():
    net = sparse_net()
    module = to_module(net)
    stored = sum(b.numel() for b in module.buffers())
    assert stored <= 2 * net.edge_index.shape[1] + 2 * net.num_neurons


@pytest.mark.parametrize("kind", NETS)
def test_program_agrees(kind, tmp_path):
    net = NETS[kind]()
    program = torch.export.load(export_program(net, tmp_path / "net.pt2")).module()
    check(program, net)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_program_agrees_for_each_activation(activation, tmp_path):
    net = sparse_net(activation, "tanh")
    check(torch.export.load(export_program(net, tmp_path / "net.pt2")).module(), net, batches=(5,))


@pytest.mark.parametrize("kind", NETS)
@pytest.mark.parametrize("refresh", [1, 3, 12])
def test_onnx_module_agrees(kind, refresh):
    module = to_onnx_module(NETS[kind](), refresh=refresh)
    assert isinstance(module, OnnxFreeNetModule) and not module.training
    check(module, NETS[kind]())


def test_onnx_module_reads_the_gathered_state_the_recent_generations_and_both_input_paths():
    module = to_onnx_module(sparse_net("tanh", "sigmoid"), refresh=3)
    steps = module.plan.steps
    assert any(s.refresh for s in steps) and any(s.gathered and s.recent for s in steps)
    assert module.plan.dense_shape[0] and module.plan.buckets
    assert any(0 < s.hidden < s.size for s in steps)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_onnx_module_agrees_for_each_activation(activation):
    net = sparse_net(activation, ACTIVATIONS[(ACTIVATIONS.index(activation) + 1) % len(ACTIVATIONS)])
    check(to_onnx_module(net, refresh=2), net)


@settings(max_examples=40, deadline=None)
@given(graph=graphs_with_inputs(), refresh=st.integers(1, 4), activation=st.sampled_from(ACTIVATIONS))
def test_onnx_module_agrees_on_graphs_with_input_nodes(graph, refresh, activation):
    net = FreeNet(graph, in_features=graph.num_inputs, activation=activation, output_activation="tanh")
    check(to_onnx_module(net, refresh=refresh), net, batches=(5,))


@settings(max_examples=15, deadline=None)
@given(graph=dags(max_neurons=20), encoder=st.sampled_from(["linear", "random"]), decoder=st.booleans(),
       refresh=st.integers(1, 4))
def test_onnx_module_agrees_with_a_dense_encoder(graph, encoder, decoder, refresh):
    out_features = graph.num_outputs + 2 if decoder else None
    net = FreeNet(graph, in_features=6, out_features=out_features, encoder=encoder, activation="tanh", seed=0)
    check(to_onnx_module(net, refresh=refresh), net, batches=(5,))


def test_onnx_module_stores_no_dense_edge_matrix():
    net = big_net()
    module = to_onnx_module(net)
    stored = sum(b.numel() for b in module.buffers())
    assert stored <= 4 * net.edge_index.shape[1] + 4 * net.num_neurons + net.in_features


def test_the_dense_input_block_takes_the_busy_corner_or_nothing():
    features, slots = torch.meshgrid(torch.arange(8), torch.arange(6), indexing="ij")  # all of 8 x 6
    feature = torch.cat([features.flatten(), torch.arange(8, 40)])  # and 32 edges elsewhere
    slot = torch.cat([slots.flatten(), torch.arange(6, 38)])
    block = _dense_block(feature, slot, num_features=40, num_slots=38, cost=8.0)
    assert block[0].tolist() == list(range(8)) and block[1].tolist() == list(range(6))
    diagonal = _dense_block(torch.arange(30), torch.arange(30), num_features=30, num_slots=30, cost=1.0)
    assert diagonal[0].numel() == diagonal[1].numel() == 0  # no block holds more edges than cells


def test_buckets_group_similar_fan_ins_and_stay_small():
    fan_in = torch.tensor([0, 1, 2, 2, 3, 5, 9, 10, 40, 41, 300] + [60] * 40)
    buckets = _buckets(fan_in)
    assert sorted(torch.cat(buckets).tolist()) == list(range(1, len(fan_in)))  # every slot with edges, once
    for bucket in buckets:
        fans = fan_in[bucket]
        assert fans.max() <= 1.25 * fans.min() + 1
        assert fans.numel() == 1 or fans.numel() * fans.max() <= _BUCKET_AREA


def onnx_session(net: FreeNet, path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    session = ort.InferenceSession(str(export_onnx(net, path)), providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"x": x.numpy()})[0]


@pytest.mark.parametrize("kind", NETS)
def test_onnx_agrees(kind, tmp_path):
    net = NETS[kind]()
    check(onnx_session(net, tmp_path / "net.onnx"), net,
          batches=(0, 1, 3, _SMALL_BATCH - 1, _SMALL_BATCH, 64, 2 * _CHUNK + 3))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_onnx_agrees_for_each_activation(activation, tmp_path):
    net = sparse_net(activation, "sigmoid")
    check(onnx_session(net, tmp_path / "net.onnx"), net, batches=(5,))


@settings(max_examples=8, deadline=None)
@given(graph=graphs_with_inputs())
def test_onnx_agrees_on_graphs_with_input_nodes(graph, tmp_path_factory):
    net = FreeNet(graph, in_features=graph.num_inputs, activation="gelu", output_activation="sigmoid")
    check(onnx_session(net, tmp_path_factory.mktemp("net") / "net.onnx"), net, batches=(5, _SMALL_BATCH + 1))


def test_onnx_runs_small_batches_as_slabs_large_ones_in_a_loop_and_builds_its_weights_once(tmp_path):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(export_onnx(sparse_net(), tmp_path / "net.onnx")))
    onnx.checker.check_model(model, full_check=True)
    (choice,) = [node for node in model.graph.node if node.op_type == "If"]
    branches = {attribute.name: attribute.g for attribute in choice.attribute}
    (loop,) = [node for node in branches["else_branch"].node if node.op_type == "Loop"]
    body = {node.op_type for node in loop.attribute[0].g.node}
    assert {"Gather", "Gemm", "MatMul", "Relu"} <= body and "ScatterElements" not in body
    small = {node.op_type for node in branches["then_branch"].node}
    assert "Gemm" in small and "ScatterElements" not in small and "Loop" not in small
    assert "ScatterElements" in {node.op_type for node in model.graph.node}


@pytest.mark.parametrize("opset_version", [11, 20])
def test_onnx_opsets(opset_version, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    net = sparse_net("tanh", "sigmoid")
    path = export_onnx(net, tmp_path / "net.onnx", opset_version=opset_version)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check(lambda x: session.run(None, {"x": x.numpy()})[0], net, batches=(3, _CHUNK + 1))


def big_net() -> FreeNet:
    """About 9,600 edges; a dense 784 x 160 matrix would add 52 bytes per edge."""
    return FreeNet(sparse_start(784, 150, 10, fan_in=60, seed=0), in_features=784)


@pytest.mark.slow
def test_program_size_follows_the_edges(tmp_path):
    net = big_net()
    path = export_program(net, tmp_path / "net.pt2")
    edges = net.edge_index.shape[1]
    assert path.stat().st_size / edges < 24
    with zipfile.ZipFile(path) as archive:
        data = sum(i.file_size for i in archive.infolist() if "/data/weights/" in i.filename or "/data/constants/" in i.filename)
    assert data / edges < 9


def test_onnx_size_follows_the_edges(tmp_path):
    pytest.importorskip("onnx")
    net = big_net()
    path = export_onnx(net, tmp_path / "net.onnx")  # two layouts (small and large batches): 8 + ~13 bytes an edge
    assert path.stat().st_size / net.edge_index.shape[1] < 30


def test_bad_arguments(tmp_path):
    net = dense_net()
    with pytest.raises(NCGError, match="net must be a FreeNet, got NCG"):
        to_module(net.graph)
    with pytest.raises(NCGError, match="net must be a FreeNet, got str"):
        export_program("net", tmp_path / "net.pt2")
    with pytest.raises(NCGError, match=r"path must end in '.pt2', got '.*net.onnx'"):
        export_program(net, tmp_path / "net.onnx")
    with pytest.raises(NCGError, match="path must be a str or os.PathLike ending in '.onnx', got int"):
        export_onnx(net, 3)
    with pytest.raises(NCGError, match="opset_version must be an int >= 11, got 9"):
        export_onnx(net, tmp_path / "net.onnx", opset_version=9)
    with pytest.raises(NCGError, match="net must be a FreeNet, got NCG"):
        to_onnx_module(net.graph)
    with pytest.raises(NCGError, match="refresh must be a positive int, got 0"):
        to_onnx_module(net, refresh=0)


def test_onnx_export_without_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(ModuleNotFoundError, match=r'pip install "ncg\[export\]"'):
        export_onnx(FreeNet(NCG.complete(4, num_outputs=2), in_features=3), tmp_path / "net.onnx")
