"""Tests of ncg/kernels/sweep.py: the in-block sweep, its torch reference and the C++ kernel.

The oracles, from most to least obvious: a scalar loop per sample and per neuron (for the
reference forward), torch.autograd through the reference forward (for the backward), and the
reference itself (for the C++ kernel, on random blocks drawn by hypothesis).
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncg.activations import ACTIVATIONS
from ncg.errors import NCGError
from ncg.kernels import build, sweep
from ncg.kernels.sweep import (
    ACTIVATION_CODES,
    activation_derivative,
    activation_fn,
    backend,
    cpp_available,
    sweep_backward,
    sweep_backward_reference,
    sweep_forward,
    sweep_forward_reference,
)

NUM_CODES = len(ACTIVATION_CODES)
TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def make_block(b, batch, dtype=torch.float64, seed=0, zero_fraction=0.3, codes=None):
    """z, strictly upper w with some exact zeros (and junk below the diagonal), codes, dh."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(b, batch, generator=gen, dtype=dtype)
    # Small enough that chains of square_relu neurons stay finite.
    w = 0.5 * torch.randn(b, b, generator=gen, dtype=dtype) / max(b, 1) ** 0.5
    w[torch.rand(b, b, generator=gen) < zero_fraction] = 0
    w += 100 * torch.ones(b, b, dtype=dtype).tril()  # must be ignored
    if codes is None:
        codes = torch.randint(0, NUM_CODES, (b,), generator=gen, dtype=torch.uint8)
    dh = torch.randn(b, batch, generator=gen, dtype=dtype)
    return z, w, codes, dh


def strict_upper(w):
    return torch.triu(w, diagonal=1)


@pytest.fixture(scope="module")
def cpp():
    if not cpp_available():
        pytest.skip("C++ sweep kernel unavailable (NCG_DISABLE_CPP=1 or the build failed)")
    return sweep._extension()


# ------------------------------------------------------------------------ activations

SCALAR_ACTIVATIONS = {
    "identity": lambda x: x,
    "relu": lambda x: max(x, 0.0),
    "square_relu": lambda x: max(x, 0.0) ** 2,
    "tanh": math.tanh,
    "sigmoid": lambda x: 1 / (1 + math.exp(-x)),
    "gelu": lambda x: x * (1 + math.erf(x / math.sqrt(2))) / 2,
    "silu": lambda x: x / (1 + math.exp(-x)),
    "elu": lambda x: x if x > 0 else math.expm1(x),
    "leaky_relu": lambda x: x if x > 0 else 0.01 * x,
}


@pytest.mark.parametrize("name", sorted(ACTIVATION_CODES))
def test_activation_fn_matches_scalar_definition(name):
    x = torch.linspace(-4, 4, 17, dtype=torch.float64)
    expected = torch.tensor([SCALAR_ACTIVATIONS[name](v) for v in x.tolist()], dtype=torch.float64)
    torch.testing.assert_close(activation_fn(name)(x), expected)


@pytest.mark.parametrize("name", sorted(ACTIVATION_CODES))
def test_activation_derivative_matches_autograd(name):
    x = torch.linspace(-3, 3, 12, dtype=torch.float64, requires_grad=True)  # avoids x == 0
    h = activation_fn(name)(x)
    (grad,) = torch.autograd.grad(h.sum(), x)
    argument = x.detach() if ACTIVATIONS[name].needs_preactivation else h.detach()
    torch.testing.assert_close(activation_derivative(name)(argument), grad)


def test_unknown_activation_name_raises():
    with pytest.raises(NCGError, match="unknown activation 'softplus'"):
        activation_fn("softplus")
    with pytest.raises(NCGError, match="unknown activation"):
        activation_derivative("softplus")


def test_activation_codes_are_the_documented_ones():
    assert ACTIVATION_CODES == {"identity": 0, "relu": 1, "square_relu": 2, "tanh": 3, "sigmoid": 4, "gelu": 5,
                                "silu": 6, "elu": 7, "leaky_relu": 8}


# ------------------------------------------------------------------------ reference vs oracles


def naive_forward(z, w, codes):
    """One sample, one neuron, one edge at a time, in Python floats."""
    b, batch = z.shape
    names = [sweep._ACTIVATION_NAMES[c] for c in codes.tolist()]
    z_out, h_out = z.tolist(), [[0.0] * batch for _ in range(b)]
    for s in range(batch):
        for j in range(b):
            h_out[j][s] = SCALAR_ACTIVATIONS[names[j]](z_out[j][s])
            for k in range(j + 1, b):
                z_out[k][s] += w[j, k].item() * h_out[j][s]
    return torch.tensor(z_out, dtype=z.dtype), torch.tensor(h_out, dtype=z.dtype)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 6), batch=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_reference_forward_matches_scalar_loop(b, batch, seed):
    z, w, codes, _ = make_block(b, batch, seed=seed)
    expected_z, expected_h = naive_forward(z, w, codes)
    h = sweep_forward_reference(z, w, codes)
    torch.testing.assert_close(h, expected_h)
    torch.testing.assert_close(z, expected_z)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 12), batch=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_reference_backward_matches_autograd(b, batch, seed):
    z_in, w, codes, dh_out = make_block(b, batch, seed=seed)
    z_in.requires_grad_(True)
    z = z_in.clone()
    h = sweep_forward_reference(z, w, codes)
    (grad_z_in,) = torch.autograd.grad((h * dh_out).sum(), z_in)

    dh = dh_out.clone()
    g = sweep_backward_reference(h.detach(), w, codes, dh, z=z.detach())
    # g = dL/dz_final, and z_final = z_in + terms in earlier h, so dL/dz_in is g itself.
    torch.testing.assert_close(g, grad_z_in)
    # dh now holds the total dL/dh: the outside gradient plus what flows back through the edges.
    torch.testing.assert_close(dh, dh_out + strict_upper(w) @ g)


def test_reference_runs_on_other_dtypes():
    z, w, codes, dh = make_block(5, 4)
    h64 = sweep_forward_reference(z.clone(), w, codes)
    h16 = sweep_forward(z.clone().bfloat16(), w.bfloat16(), codes)
    assert h16.dtype == torch.bfloat16
    torch.testing.assert_close(h16.double(), h64, rtol=0.05, atol=0.05)


def test_forward_with_grad_is_differentiable():
    z_in, w, codes, dh_out = make_block(7, 3)
    z_in.requires_grad_(True)
    h = sweep_forward(z_in.clone(), w, codes)  # needs autograd: runs in the reference
    (grad,) = torch.autograd.grad((h * dh_out).sum(), z_in)
    z = z_in.detach().clone()
    h = sweep_forward(z, w, codes)
    torch.testing.assert_close(sweep_backward(h, w, codes, dh_out.clone(), z=z), grad)


# ------------------------------------------------------------------------ C++ vs reference


def check_against_reference(b, batch, dtype, seed, zero_fraction, codes=None):
    z0, w, codes, dh0 = make_block(b, batch, dtype, seed, zero_fraction, codes)
    z_cpp, z_ref = z0.clone(), z0.clone()
    h_cpp = sweep_forward(z_cpp, w, codes)
    h_ref = sweep_forward_reference(z_ref, w, codes)
    assert torch.isfinite(h_ref).all()
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(h_cpp, h_ref, **tol)
    torch.testing.assert_close(z_cpp, z_ref, **tol)

    dh_cpp, dh_ref = dh0.clone(), dh0.clone()
    g_cpp = sweep_backward(h_ref, w, codes, dh_cpp, z=z_ref)
    g_ref = sweep_backward_reference(h_ref, w, codes, dh_ref, z=z_ref)
    torch.testing.assert_close(g_cpp, g_ref, **tol)
    torch.testing.assert_close(dh_cpp, dh_ref, **tol)


@settings(max_examples=60, deadline=None)
@given(
    b=st.integers(1, 40),
    batch=st.integers(1, 70),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
    zero_fraction=st.sampled_from([0.0, 0.3, 0.9, 1.0]),
)
def test_cpp_matches_reference(cpp, b, batch, dtype, seed, zero_fraction):
    check_against_reference(b, batch, dtype, seed, zero_fraction)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(ACTIVATION_CODES))
def test_cpp_matches_reference_per_activation_on_wide_blocks(cpp, name, dtype):
    # Several tiles, a partial last tile, and enough work per call to use more than one thread.
    codes = torch.full((64,), ACTIVATION_CODES[name], dtype=torch.uint8)
    check_against_reference(64, 1000, dtype, seed=1, zero_fraction=0.2, codes=codes)


def test_cpu_float_blocks_run_in_cpp(cpp, monkeypatch):
    def fail(*args):
        raise AssertionError("the reference should not run")

    monkeypatch.setattr(sweep, "sweep_forward_reference", fail)
    monkeypatch.setattr(sweep, "sweep_backward_reference", fail)
    z, w, codes, dh = make_block(9, 33, torch.float32)
    h = sweep_forward(z, w, codes)
    sweep_backward(h, w, codes, dh, z=z)
    assert backend() == "cpp"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpp_activations_at_special_values(cpp, dtype):
    values = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-30, -1e-30, 0.3, -0.7,
              0.625, 5.0, -9.0, 44.0, 88.0, 100.0, -100.0, 1e4, -1e4]
    z = torch.tensor(values, dtype=dtype).repeat(NUM_CODES, 1)
    codes = torch.arange(NUM_CODES, dtype=torch.uint8)
    w = torch.zeros(NUM_CODES, NUM_CODES, dtype=dtype)
    h = sweep_forward(z.clone(), w, codes)
    for name, code in ACTIVATION_CODES.items():
        expected = activation_fn(name)(z[code].double()).to(dtype)
        # torch's gelu(-inf) and silu(-inf) are 0 * inf = NaN; the kernel may return the limit
        defined = ~expected.isnan() | z[code].isnan()
        torch.testing.assert_close(h[code][defined], expected[defined], equal_nan=True, **TOLERANCE[dtype])


def test_cpp_float32_tanh_and_sigmoid_are_accurate(cpp):
    z = torch.linspace(-30, 30, 60001, dtype=torch.float32).repeat(2, 1)
    codes = torch.tensor([ACTIVATION_CODES["tanh"], ACTIVATION_CODES["sigmoid"]], dtype=torch.uint8)
    h = sweep_forward(z.clone(), torch.zeros(2, 2), codes)
    exact = torch.stack([torch.tanh(z[0].double()), torch.sigmoid(z[1].double())])
    relative = (h.double() - exact).abs() / exact.abs().clamp_min(1e-30)
    assert relative.max() < 4e-7  # a few float32 ulp


def test_cpp_block_without_edges_applies_activations_only(cpp):
    z0, _, codes, _ = make_block(20, 50, torch.float32)
    z = z0.clone()
    h = sweep_forward(z, torch.zeros(20, 20), codes)
    assert torch.equal(z, z0)
    for j, code in enumerate(codes.tolist()):
        torch.testing.assert_close(h[j], activation_fn(sweep._ACTIVATION_NAMES[code])(z0[j]))


def test_cpp_updates_strided_tensors_in_place(cpp):
    z0, w, codes, dh0 = make_block(6, 20, torch.float64)
    z_big = torch.zeros(6, 40, dtype=torch.float64)
    z_big[:, ::2] = z0
    z = z_big[:, ::2]  # column stride 2
    h = sweep_forward(z, w, codes)
    z_ref = z0.clone()
    h_ref = sweep_forward_reference(z_ref, w, codes)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(z_big[:, ::2], z_ref)
    assert torch.all(z_big[:, 1::2] == 0)

    dh_big = torch.zeros(6, 40, dtype=torch.float64)
    dh_big[:, 1::2] = dh0
    dh = dh_big[:, 1::2]
    z_strided = z_ref.t().contiguous().t()  # column stride 6: the kernel reads a contiguous copy
    g = sweep_backward(h_ref.t().contiguous().t(), w, codes, dh, z=z_strided)
    dh_ref = dh0.clone()
    torch.testing.assert_close(g, sweep_backward_reference(h_ref, w, codes, dh_ref, z=z_ref))
    torch.testing.assert_close(dh_big[:, 1::2], dh_ref)


@pytest.mark.parametrize("layout", ["block of a larger matrix", "transposed storage"])
def test_weights_in_any_layout(layout):
    z0, w, codes, dh0 = make_block(11, 40, torch.float32)
    if layout == "block of a larger matrix":
        big = torch.zeros(30, 30)
        big[5:16, 7:18] = w
        w_view = big[5:16, 7:18]
    else:
        w_view = w.t().contiguous().t()
    z, z_ref = z0.clone(), z0.clone()
    h = sweep_forward(z, w_view, codes)
    torch.testing.assert_close(h, sweep_forward_reference(z_ref, w, codes))
    dh, dh_ref = dh0.clone(), dh0.clone()
    torch.testing.assert_close(sweep_backward(h, w_view, codes, dh, z=z),
                               sweep_backward_reference(h, w, codes, dh_ref, z=z))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_out_writes_into_rows_of_a_larger_tensor(dtype):
    z0, w, codes, dh0 = make_block(7, 20, dtype)
    z = z0.clone()
    h_big = torch.zeros(12, 20, dtype=dtype)
    h = sweep_forward(z, w, codes, out=h_big[3:10])
    assert h.data_ptr() == h_big[3:10].data_ptr()
    z_ref = z0.clone()
    h_ref = sweep_forward_reference(z_ref, w, codes)
    torch.testing.assert_close(h_big[3:10], h_ref)
    assert torch.all(h_big[:3] == 0) and torch.all(h_big[10:] == 0)

    g_big = torch.zeros(9, 20, dtype=dtype)
    g = sweep_backward(h_ref, w, codes, dh0.clone(), out=g_big[1:8], z=z_ref)
    assert g.data_ptr() == g_big[1:8].data_ptr()
    torch.testing.assert_close(g_big[1:8], sweep_backward_reference(h_ref, w, codes, dh0.clone(), z=z_ref))


@pytest.mark.parametrize("backward", [sweep_backward, sweep_backward_reference])
@pytest.mark.parametrize("columns", [3, 70])  # a partial tile only; full tiles and a partial one
def test_backward_turns_dh_into_g_in_place(backward, columns):
    z, w, codes, dh0 = make_block(13, columns, torch.float64)
    h = sweep_forward_reference(z, w, codes)
    want = sweep_backward_reference(h, w, codes, dh0.clone(), z=z)
    dh = dh0.clone()
    g = backward(h, w, codes, dh, out=dh, z=z)
    assert g.data_ptr() == dh.data_ptr()
    torch.testing.assert_close(dh, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("forward", [sweep_forward, sweep_forward_reference])
def test_forward_may_overwrite_z_with_h(forward):
    z, w, codes, _ = make_block(13, 70, torch.float64)
    want = sweep_forward_reference(z.clone(), w, codes)
    h = forward(z, w, codes, out=z)
    assert h.data_ptr() == z.data_ptr()
    torch.testing.assert_close(z, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 0)])
def test_empty_blocks(shape):
    z = torch.zeros(shape)
    w = torch.zeros(shape[0], shape[0])
    codes = torch.zeros(shape[0], dtype=torch.uint8)
    for forward, backward in [(sweep_forward, sweep_backward),
                              (sweep_forward_reference, sweep_backward_reference)]:
        h = forward(z, w, codes)
        assert h.shape == shape
        assert backward(h, w, codes, torch.zeros(shape)).shape == shape


# ------------------------------------------------------------------------ argument validation

FORWARD_APIS = [sweep_forward, sweep_forward_reference]
BACKWARD_APIS = [sweep_backward, sweep_backward_reference]


def good_args(dtype=torch.float32):
    z, w, codes, dh = make_block(4, 3, dtype)
    return z, w, codes, dh


@pytest.mark.parametrize("forward", FORWARD_APIS)
@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda z, w, c: (z[0], w, c), "z must be a 2-D tensor"),
        (lambda z, w, c: (z, w[:3], c), "w must have shape"),
        (lambda z, w, c: (z, w.double(), c), "w must have dtype"),
        (lambda z, w, c: (z, w, c[:2]), "codes must have shape"),
        (lambda z, w, c: (z, w, c.long()), "codes must .*uint8"),
        (lambda z, w, c: (z, w, torch.tensor([0, 1, NUM_CODES, 2], dtype=torch.uint8)),
         rf"codes\[2\] = {NUM_CODES} is not an activation code"),
    ],
)
def test_forward_rejects_bad_arguments(forward, mutate, match):
    z, w, codes, _ = good_args()
    with pytest.raises(NCGError, match=match):
        forward(*mutate(z, w, codes))


@pytest.mark.parametrize("backward", BACKWARD_APIS)
def test_backward_rejects_mismatched_tensors(backward):
    h, w, codes, dh = good_args()
    for bad, match in [(dh[:, :2], "dh must have shape"), (dh.double(), "dh must have dtype"),
                       (dh, "h must be a 2-D tensor")]:
        args = [h, w, codes, bad] if bad is not dh else [h[0], w, codes, dh]
        with pytest.raises(NCGError, match=match):
            backward(*args)
    with pytest.raises(NCGError, match="w must have shape .* to match h"):
        backward(h, w[:2, :2], codes, dh)


@pytest.mark.parametrize("backward", BACKWARD_APIS)
def test_backward_needs_z_where_a_derivative_is_no_function_of_h(backward):
    h, w, _, dh = good_args()
    codes = torch.tensor([1, ACTIVATION_CODES["gelu"], 0, ACTIVATION_CODES["elu"]], dtype=torch.uint8)
    with pytest.raises(NCGError, match=rf"z is required: codes\[1\] = {ACTIVATION_CODES['gelu']} "):
        backward(h, w, codes, dh)
    with pytest.raises(NCGError, match="z must have shape"):
        backward(h, w, codes, dh, z=h[:2])
    h_only = torch.tensor([1, ACTIVATION_CODES["leaky_relu"], 0, ACTIVATION_CODES["elu"]], dtype=torch.uint8)
    backward(h, w, h_only, dh)  # no z needed


@pytest.mark.parametrize("forward", FORWARD_APIS)
def test_bad_out_is_rejected_before_z_changes(forward):
    z, w, codes, _ = good_args()
    z0 = z.clone()
    with pytest.raises(NCGError, match="out must have shape"):
        forward(z, w, codes, out=torch.empty(4, 2))
    with pytest.raises(NCGError, match="out must have dtype"):
        forward(z, w, codes, out=torch.empty(4, 3, dtype=torch.float64))
    assert torch.equal(z, z0)


def test_errors_are_value_errors():
    z, w, codes, _ = good_args()
    with pytest.raises(ValueError, match="w must have shape"):
        sweep_forward(z, w[:2, :2], codes)


# ------------------------------------------------------------------------ build and fallback


@pytest.fixture
def fresh_build(monkeypatch):
    """Forget the cached build for one test, and again afterwards so later tests rebuild it."""
    build._extension.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    build._extension.cache_clear()


def test_disable_cpp_uses_reference_silently(fresh_build):
    fresh_build.setenv("NCG_DISABLE_CPP", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cpp_available()
        assert backend() == "torch"
        z, w, codes, dh = make_block(5, 4, torch.float32)
        h = sweep_forward(z, w, codes)
        sweep_backward(h, w, codes, dh, z=z)


def test_failed_build_warns_once_and_falls_back(fresh_build):
    from torch.utils import cpp_extension

    def broken_load(*args, **kwargs):
        raise OSError("no compiler here")

    fresh_build.delenv("NCG_DISABLE_CPP", raising=False)
    fresh_build.setattr(cpp_extension, "load", broken_load)
    with pytest.warns(RuntimeWarning, match="no compiler here") as record:
        assert not cpp_available()
        assert backend() == "torch"
    assert sum("could not build the C++ sweep kernel" in str(r.message) for r in record) == 1
    z0, w, codes, _ = make_block(5, 4)
    z = z0.clone()
    torch.testing.assert_close(sweep_forward(z, w, codes), sweep_forward_reference(z0, w, codes))


def test_the_build_is_keyed_by_source_and_flags():
    from ncg.kernels.build import extension_name

    assert extension_name("a", b"x", ["-O3"], ["/p"]) == extension_name("a", b"x", ["-O3"], ["/p"])
    assert extension_name("a", b"x", ["-O3"], ["/p"]) != extension_name("a", b"x", ["-O2"], ["/p"])
    assert extension_name("a", b"x", ["-O3"], ["/p"]) != extension_name("a", b"y", ["-O3"], ["/p"])
    assert extension_name("a", b"x", ["-O3"], ["/p"]) != extension_name("a", b"x", ["-O3", "/p"], [])


def test_a_stale_build_lock_is_removed_and_a_fresh_one_kept(tmp_path):
    import os
    import time

    from ncg.kernels.build import clear_stale_lock

    lock = tmp_path / "lock"
    lock.write_text("")
    assert not clear_stale_lock(tmp_path) and lock.exists()
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with pytest.warns(RuntimeWarning, match="stale build lock"):
        assert clear_stale_lock(tmp_path)
    assert not lock.exists() and not clear_stale_lock(tmp_path)
