"""What an activation is: one record per activation, and the one table every part of ncg reads.

A neuron computes ``h = act(z)``. Each :class:`Activation` record holds everything ncg needs to
know about one ``act``: its name, the uint8 code that ``codes`` tensors and the C++ kernel
(``ncg/kernels/sweep.cpp``, ``enum Activation``) use, its torch function, its derivative as a
function of the output ``h`` (so the evaluators keep ``h`` only, never ``z``), the threshold above
which a neuron counts as firing, whether a neuron that does not fire outputs exactly 0, its
``torch.nn`` module (for :meth:`FreeNet.from_mlp <ncg.model.FreeNet.from_mlp>`) and the default
``init_scale`` of a network of such neurons. :data:`ACTIVATIONS` maps names to records; the
kernel's codes, the model's checks, the exporters, the firing thresholds of Free-Evolve and the
numpy evaluator of ``docs/graphml.md`` all derive from it (``tests/test_activations.py`` holds the
C++ enum and switches and the documentation against it).

Adding an activation whose derivative is a function of ``h``: a record here, an enum entry and
one case in each of ``activate_row`` and ``derivative_row`` in ``sweep.cpp``, and one entry of
``acts`` in ``docs/graphml.md``.

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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from ncg.errors import NCGError

if TYPE_CHECKING:
    from ncg.model import FreeNet

__all__ = ["Activation", "ACTIVATIONS", "BY_CODE", "SquareReLU", "get_activation", "firing_thresholds"]


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
        ``d(h) -> act'(z)`` where ``h = act(z)``: the derivative from the output alone.
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

    Examples
    --------
    >>> relu = ACTIVATIONS["relu"]
    >>> relu.module.__name__, relu.zero_when_silent
    ('ReLU', True)
    """

    name: str
    code: int
    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    firing_threshold: float
    zero_when_silent: bool
    module: type[nn.Module]
    init_scale: float = 1.0


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


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", 0, _identity, _identity_derivative, 0.0, False, nn.Identity),
        Activation("relu", 1, torch.relu, _relu_derivative, 0.0, True, nn.ReLU),
        # relu(z)^2 compounds along a deep DAG: half-size initial weights keep it finite.
        Activation("square_relu", 2, _square_relu, _square_relu_derivative, 0.0, True, SquareReLU, init_scale=0.5),
        Activation("tanh", 3, torch.tanh, _tanh_derivative, 0.0, False, nn.Tanh),
        Activation("sigmoid", 4, torch.sigmoid, _sigmoid_derivative, 0.5, False, nn.Sigmoid),
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
    >>> get_activation("gelu")
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: unknown activation 'gelu'; expected one of ['identity', 'relu', 'sigmoid', 'square_relu', 'tanh']
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
