"""In-block sequential sweep of the blocked FreeNet evaluator, forward and backward.

A FreeNet evaluates ``h = act(z)``, ``z = u + W^T h`` with ``W`` strictly upper triangular in a
topological order. The blocked evaluator brings the contributions of earlier blocks in with one
GEMM; what is left inside a block of ``b`` neurons is a sequence of ``b`` dependent steps, done
here over neuron-major activations (``[b, B]``: row ``j`` is neuron ``j`` over the batch).

Two backends compute the same thing:

* ``"cpp"``: a compiled CPU kernel (``sweep.cpp``), built on first use with
  :func:`torch.utils.cpp_extension.load` and cached by torch between processes. It handles
  float32 and float64 CPU tensors, skips edges of weight exactly 0, and spreads batch columns over
  torch's intra-op threads.
* ``"torch"``: :func:`sweep_forward_reference` / :func:`sweep_backward_reference`, plain PyTorch
  with a Python loop over neurons only. They are the oracle of the tests and the fallback for other
  devices and dtypes, for inputs that need autograd, when ``NCG_DISABLE_CPP=1`` is set, and when
  the build fails (which warns once).

Examples
--------
>>> import torch
>>> from ncg.kernels.sweep import ACTIVATION_CODES, sweep_forward, sweep_backward
>>> w = torch.tensor([[0.0, 2.0], [0.0, 0.0]])          # one edge, neuron 0 -> neuron 1
>>> codes = torch.tensor([ACTIVATION_CODES["relu"], ACTIVATION_CODES["identity"]],
...                      dtype=torch.uint8)
>>> z = torch.tensor([[1.0, -1.0], [0.5, 0.5]])        # two neurons, batch of two
>>> h = sweep_forward(z, w, codes)
>>> h
tensor([[1.0000, 0.0000],
        [2.5000, 0.5000]])
>>> z                                                  # updated in place
tensor([[ 1.0000, -1.0000],
        [ 2.5000,  0.5000]])
>>> sweep_backward(h, w, codes, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
tensor([[2., 0.],
        [1., 1.]])
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ncg.activations import ACTIVATIONS, BY_CODE, get_activation
from ncg.errors import NCGError
from ncg.kernels import build

__all__ = [
    "ACTIVATION_CODES",
    "activation_fn",
    "activation_derivative",
    "sweep_forward",
    "sweep_backward",
    "sweep_forward_reference",
    "sweep_backward_reference",
    "cpp_available",
    "backend",
]

ACTIVATION_CODES: dict[str, int] = {name: a.code for name, a in ACTIVATIONS.items()}
"""Activation name -> the uint8 code that ``codes`` tensors hold (the C++ kernel uses the same);
a view of :data:`ncg.activations.ACTIVATIONS`."""

_ACTIVATION_NAMES = {a.code: a.name for a in BY_CODE}

_SOURCE = Path(__file__).with_name("sweep.cpp")
_CPP_DTYPES = (torch.float32, torch.float64)


# ---------------------------------------------------------------------------- activations


def activation_fn(name: str) -> Callable[[Tensor], Tensor]:
    """The torch function of an activation.

    Parameters
    ----------
    name : str
        A key of :data:`ACTIVATION_CODES`.

    Returns
    -------
    callable
        ``act(z) -> h``, elementwise. ``"identity"`` returns a copy of its input.

    Raises
    ------
    NCGError
        If ``name`` is not a known activation.

    Examples
    --------
    >>> import torch
    >>> activation_fn("square_relu")(torch.tensor([-1.0, 3.0]))
    tensor([0., 9.])
    """
    return get_activation(name).fn


def activation_derivative(name: str) -> Callable[[Tensor], Tensor]:
    """The derivative of an activation, as a function of the activation where it is one.

    Most activations' derivatives are functions of their value, so the evaluators keep ``h``
    only; ``gelu`` and ``silu`` (``needs_preactivation``) take the pre-activation ``z`` instead,
    which the evaluators then keep too.

    Parameters
    ----------
    name : str
        A key of :data:`ACTIVATION_CODES`.

    Returns
    -------
    callable
        ``d(h) -> act'(z)`` where ``h = act(z)``: ``relu' = [h > 0]``,
        ``square_relu' = 2 sqrt(h)`` (``= 2 relu(z)``: ``sqrt(r * r) == r`` in binary floating
        point, barring underflow), ``tanh' = 1 - h^2``, ``sigmoid' = h (1 - h)``,
        ``elu' = 1 if h > 0 else h + 1``, ``leaky_relu' = 1 if h > 0 else 0.01``; or
        ``d(z) -> act'(z)`` for ``gelu`` and ``silu``.

    Raises
    ------
    NCGError
        If ``name`` is not a known activation.

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([-1.0, 0.0, 2.0])
    >>> activation_derivative("relu")(torch.relu(z))
    tensor([0., 0., 1.])
    >>> activation_derivative("square_relu")(torch.relu(z) ** 2)
    tensor([0., 0., 4.])
    """
    return get_activation(name).derivative


# ---------------------------------------------------------------------------- argument checks


def _check_block(z: Tensor, w: Tensor, codes: Tensor, ref: str = "z") -> None:
    """``z`` is the block's reference tensor, called ``ref`` in the messages."""
    if not isinstance(z, Tensor) or z.dim() != 2:
        found = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise NCGError(f"{ref} must be a 2-D tensor [b, B], got {found}")
    if not z.is_floating_point():
        raise NCGError(f"{ref} must have a floating-point dtype, got {z.dtype}")
    b = z.shape[0]
    if not isinstance(w, Tensor) or tuple(w.shape) != (b, b):
        found = tuple(w.shape) if isinstance(w, Tensor) else type(w).__name__
        raise NCGError(f"w must have shape ({b}, {b}) to match {ref}, got {found}")
    if w.dtype != z.dtype:
        raise NCGError(f"w must have dtype {z.dtype} like {ref}, got {w.dtype}")
    if w.device != z.device:
        raise NCGError(f"w must be on {z.device} like {ref}, got {w.device}")
    if not isinstance(codes, Tensor) or tuple(codes.shape) != (b,):
        found = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
        raise NCGError(f"codes must have shape ({b},) to match {ref}, got {found}")
    if codes.dtype != torch.uint8:
        raise NCGError(f"codes must have dtype torch.uint8, got {codes.dtype}")
    if codes.device != z.device and codes.device.type != "cpu":
        raise NCGError(f"codes must be on the CPU or on {z.device} like {ref}, got {codes.device}")


def _check_like(name: str, t: Tensor, z: Tensor, ref: str = "z") -> None:
    if not isinstance(t, Tensor) or t.shape != z.shape:
        found = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise NCGError(f"{name} must have shape {tuple(z.shape)} like {ref}, got {found}")
    if t.dtype != z.dtype:
        raise NCGError(f"{name} must have dtype {z.dtype} like {ref}, got {t.dtype}")
    if t.device != z.device:
        raise NCGError(f"{name} must be on {z.device} like {ref}, got {t.device}")


def _activation_names(codes: Tensor) -> list[str]:
    names = []
    for j, code in enumerate(codes.tolist()):
        if code not in _ACTIVATION_NAMES:
            raise NCGError(
                f"codes[{j}] = {code} is not an activation code "
                f"(0..{len(ACTIVATION_CODES) - 1})"
            )
        names.append(_ACTIVATION_NAMES[code])
    return names


# ---------------------------------------------------------------------------- reference


def sweep_forward_reference(
    z: Tensor, w: Tensor, codes: Tensor, *, out: Tensor | None = None
) -> Tensor:
    """Forward sweep in plain PyTorch: a Python loop over neurons, vectorised over the batch.

    Same contract as :func:`sweep_forward`; any device and floating dtype. It is differentiable
    by autograd when ``z`` is a non-leaf tensor (for example ``z_in.clone()``).

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0], [0.5]])
    >>> w = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    >>> codes = torch.tensor([0, 2], dtype=torch.uint8)              # identity, square_relu
    >>> sweep_forward_reference(z, w, codes)
    tensor([[1.0000],
            [6.2500]])
    >>> z[1]
    tensor([2.5000])
    """
    _check_block(z, w, codes)
    if out is not None:
        _check_like("out", out, z)
    names = _activation_names(codes)
    b = z.shape[0]
    rows = []
    for j, name in enumerate(names):
        # Under autograd, a copy: an activation that saves its input (gelu, silu, elu) must not see
        # the later in-place updates of z.
        h_j = ACTIVATIONS[name].fn(z[j].clone() if z.requires_grad else z[j])
        rows.append(h_j)
        if j + 1 < b:
            z[j + 1 :].addr_(w[j, j + 1 :], h_j)
    h = torch.stack(rows) if rows else torch.empty_like(z, memory_format=torch.contiguous_format)
    return h if out is None else out.copy_(h)


def _check_preactivations(names: list[str], z: Tensor | None, h: Tensor) -> None:
    """``z`` is like ``h``, or None where no activation among ``names`` needs it."""
    if z is not None:
        _check_like("z", z, h, "h")
        return
    for j, name in enumerate(names):
        if ACTIVATIONS[name].needs_preactivation:
            raise NCGError(
                f"z is required: codes[{j}] = {ACTIVATION_CODES[name]} is an activation whose derivative "
                "needs the pre-activation"
            )


def sweep_backward_reference(
    h: Tensor, w: Tensor, codes: Tensor, dh: Tensor, *, out: Tensor | None = None, z: Tensor | None = None
) -> Tensor:
    """Backward sweep in plain PyTorch: a Python loop over neurons, vectorised over the batch.

    Same contract as :func:`sweep_backward`; any device and floating dtype.

    Examples
    --------
    >>> import torch
    >>> h = torch.tensor([[1.0], [6.25]])
    >>> w = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    >>> codes = torch.tensor([0, 2], dtype=torch.uint8)              # identity, square_relu
    >>> sweep_backward_reference(h, w, codes, torch.tensor([[0.0], [1.0]]))
    tensor([[10.],
            [ 5.]])
    """
    _check_block(h, w, codes, "h")
    _check_like("dh", dh, h, "h")
    if out is not None:
        _check_like("out", out, h, "h")
    names = _activation_names(codes)
    _check_preactivations(names, z, h)
    g = torch.empty_like(h, memory_format=torch.contiguous_format) if out is None else out
    for j in reversed(range(len(names))):
        g[j] = dh[j] * ACTIVATIONS[names[j]].derivative_at(h[j], None if z is None else z[j])
        if j > 0:
            dh[:j].addr_(w[:j, j], g[j])
    return g


# ---------------------------------------------------------------------------- compiled kernel


def _extension():
    """The compiled kernel's module, built on first use (:mod:`ncg.kernels.build`), or None."""
    return build.extension(_SOURCE)


def cpp_available() -> bool:
    """Whether the compiled CPU kernel is in use (builds it on the first call).

    False when ``NCG_DISABLE_CPP=1`` is set or the build failed.
    """
    return _extension() is not None


def backend() -> str:
    """``"cpp"`` when the compiled CPU kernel is in use, else ``"torch"`` (the reference)."""
    return "cpp" if cpp_available() else "torch"


def _cpp_for(tensors: tuple[Tensor, ...], out: Tensor | None):
    """The extension module when it should run on these tensors, else None.

    The kernel takes float32/float64 CPU tensors that need no autograd; it validates shapes,
    dtypes and codes itself, so the fast path pays for no Python-side checks. Anything else goes
    to the reference, which checks its arguments in Python.
    """
    if out is not None:
        tensors = (*tensors, out)
    if not all(isinstance(t, Tensor) for t in tensors):
        return None
    z = tensors[0]
    if z.device.type != "cpu" or z.dtype not in _CPP_DTYPES:
        return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    return _extension()


def _call(op, *args) -> Tensor:
    try:
        return op(*args)
    except ValueError as exc:  # from TORCH_CHECK_VALUE; re-raised as the package's error type
        raise NCGError(str(exc)) from None


def sweep_forward(z: Tensor, w: Tensor, codes: Tensor, *, out: Tensor | None = None) -> Tensor:
    """Sequential forward sweep through one block of neurons.

    For ``j = 0..b-1``: ``h[j] = act_j(z[j])``, then ``z[k] += w[j, k] * h[j]`` for ``k > j``.

    Parameters
    ----------
    z : Tensor
        ``[b, B]`` pre-activations holding ``u`` plus the contributions of earlier blocks.
        **Modified in place** to hold the final pre-activations.
    w : Tensor
        ``[b, b]``, ``w[i, k]`` is the weight of the edge ``i -> k``; only ``i < k`` is read.
    codes : Tensor
        ``uint8 [b]``, the activation code of each neuron (:data:`ACTIVATION_CODES`).
    out : Tensor, optional
        ``[b, B]`` tensor to write ``h`` into (for example rows of a larger activation matrix),
        instead of allocating one. It may be ``z`` itself (each row's ``z`` is final before its
        ``h`` overwrites it), but must not overlap it otherwise.

    Returns
    -------
    Tensor
        ``h``, ``[b, B]``: ``out`` if given, else a new contiguous tensor.

    Raises
    ------
    NCGError
        A ``ValueError`` naming the argument whose shape, dtype, device or code is wrong.

    Notes
    -----
    Float32/float64 CPU tensors run in the compiled kernel; anything else, and inputs that need
    autograd, run in :func:`sweep_forward_reference`.
    """
    ext = _cpp_for((z, w, codes), out)
    if ext is None:
        return sweep_forward_reference(z, w, codes, out=out)
    return _call(ext.sweep_forward, z, w, codes, out)


def sweep_backward(
    h: Tensor, w: Tensor, codes: Tensor, dh: Tensor, *, out: Tensor | None = None, z: Tensor | None = None
) -> Tensor:
    """Sequential backward sweep through one block of neurons.

    For ``j = b-1..0``: ``g[j] = dh[j] * act_j'(z[j])``, then ``dh[i] += w[i, j] * g[j]`` for
    ``i < j``. The derivative is computed from ``h`` alone (:func:`activation_derivative`), or
    from ``z`` for the activations that need it.

    Parameters
    ----------
    h : Tensor
        ``[b, B]`` activations of the block (from :func:`sweep_forward`).
    w : Tensor
        ``[b, b]`` block weights, as in :func:`sweep_forward`.
    codes : Tensor
        ``uint8 [b]`` activation codes.
    dh : Tensor
        ``[b, B]`` gradient of the loss w.r.t. ``h`` from outside the block. **Modified in place**
        to hold the total gradient w.r.t. ``h``, unless ``out`` is ``dh``.
    out : Tensor, optional
        ``[b, B]`` tensor to write ``g`` into instead of allocating one. It may be ``dh`` itself
        (``dh`` then becomes ``g`` in place: each row of ``dh`` is final before its ``g`` is
        written), but must not overlap ``h`` or ``dh`` otherwise.
    z : Tensor, optional
        ``[b, B]`` final pre-activations (``z`` after :func:`sweep_forward`); required when a
        code's activation ``needs_preactivation`` (``gelu``, ``silu``), unused otherwise.

    Returns
    -------
    Tensor
        ``g = dL/dz``, ``[b, B]``: ``out`` if given, else a new contiguous tensor. It is also
        ``dL/dz_in`` for the ``z`` that entered :func:`sweep_forward`.

    Raises
    ------
    NCGError
        A ``ValueError`` naming the argument whose shape, dtype, device or code is wrong.
    """
    ext = _cpp_for((h, w, codes, dh), out)
    if ext is None:
        return sweep_backward_reference(h, w, codes, dh, out=out, z=z)
    return _call(ext.sweep_backward, h, w, codes, dh, out, z)
