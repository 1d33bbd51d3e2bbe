"""What an activation is: one record per activation, and the one table every part of ncg reads.

A neuron computes ``h = act(z)``. Each :class:`Activation` record holds everything ncg needs to
know about one ``act``: its name, the uint8 code that ``codes`` tensors and the C++ kernel
(``ncg/kernels/sweep.cpp``, ``enum Activation``) use, its torch function, its derivative (a
function of the output ``h`` where one exists, so that the evaluators keep ``h`` only; of the
pre-activation ``z`` otherwise, which the evaluators then keep as well), the threshold above which
a neuron counts as firing, whether a neuron that does not fire outputs exactly 0, its ``torch.nn``
module (for :meth:`FreeNet.from_mlp <ncg.model.FreeNet.from_mlp>`) and the default
``init_scale`` of a network of such neurons. :data:`ACTIVATIONS` maps names to records; the
kernel's codes, the model's checks, the exporters, the firing thresholds of Free-Evolve and the
numpy evaluator of ``docs/graphml.md`` all derive from it (``tests/test_activations.py`` holds the
C++ enum and switches and the documentation against it).

Adding an activation: a record here, an enum entry and one case in each of ``activate_row`` and
``derivative_row`` in ``sweep.cpp`` (a derivative of ``z`` reads ``z[t]`` there, and its
enumerator joins ``needs_preactivation`` beside the enum), and one entry of ``acts`` in
``docs/graphml.md``.

Examples
--------
>>> import torch
>>> from ncg.activations import ACTIVATIONS
>>> sigmoid = ACTIVATIONS["sigmoid"]
>>> sigmoid.code, sigmoid.firing_threshold, sigmoid.zero_when_silent
(4, 0.5, False)
>>> h = sigmoid.fn(torch.tensor([0.0]))
>>> h, sigmoid.derivative(h)
(tensor([0.5000]), tensor([0.2500]))
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncg.errors import NCGError

if TYPE_CHECKING:
    from ncg.model import FreeNet

__all__ = [
    "Activation",
    "ACTIVATIONS",
    "BY_CODE",
    "SquareReLU",
    "get_activation",
    "firing_thresholds",
    "needs_preactivation",
]


class SquareReLU(nn.Module):
    """``relu(x) ** 2``: with it, k neurons of a complete DAG represent any degree-k polynomial.

    Examples
    --------
    >>> SquareReLU()(torch.tensor([-1.0, 3.0]))
    tensor([0., 9.])
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x).square()


@dataclass(frozen=True)
class Activation:
    """One activation function and everything ncg needs to know about it.

    Attributes
    ----------
    name : str
        The name users pass (``FreeNet(activation=name)``) and files store.
    code : int
        The uint8 code in ``codes`` tensors; the C++ kernel's ``enum Activation`` has the same.
    fn : callable
        ``act(z) -> h``, elementwise, in torch (the reference evaluators and the exporters).
    derivative : callable
        ``d(h) -> act'(z)`` where ``h = act(z)``: the derivative from the output alone; or
        ``d(z) -> act'(z)`` when ``needs_preactivation`` (use :meth:`derivative_at`).
    firing_threshold : float
        A neuron fires when its activation is above this (coactivation, firing rates).
    zero_when_silent : bool
        A neuron that does not fire outputs exactly 0 (relu-like), so removing a never-firing
        neuron leaves the function unchanged.
    module : type of nn.Module
        The ``torch.nn`` module computing ``fn`` (``FreeNet.from_mlp`` reads it; the exporters
        call it).
    init_scale : float, default 1.0
        Default factor on the initial edge weights of a network with this hidden activation.
    needs_preactivation : bool, default False
        ``act'`` is no function of ``h`` (``gelu``, ``silu``): ``derivative`` takes ``z``, and
        the evaluators keep ``z`` (one more ``[N, B]`` buffer) when a neuron has this activation.

    Examples
    --------
    >>> relu = ACTIVATIONS["relu"]
    >>> relu.module.__name__, relu.zero_when_silent
    ('ReLU', True)
    >>> ACTIVATIONS["gelu"].needs_preactivation
    True
    """

    name: str
    code: int
    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    firing_threshold: float
    zero_when_silent: bool
    module: type[nn.Module]
    init_scale: float = 1.0
    needs_preactivation: bool = False

    def derivative_at(self, h: Tensor, z: Tensor | None) -> Tensor:
        """``act'(z)`` from what it needs: ``z`` when :attr:`needs_preactivation`, else ``h``.

        Examples
        --------
        >>> z = torch.tensor([-1.0, 2.0])
        >>> ACTIVATIONS["elu"].derivative_at(torch.nn.functional.elu(z), None)
        tensor([0.3679, 1.0000])
        >>> ACTIVATIONS["silu"].derivative_at(torch.nn.functional.silu(z), z)
        tensor([0.0723, 1.0908])
        """
        if not self.needs_preactivation:
            return self.derivative(h)
        if z is None:
            raise NCGError(f"the derivative of {self.name} needs the pre-activation z, got None")
        return self.derivative(z)


def _identity(x: Tensor) -> Tensor:
    # A copy, so that later in-place updates of the block's z never reach an h row (autograd).
    return x.clone()


def _square_relu(x: Tensor) -> Tensor:
    return torch.relu(x).square()


def _identity_derivative(h: Tensor) -> Tensor:
    return torch.ones_like(h)


def _relu_derivative(h: Tensor) -> Tensor:
    return (h > 0).to(h.dtype)


def _square_relu_derivative(h: Tensor) -> Tensor:
    # = 2 relu(z): sqrt(r * r) == r in binary floating point, barring underflow.
    return 2 * torch.sqrt(h)


def _tanh_derivative(h: Tensor) -> Tensor:
    return 1 - h * h


def _sigmoid_derivative(h: Tensor) -> Tensor:
    return h * (1 - h)


_LEAKY_SLOPE = 0.01
"""``leaky_relu``'s slope below 0, ``nn.LeakyReLU``'s default."""


def _leaky_relu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, _LEAKY_SLOPE)


def _leaky_relu_derivative(h: Tensor) -> Tensor:
    return torch.full_like(h, _LEAKY_SLOPE).masked_fill_(h > 0, 1.0)


def _elu_derivative(h: Tensor) -> Tensor:
    # alpha = 1: h = exp(z) - 1 below 0, so exp(z) = h + 1.
    return torch.where(h > 0, torch.ones_like(h), h + 1)


def _gelu_derivative(z: Tensor) -> Tensor:
    # Phi(z) + z phi(z), the exact (erf) form.
    return 0.5 * (1 + torch.erf(z * math.sqrt(0.5))) + z * torch.exp(-0.5 * z * z) * (0.5 * math.sqrt(2 / math.pi))


def _silu_derivative(z: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1 + z * (1 - s))


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", 0, _identity, _identity_derivative, 0.0, False, nn.Identity),
        Activation("relu", 1, torch.relu, _relu_derivative, 0.0, True, nn.ReLU),
        # relu(z)^2 compounds along a deep DAG: half-size initial weights keep it finite.
        Activation("square_relu", 2, _square_relu, _square_relu_derivative, 0.0, True, SquareReLU, init_scale=0.5),
        Activation("tanh", 3, torch.tanh, _tanh_derivative, 0.0, False, nn.Tanh),
        Activation("sigmoid", 4, torch.sigmoid, _sigmoid_derivative, 0.5, False, nn.Sigmoid),
        Activation("gelu", 5, F.gelu, _gelu_derivative, 0.0, False, nn.GELU, needs_preactivation=True),
        Activation("silu", 6, F.silu, _silu_derivative, 0.0, False, nn.SiLU, needs_preactivation=True),
        Activation("elu", 7, F.elu, _elu_derivative, 0.0, False, nn.ELU),
        Activation("leaky_relu", 8, _leaky_relu, _leaky_relu_derivative, 0.0, False, nn.LeakyReLU),
    )
}
"""Every activation ncg supports, by name, in code order."""

BY_CODE: tuple[Activation, ...] = tuple(sorted(ACTIVATIONS.values(), key=lambda a: a.code))
"""The records indexed by code (the codes are ``0 .. len(ACTIVATIONS) - 1``)."""


def get_activation(name: str) -> Activation:
    """The record of the activation called ``name``.

    Raises
    ------
    NCGError
        If ``name`` is not a known activation.

    Examples
    --------
    >>> get_activation("tanh").code
    3
    >>> get_activation("softplus")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: unknown activation 'softplus'; expected one of ['elu', 'gelu', 'identity', ...]
    """
    if name not in ACTIVATIONS:
        raise NCGError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def firing_thresholds(model: FreeNet) -> Tensor:
    """Per-neuron firing thresholds ``[N]`` of a FreeNet, from each neuron's activation.

    Hidden neurons use ``model.activation``'s threshold, outputs ``model.output_activation``'s,
    and input nodes identity's (they hold the input as it is).

    Examples
    --------
    >>> from ncg import NCG, FreeNet
    >>> net = FreeNet(NCG.complete(3), in_features=2, activation="sigmoid")
    >>> firing_thresholds(net).tolist()
    [0.5, 0.5, 0.0]
    """
    thresholds = torch.full((model.num_neurons,), ACTIVATIONS[model.activation].firing_threshold)
    thresholds[model.outputs.cpu()] = ACTIVATIONS[model.output_activation].firing_threshold
    thresholds[model.inputs.cpu()] = ACTIVATIONS["identity"].firing_threshold
    return thresholds


_NEEDS_PREACTIVATION = np.array([a.needs_preactivation for a in BY_CODE])


def needs_preactivation(codes: Tensor) -> bool:
    """Whether any of ``codes`` (activation codes) has a derivative that needs ``z``: the
    evaluators then keep ``z`` beside ``h``.

    Examples
    --------
    >>> needs_preactivation(torch.tensor([0, 1, 7], dtype=torch.uint8))
    False
    >>> needs_preactivation(torch.tensor([1, ACTIVATIONS["gelu"].code], dtype=torch.uint8))
    True
    """
    return bool(_NEEDS_PREACTIVATION[codes.cpu().numpy()].any())
