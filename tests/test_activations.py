"""The activation table is the one home of what an activation is: the C++ kernel, the docs and
the firing rules all agree with it."""
from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

from ncg import NCG, FreeNet
from ncg.activations import ACTIVATIONS, BY_CODE, firing_thresholds, needs_preactivation
from ncg.evolve import record_coactivation
from ncg.io import write_graphml

ROOT = Path(__file__).resolve().parents[1]
SWEEP_CPP = (ROOT / "ncg" / "kernels" / "sweep.cpp").read_text()


def _enumerator(name: str) -> str:
    """``square_relu`` -> ``kSquareRelu``."""
    return "k" + "".join(part.capitalize() for part in name.split("_"))


def _cpp_enum() -> dict[str, int]:
    body = re.search(r"enum Activation : uint8_t \{(.*?)\};", SWEEP_CPP, re.S)
    assert body, "sweep.cpp has no `enum Activation : uint8_t { ... };`"
    return {m[1]: int(m[2]) for m in re.finditer(r"(k\w+)\s*=\s*(\d+)", body[1])}


def _cpp_switch(function: str) -> str:
    start = SWEEP_CPP.index(f" {function}(")
    body = SWEEP_CPP[SWEEP_CPP.index("switch (code)", start):]
    return body[: body.index("\n  }\n")]


def _cpp_switch_labels(function: str) -> list[str]:
    """The enumerators a switch in ``function`` handles: ``case kX:`` and ``default:  // kX``."""
    labels = re.findall(r"case (k\w+):|default:\s*//\s*(k\w+)", _cpp_switch(function))
    return [case or default for case, default in labels]


def _cpp_switch_cases(function: str) -> dict[str, str]:
    """Each enumerator of a switch in ``function`` and the code of its case."""
    parts = re.split(r"(?:case (k\w+):|default:\s*//\s*(k\w+))", _cpp_switch(function))
    return {case or default: code for case, default, code in zip(parts[1::3], parts[2::3], parts[3::3])}


def test_codes_are_zero_to_n_minus_one_and_names_are_keys():
    assert [a.code for a in BY_CODE] == list(range(len(ACTIVATIONS)))
    assert all(name == a.name for name, a in ACTIVATIONS.items())


def test_cpp_enum_matches_the_table():
    enum = _cpp_enum()
    assert enum.pop("kNumActivations") == len(ACTIVATIONS)
    assert enum == {_enumerator(a.name): a.code for a in ACTIVATIONS.values()}


@pytest.mark.parametrize("function", ["activate_row", "derivative_row"])
def test_cpp_switches_handle_every_activation_once(function):
    labels = _cpp_switch_labels(function)
    assert sorted(labels) == sorted(_enumerator(name) for name in ACTIVATIONS)


def test_cpp_reads_z_exactly_where_the_table_needs_the_preactivation():
    predicate = re.search(r"bool needs_preactivation\(uint8_t code\) \{ return (.*?); \}", SWEEP_CPP)
    assert predicate, "sweep.cpp has no `constexpr bool needs_preactivation(uint8_t code) { return ...; }`"
    declared = set(re.findall(r"code == (k\w+)", predicate[1]))
    reads_z = {label for label, code in _cpp_switch_cases("derivative_row").items() if re.search(r"\bz\[t\]", code)}
    wanted = {_enumerator(a.name) for a in ACTIVATIONS.values() if a.needs_preactivation}
    assert declared == wanted
    assert reads_z == wanted


def test_needs_preactivation_of_codes():
    for a in ACTIVATIONS.values():
        codes = torch.tensor([ACTIVATIONS["relu"].code, a.code], dtype=torch.uint8)
        assert needs_preactivation(codes) == a.needs_preactivation
    assert not needs_preactivation(torch.zeros(0, dtype=torch.uint8))


def _docs_numpy_activations() -> dict:
    """The ``acts`` dict of the numpy evaluator in docs/graphml.md, evaluated."""
    text = (ROOT / "docs" / "graphml.md").read_text()
    code = "\n".join(re.findall(r"```python\n(.*?)```", text, re.S))
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["acts"]:
            return eval(compile(ast.Expression(node.value), "docs/graphml.md", "eval"), {"np": np, "math": math})
    raise AssertionError("docs/graphml.md has no `acts = {...}` in a python block")


def test_the_graphml_page_evaluates_every_activation():
    acts = _docs_numpy_activations()
    assert set(acts) == set(ACTIVATIONS)
    z = torch.linspace(-6, 6, 97, dtype=torch.float64)
    for name, a in ACTIVATIONS.items():
        np.testing.assert_allclose(acts[name](z.numpy()), a.fn(z).numpy(), rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_matches_autograd(name):
    a = ACTIVATIONS[name]
    z = torch.cat([torch.linspace(-5, 5, 101, dtype=torch.float64), torch.tensor([0.0, 1e-3, -1e-3], dtype=torch.float64)])
    z.requires_grad_(True)
    h = a.fn(z)
    (expected,) = torch.autograd.grad(h.sum(), z)
    torch.testing.assert_close(a.derivative_at(h.detach(), z.detach()), expected, rtol=1e-12, atol=1e-12)
    if not a.needs_preactivation:  # a function of h alone: z is not read
        torch.testing.assert_close(a.derivative_at(h.detach(), None), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_module_computes_the_function(name):
    a = ACTIVATIONS[name]
    z = torch.randn(50, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.module()(z), a.fn(z), rtol=0, atol=0)


def test_zero_when_silent_means_exactly_zero_at_or_below_the_threshold():
    z = torch.linspace(-5, 5, 101)
    for a in ACTIVATIONS.values():
        h = a.fn(z)
        silent = h <= a.firing_threshold
        assert a.zero_when_silent == bool(silent.any() and (h[silent] == 0).all()), a.name


def test_write_graphml_firing_rate_follows_the_recorder_for_sigmoid(tmp_path):
    net = FreeNet(NCG.complete(8, num_outputs=2, seed=0), in_features=5, seed=0, activation="sigmoid")
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(1))
    path = tmp_path / "net.graphml"
    write_graphml(net, path, activations=net.neuron_activations(x))
    G = nx.read_graphml(path)
    written = np.array([G.nodes[f"n{v}"]["firing_rate"] for v in range(net.num_neurons)])
    np.testing.assert_allclose(written, record_coactivation(net, x).firing_rate)
    assert firing_thresholds(net)[:6].eq(0.5).all()
    assert (written[:6] < 1).any()  # a zero threshold would make every sigmoid neuron fire always
