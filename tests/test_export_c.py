"""Exporting a FreeNet as C99: the compiled ``.c`` computes what the net computes.

Each check compiles the exported file with the system C compiler into a shared library and calls
it through ctypes; the tests that need a compiler skip without one.
"""
from __future__ import annotations

import ctypes
import importlib
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncg import NCG, FreeNet
from ncg.activations import ACTIVATIONS
from ncg.build import sparse_start
from ncg.errors import NCGError, NonFiniteError
from ncg.evolve.apply import apply_edits
from ncg.evolve.operators import forward_non_edges, grow_edges, prune_edges, remove_neurons
from ncg.io import export_c
from strategies import dags, graphs_with_inputs

export_c_module = importlib.import_module("ncg.io.export_c")  # the attribute ncg.io.export_c is the function

NAMES = sorted(ACTIVATIONS)
CC = shutil.which("cc") or shutil.which("gcc")
FLAGS = ["-std=c99", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-pedantic", "-Werror"]
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}
FLOATS = ctypes.POINTER(ctypes.c_float)


class Compiled:
    """The exported net compiled into a shared library: its three functions on numpy arrays and
    the constants of its header."""

    def __init__(self, net: FreeNet, folder: Path, name: str = "net") -> None:
        if CC is None:
            pytest.skip("no C compiler (cc or gcc) on PATH")
        source, header = export_c(net, folder / name, name=name)
        library = folder / f"lib{name}.so"
        done = subprocess.run([CC, *FLAGS, str(source), "-o", str(library), "-lm"], capture_output=True, text=True)
        assert done.returncode == 0, f"{CC} failed on the exported file:\n{done.stderr[-3000:]}"
        self.lib = ctypes.CDLL(str(library))
        self.constants = {key: int(value) for key, value in re.findall(r"#define (\w+) (\d+)", header.read_text())}
        self.upper = name.upper()
        self.out_features = self.constants[f"{self.upper}_OUT_FEATURES"]
        self.one, self.batch, self.into = (getattr(self.lib, f"{name}_{f}") for f in ("forward", "forward_batch",
                                                                                        "forward_into"))
        self.one.argtypes = [FLOATS, FLOATS]
        self.batch.argtypes = [FLOATS, FLOATS, ctypes.c_int]
        self.into.argtypes = [FLOATS, FLOATS, ctypes.c_int, FLOATS]
        for function in (self.one, self.batch, self.into):
            function.restype = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Sample by sample through ``<name>_forward``."""
        y = np.zeros((x.shape[0], self.out_features), dtype=np.float32)
        for row, out in zip(np.ascontiguousarray(x, dtype=np.float32), y):
            self.one(row.ctypes.data_as(FLOATS), out.ctypes.data_as(FLOATS))
        return y

    def forward_batch(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.zeros((x.shape[0], self.out_features), dtype=np.float32)
        self.batch(x.ctypes.data_as(FLOATS), y.ctypes.data_as(FLOATS), x.shape[0])
        return y

    def forward_into(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.zeros((x.shape[0], self.out_features), dtype=np.float32)
        scratch = np.zeros(self.constants[f"{self.upper}_SCRATCH_SIZE"], dtype=np.float32)
        self.into(x.ctypes.data_as(FLOATS), y.ctypes.data_as(FLOATS), x.shape[0], scratch.ctypes.data_as(FLOATS))
        return y


def check(net: FreeNet, folder: Path, batches=(1, 37)) -> Compiled:
    """Both C entry points agree with ``net(x)``; 37 samples are two full tiles and five more."""
    compiled = Compiled(net, folder)
    net.eval()
    for batch in batches:
        x = torch.randn(batch, net.in_features, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = net(x.to(net.weight.dtype)).float().numpy()
        np.testing.assert_allclose(compiled.forward_batch(x.numpy()), expected, **TOLERANCE)
        np.testing.assert_allclose(compiled.forward(x.numpy()), expected, **TOLERANCE)
    return compiled


def sparse_net(activation: str = "relu", output_activation: str = "identity", **kwargs) -> FreeNet:
    graph = sparse_start(num_inputs=20, num_hidden=30, num_outputs=4, fan_in=6, seed=0)
    return FreeNet(graph, in_features=20, activation=activation, output_activation=output_activation, **kwargs)


def dense_net(**kwargs) -> FreeNet:
    return FreeNet(NCG.complete(12, num_outputs=3, seed=0), in_features=5, seed=0, **kwargs)


NETS = {
    "sparse": sparse_net,
    "same-activations": lambda: sparse_net("tanh", "tanh"),
    "sparse-linear-decoder": lambda: sparse_net(out_features=7, seed=1),
    "dense": dense_net,
    "dense-random-linear-decoder": lambda: dense_net(encoder="random", out_features=2, activation="silu"),
    "inputs-to-outputs-only": lambda: FreeNet(sparse_start(5, 0, 3, fan_in=2, seed=0), in_features=5),
    "float64": lambda: sparse_net("tanh", "sigmoid").double(),
}


def edited(graph: NCG, rounds: int, seed: int) -> tuple[NCG, torch.Tensor]:
    """``graph`` after ``rounds`` of pruning, regrowth with nonzero weights and neuron removal, and
    the original neuron of each of its neurons (no edit here adds one, so each has one)."""
    rng = np.random.default_rng(seed)
    neuron_map = torch.arange(graph.num_neurons)
    for _ in range(rounds):
        edits = prune_edges(graph, rng.random(graph.num_edges), tau=None, max_edits=graph.num_edges // 3)
        graph, maps = apply_edits(graph, edits, unreachable="ignore")
        neuron_map = neuron_map[maps.neuron_map]
        src, dst = forward_non_edges(graph)
        grown = grow_edges(graph, src, dst, rng.random(src.size), max_edits=len(edits),
                           init_weights=rng.normal(size=src.size))
        graph, maps = apply_edits(graph, grown, unreachable="ignore")
        neuron_map = neuron_map[maps.neuron_map]
        rate = rng.random(graph.num_neurons) * (rng.random(graph.num_neurons) > 0.2)
        graph, maps = apply_edits(graph, remove_neurons(graph, rate), unreachable="ignore")
        neuron_map = neuron_map[maps.neuron_map]
    return graph, neuron_map


# ---------------------------------------------------------------------------- without a compiler


def test_every_activation_has_a_c_expression():
    assert set(export_c_module._C_ACTIVATIONS) == set(ACTIVATIONS)
    assert export_c_module._NEEDS_LIBM <= set(ACTIVATIONS)


def test_floats_are_written_to_read_back_as_the_same_float32():
    values = np.array([0.1, -1 / 3, 1e-45, 3.4028235e38, -0.0, 1.0, 2.5e-8, 123456.789], dtype=np.float32)
    text = export_c_module._c_array("float", "w", values)
    assert text.startswith("static const float w[8] = {\n")
    written = re.findall(r"[-+0-9.e]+(?=,)", text.split("{", 1)[1])
    assert np.array_equal(np.array(written, dtype=np.float64).astype(np.float32).view(np.int32), values.view(np.int32))
    assert export_c_module._c_array("int32_t", "none", np.zeros(0, dtype=np.int64)) == \
        "static const int32_t none[1] = {\n    0,\n};\n"


def test_math_h_only_where_an_activation_needs_it(tmp_path):
    source, header = export_c(sparse_net("relu", "identity"), tmp_path / "plain")
    assert "math.h" not in source.read_text() and "-lm" not in header.read_text()
    source, header = export_c(sparse_net("relu", "tanh"), tmp_path / "tanh")
    assert "#include <math.h>" in source.read_text() and "Uses <math.h> (tanh): link with -lm." in header.read_text()


def test_path_is_a_stem_or_a_c_file(tmp_path):
    net = sparse_net()
    assert export_c(net, tmp_path / "a") == (tmp_path / "a.c", tmp_path / "a.h")
    assert export_c(net, str(tmp_path / "b.c")) == (tmp_path / "b.c", tmp_path / "b.h")
    assert export_c(net, tmp_path / "new" / "c") == (tmp_path / "new" / "c.c", tmp_path / "new" / "c.h")
    assert '#include "a.h"' in (tmp_path / "a.c").read_text()


def test_bad_arguments(tmp_path):
    net = sparse_net()
    with pytest.raises(NCGError, match="net must be a FreeNet, got NCG"):
        export_c(net.graph, tmp_path / "net")
    with pytest.raises(NCGError, match="path must be a str or os.PathLike ending in '.c', got int"):
        export_c(net, 3)
    with pytest.raises(NCGError, match=r"path must end in '.c', got '.*net.h'"):
        export_c(net, tmp_path / "net.h")
    with pytest.raises(NCGError, match=r"path must end in '.c', got '.'"):
        export_c(net, "")
    for name in ("1net", "my-net", "", "nét", None):
        with pytest.raises(NCGError, match=f"name must be a C identifier .*, got {re.escape(repr(name))}"):
            export_c(net, tmp_path / "net", name=name)
    assert not list(tmp_path.iterdir())


def test_a_net_too_large_for_int32_indices_is_refused(tmp_path, monkeypatch):
    net = sparse_net()
    monkeypatch.setattr(export_c_module, "_INT32_MAX", 100)
    with pytest.raises(NCGError, match=rf"net is too large for int32_t indices: 54 values \(inputs \+ neurons\) and "
                                       rf"{net.edge_index.shape[1]} edges, at most 100 each"):
        export_c(net, tmp_path / "net")


def test_non_finite_parameters_are_refused(tmp_path):
    net = sparse_net()
    with torch.no_grad():
        net.weight[3] = float("inf")
    with pytest.raises(NonFiniteError, match="net has a non-finite edge weight as float32"):
        export_c(net, tmp_path / "net")
    net = sparse_net().double()
    with torch.no_grad():
        net.bias[0] = 1e300  # finite in float64, inf in float32
    with pytest.raises(NonFiniteError, match="non-finite bias"):
        export_c(net, tmp_path / "net")


# ---------------------------------------------------------------------------- compiled


@pytest.mark.parametrize("kind", NETS)
def test_compiled_net_agrees(kind, tmp_path):
    check(NETS[kind](), tmp_path)


@pytest.mark.parametrize("activation", NAMES)
def test_compiled_net_agrees_for_each_activation(activation, tmp_path):
    """Every activation once as the hidden one and once as the output one."""
    check(sparse_net(activation, NAMES[(NAMES.index(activation) + 1) % len(NAMES)]), tmp_path)


@settings(max_examples=12)
@given(graph=graphs_with_inputs(max_hidden=20, densities=(0.1, 0.3, 0.7, 1.0)), activation=st.sampled_from(NAMES),
       output_activation=st.sampled_from(NAMES))
def test_graphs_with_input_nodes_agree(graph, activation, output_activation, tmp_path_factory):
    net = FreeNet(graph, in_features=graph.num_inputs, activation=activation, output_activation=output_activation)
    check(net, tmp_path_factory.mktemp("net"), batches=(19,))


@settings(max_examples=8)
@given(graph=dags(max_neurons=20), encoder=st.sampled_from(["linear", "random"]), decoder=st.booleans())
def test_graphs_with_a_dense_encoder_agree(graph, encoder, decoder, tmp_path_factory):
    out_features = graph.num_outputs + 2 if decoder else None
    net = FreeNet(graph, in_features=6, out_features=out_features, encoder=encoder, activation="tanh", seed=0)
    check(net, tmp_path_factory.mktemp("net"), batches=(19,))


@settings(max_examples=6)
@given(seed=st.integers(0, 1000), rounds=st.integers(1, 3))
def test_edited_graphs_agree(seed, rounds, tmp_path_factory):
    graph, _ = edited(sparse_start(12, 16, 3, fan_in=4, seed=seed), rounds, seed)
    check(FreeNet(graph, in_features=12, output_activation="sigmoid"), tmp_path_factory.mktemp("net"), batches=(19,))


def test_edited_net_with_a_dense_encoder_agrees(tmp_path):
    net = dense_net(out_features=4)
    graph, neuron_map = edited(net.graph, rounds=2, seed=0)
    net.set_graph(graph, neuron_map=neuron_map)
    check(net, tmp_path)


def test_batch_and_scratch_entry_points_agree_with_the_single_sample_one(tmp_path):
    compiled = check(sparse_net("gelu", "sigmoid"), tmp_path)
    x = np.random.default_rng(0).normal(size=(40, 20)).astype(np.float32)
    one = compiled.forward(x)
    np.testing.assert_allclose(compiled.forward_batch(x), one, atol=1e-6, rtol=1e-6)  # other sums: rounding only
    np.testing.assert_array_equal(compiled.forward_into(x), compiled.forward_batch(x))
    np.testing.assert_array_equal(compiled.forward_batch(x[32:]), one[32:])  # under a tile: sample by sample
    assert compiled.forward_batch(x[:0]).shape == (0, 4)


def test_header_constants(tmp_path):
    net = sparse_net(out_features=7, seed=0)
    compiled = Compiled(net, tmp_path, name="digits")
    non_inputs = net.num_neurons - net.in_features
    assert compiled.constants == {
        "DIGITS_IN_FEATURES": 20, "DIGITS_OUT_FEATURES": 7, "DIGITS_NUM_NEURONS": net.num_neurons,
        "DIGITS_NUM_EDGES": net.edge_index.shape[1], "DIGITS_BATCH_TILE": export_c_module.BATCH_TILE,
        "DIGITS_SCRATCH_SIZE": (20 + non_inputs) * export_c_module.BATCH_TILE,
    }
