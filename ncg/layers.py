"""Topology constraints: a layer per neuron and the layer pairs an edge may join.

A FreeNet is layer-free: any neuron may feed any later one. To ask whether that freedom pays, the
same rules must also run on *layered* graphs. A constraint is two tensors carried by the
:class:`~ncg.graph.NCG` itself (``graph.layer`` and ``graph.allowed_layers``), so that it survives
edits, checkpoints and GraphML:

* ``layer`` (``[N]`` long): the layer of each neuron, input nodes in layer 0;
* ``allowed_layers`` (``[L, L]`` bool): ``allowed_layers[a, b]`` says whether an edge may go from
  a neuron of layer ``a`` to one of layer ``b``.

:func:`consecutive` allows ``a -> a + 1`` only (a layered MLP), :func:`with_skips` every
``a -> b`` with ``b > a`` (a DenseNet-like MLP), and ``None`` (no constraint) is layer-free.
:func:`allows` is the one test every start, regrowth and neuron operator applies to its
candidate edges, and :func:`ncg.evolve.apply.apply_edits` refuses a forbidden edge, so that any
rule runs on a layered or a layer-free graph by changing only the constraint.

Examples
--------
>>> consecutive(3).int().tolist()
[[0, 1, 0], [0, 0, 1], [0, 0, 0]]
>>> with_skips(3).int().tolist()
[[0, 1, 1], [0, 0, 1], [0, 0, 0]]
>>> from ncg.build import sparse_start
>>> g = sparse_start(4, 6, 2, density=1.0, layers=(3, 3), seed=0)
>>> g.layer.tolist(), g.num_edges == 4 * 3 + 3 * 3 + 3 * 2
([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3], True)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ncg.errors import NCGError

__all__ = ["CONNECTIONS", "consecutive", "with_skips", "within_reach", "allowed_layers", "layer_of_sizes", "allows",
           "describe"]

CONNECTIONS = ("consecutive", "skips")
"""How the layers of a layered start connect: ``consecutive`` (an MLP) or ``skips`` (every
later layer, DenseNet-like)."""


def consecutive(num_layers: int) -> Tensor:
    """``[L, L]`` bool: edges only from layer ``a`` to layer ``a + 1`` (a layered MLP)."""
    return torch.diag(torch.ones(max(num_layers - 1, 0), dtype=torch.bool), 1)


def with_skips(num_layers: int) -> Tensor:
    """``[L, L]`` bool: edges from layer ``a`` to every later layer ``b > a`` (DenseNet-like)."""
    return torch.ones(num_layers, num_layers, dtype=torch.bool).triu(1)


def within_reach(num_layers: int, reach: int) -> Tensor:
    """``[L, L]`` bool of a hop cap: layer 0 (the inputs) feeds every later layer, the last
    layer (the outputs) is fed by every earlier one, and between the layers in between an edge
    may go forward at most ``reach`` layers. With one hidden neuron per layer this caps an
    edge's distance in the topological order of the hidden neurons (local-first wiring), while
    inputs and outputs stay reachable from everywhere.

    Raises
    ------
    NCGError
        If ``reach`` is not an int >= 1.

    Examples
    --------
    >>> within_reach(5, 1).int().tolist()
    [[0, 1, 1, 1, 1], [0, 0, 1, 0, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    """
    if not isinstance(reach, int) or isinstance(reach, bool) or reach < 1:
        raise NCGError(f"reach must be an int >= 1, got {reach!r}")
    a, b = torch.arange(num_layers)[:, None], torch.arange(num_layers)[None, :]
    return (b > a) & ((b - a <= reach) | (a == 0) | (b == num_layers - 1))


def allowed_layers(num_layers: int, connect: str) -> Tensor:
    """The ``[L, L]`` matrix of the connection scheme ``connect`` (one of :data:`CONNECTIONS`).

    Raises
    ------
    NCGError
        If ``connect`` is not one of :data:`CONNECTIONS`.
    """
    if connect not in CONNECTIONS:
        raise NCGError(f"connect must be one of {CONNECTIONS}, got {connect!r}")
    return consecutive(num_layers) if connect == "consecutive" else with_skips(num_layers)


def layer_of_sizes(sizes: Sequence[int]) -> Tensor:
    """``[sum(sizes)]`` long: layer ``k`` for the ``sizes[k]`` consecutive nodes of layer ``k``.

    Examples
    --------
    >>> layer_of_sizes([2, 1, 3]).tolist()
    [0, 0, 1, 2, 2, 2]
    """
    return torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(list(sizes), dtype=torch.long))


def allows(layer: Tensor | None, allowed: Tensor | None, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Bool per candidate edge ``src[k] -> dst[k]`` (neuron indices): whether the constraint
    ``(layer, allowed)`` permits it; all True when there is no constraint (``allowed`` None).

    Examples
    --------
    >>> layer = torch.tensor([0, 1, 2])
    >>> allows(layer, consecutive(3), np.array([0, 0, 1]), np.array([1, 2, 2])).tolist()
    [True, False, True]
    >>> allows(None, None, np.array([0]), np.array([2])).tolist()
    [True]
    """
    if allowed is None:
        return np.ones(np.shape(src), dtype=bool)
    layers = layer.numpy()
    return allowed.numpy()[layers[src], layers[dst]]


def describe(allowed: Tensor | None) -> str:
    """A short name for a constraint: ``layer-free``, ``consecutive``, ``skips`` or ``custom``.

    Examples
    --------
    >>> describe(None), describe(consecutive(4)), describe(with_skips(4))
    ('layer-free', 'consecutive', 'skips')
    """
    if allowed is None:
        return "layer-free"
    for connect in CONNECTIONS:
        if torch.equal(allowed, allowed_layers(allowed.shape[0], connect)):
            return connect
    return "custom"
