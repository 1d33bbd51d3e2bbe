"""Graph constructors as free functions: sparse starts in which input connections are edges, and
the graph of a layered MLP.

:func:`sparse_start` builds the whole network as one sparse DAG: ``F`` input nodes (one per
input feature), ``H`` hidden neurons and ``K`` output neurons, wired at random with a per-neuron
fan-in or an Erdos-Renyi density, so that memory and compute are O(edges) from the first step
instead of the complete DAG's O(N^2) plus a dense ``N x F`` encoder. :func:`layered_start` does
the same with a bounded depth and fully vectorised, for a million neurons. :func:`mlp_graph`
reads an ``nn.Sequential`` MLP as a graph (what :meth:`FreeNet.from_mlp
<ncg.model.FreeNet.from_mlp>` builds its model on).

Examples
--------
>>> g = sparse_start(num_inputs=16, num_hidden=8, num_outputs=2, fan_in=4, seed=0)
>>> g
NCG(neurons=26, edges=42, outputs=2, inputs=16)
>>> g.num_input_edges > 0, bool(g.reaches_output()[16:].all())
(True, True)
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ncg.activations import ACTIVATIONS
from ncg.errors import NCGError
from ncg.graph import NCG, init_edge_weights
from ncg.layers import allowed_layers, layer_of_sizes, within_reach

__all__ = ["sparse_start", "INITS", "initialized", "lift_constraint", "layered_start", "mlp_graph", "MLPGraph"]


def sparse_start(
    num_inputs: int,
    num_hidden: int,
    num_outputs: int,
    fan_in: int | None = None,
    density: float | None = None,
    seed: int | None = None,
    layers: Sequence[int] | None = None,
    connect: str | torch.Tensor = "consecutive",
    reach: int | None = None,
) -> NCG:
    """A random sparse DAG over input nodes, hidden neurons and outputs, layer-free or layered.

    Nodes ``0 .. F-1`` are the inputs, then ``H`` hidden neurons, then ``K`` outputs (the
    topological order). A hidden neuron may take edges from any input and any earlier hidden
    neuron; an output from any input or hidden neuron. Give exactly one of:

    * ``fan_in``: every hidden and output neuron draws ``fan_in`` distinct sources uniformly
      from the nodes it may take (all of them if fewer);
    * ``density``: every allowed pair is an edge with probability ``density`` (Erdos-Renyi, as
      SET starts), with at least one incoming edge per neuron.

    Then every hidden neuron without a path to an output gets one edge to a random later neuron
    that has one, so every neuron descends from the inputs and reaches an output. Weights are
    fan-in scaled (:func:`~ncg.graph.init_edge_weights`).

    ``layers`` (hidden layer sizes summing to ``num_hidden``) makes the graph layered: inputs in
    layer 0, the hidden layers 1, 2, ..., the outputs last, and a neuron takes sources only from
    the layers ``connect`` allows into its own (``consecutive``: the layer before it, so
    ``density=1.0`` is the MLP of that shape; ``skips``: every earlier layer). The graph carries
    the constraint (:mod:`ncg.layers`), so every later edit keeps it. ``connect`` may also be
    the ``[L, L]`` bool matrix itself over the ``L = len(layers) + 2`` layers (inputs, hidden
    layers, outputs). ``reach`` is a hop cap: every hidden neuron its own layer under
    :func:`ncg.layers.within_reach`, so an edge between hidden neurons spans at most ``reach`` of
    them in the order while inputs feed every neuron and every neuron the outputs.

    Raises
    ------
    NCGError
        A size is not positive (``num_hidden`` may be 0), or not exactly one of ``fan_in`` and
        ``density`` is given, or it is out of range, or ``layers`` has a size below 1 or does
        not sum to ``num_hidden``, or ``connect`` is unknown, or ``reach`` is given with
        ``layers`` or is below 1.

    Examples
    --------
    >>> g = sparse_start(num_inputs=4, num_hidden=3, num_outputs=1, density=1.0, seed=0)
    >>> g.num_edges == 3 * 4 + 3 * 2 // 2 + 1 * (4 + 3)
    True
    """
    for name, value, low in (("num_inputs", num_inputs, 1), ("num_hidden", num_hidden, 0), ("num_outputs", num_outputs, 1)):
        if not isinstance(value, int) or value < low:
            raise NCGError(f"{name} must be an int >= {low}, got {value!r}")
    if (fan_in is None) == (density is None):
        raise NCGError("give exactly one of fan_in and density")
    if fan_in is not None and (not isinstance(fan_in, int) or fan_in < 1):
        raise NCGError(f"fan_in must be an int >= 1, got {fan_in!r}")
    if density is not None and not 0.0 < density <= 1.0:
        raise NCGError(f"density must be in (0, 1], got {density}")
    if reach is not None:
        if layers is not None:
            raise NCGError("give at most one of layers and reach (a hop cap gives every hidden neuron a layer of its own)")
        layers, connect = (1,) * num_hidden, within_reach(num_hidden + 2, reach)
    rng = np.random.default_rng(seed)
    f, h = num_inputs, num_hidden
    n = f + h + num_outputs
    constraint = {} if layers is None else _layer_constraint(f, h, num_outputs, layers, connect)
    may_feed = _may_feed(f + h, constraint)
    sources, targets = [], []
    for j in range(f, n):
        pool = may_feed(j)
        count = min(fan_in, pool.size) if fan_in is not None else max(1, rng.binomial(pool.size, density))
        sources.append(pool[rng.choice(pool.size, size=count, replace=False)])
        targets.append(np.full(count, j))
    src, dst = np.concatenate(sources), np.concatenate(targets)
    reaches = np.zeros(n, dtype=bool)
    reaches[f + h:] = True
    extra_src, extra_dst = [], []
    # Hidden neurons from last to first: a neuron reaches an output if any successor does.
    successors: dict[int, list[int]] = {}
    for s, d in zip(src.tolist(), dst.tolist()):
        if s >= f:
            successors.setdefault(s, []).append(d)
    fed_by = _fed_by(n, constraint)
    for v in range(f + h - 1, f - 1, -1):
        if any(reaches[w] for w in successors.get(v, ())):
            reaches[v] = True
            continue
        later = np.flatnonzero(reaches[v + 1:] & fed_by(v)[v + 1:]) + v + 1
        target = int(rng.choice(later))
        extra_src.append(v)
        extra_dst.append(target)
        reaches[v] = True
    src = np.concatenate([src, np.array(extra_src, dtype=np.int64)])
    dst = np.concatenate([dst, np.array(extra_dst, dtype=np.int64)])
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return NCG(
        edge_index, n, outputs=torch.arange(f + h, n), weight=init_edge_weights(edge_index, n, generator),
        order=torch.arange(n), inputs=torch.arange(f), **constraint,
    )


INITS = ("fan_in", "he", "by_source")
"""Schemes of :func:`initialized`."""


def initialized(graph: NCG, init: str, seed: int) -> NCG:
    """``graph`` with its edge weights drawn by the scheme ``init`` (:data:`INITS`); ``fan_in``
    keeps the builders' weights.

    Examples
    --------
    >>> g = sparse_start(4, 3, 1, density=1.0, seed=0)
    >>> bound = float(initialized(g, "he", 0).weight.abs().max() / g.weight.abs().max())
    >>> 1.0 < bound <= 6 ** 0.5 * 2
    True
    """
    if init == "fan_in":
        return graph
    src, dst = graph.edge_index
    if init == "he":
        count = torch.bincount(dst, minlength=graph.num_neurons)[dst]
        bound = (6.0 / count.clamp(min=1).double()).sqrt()
    elif init == "by_source":
        from_input = graph.is_input[src].long()
        group = dst * 2 + from_input
        count = torch.bincount(group, minlength=2 * graph.num_neurons)[group]
        bound = count.clamp(min=1).double().rsqrt()
    else:
        raise NCGError(f"init must be one of {INITS}, got {init!r}")
    generator = torch.Generator().manual_seed(seed)
    uniform = 2 * torch.rand(graph.num_edges, generator=generator, dtype=torch.float64) - 1
    graph = graph.clone()
    graph.weight = (uniform * bound).to(graph.weight.dtype)
    return graph


def lift_constraint(graph: NCG) -> NCG:
    """A copy of ``graph`` without its topology constraint (:mod:`ncg.layers`): the same edges,
    weights, biases and order, from which every rule may wire any neuron to any later one. A
    layered start lifted this way is "start layered, then free the edges".

    Examples
    --------
    >>> g = sparse_start(4, 6, 2, density=1.0, layers=(3, 3), seed=0)
    >>> free = lift_constraint(g)
    >>> free.allowed_layers is None, bool((free.edge_index == g.edge_index).all())
    (True, True)
    """
    return NCG(graph.edge_index.clone(), graph.num_neurons, graph.outputs.clone(), weight=graph.weight.clone(),
               bias=graph.bias.clone(), order=graph.order.clone(), neuron_ids=graph.neuron_ids.clone(),
               inputs=graph.inputs.clone(), unreachable="ignore")


def _layer_constraint(f: int, h: int, k: int, layers: Sequence[int], connect: str | torch.Tensor
                      ) -> dict[str, torch.Tensor]:
    """``layer`` and ``allowed_layers`` of inputs, hidden ``layers`` and outputs."""
    layers = list(layers)
    if not layers or any(not isinstance(s, int) or s < 1 for s in layers) or sum(layers) != h:
        raise NCGError(f"layers must be hidden layer sizes >= 1 summing to num_hidden = {h}, got {layers}")
    sizes = [f, *layers, k]
    if isinstance(connect, torch.Tensor):
        if connect.dtype != torch.bool or tuple(connect.shape) != (len(sizes),) * 2:
            raise NCGError(f"connect as a matrix must be [L, L] bool over the L = {len(sizes)} layers (inputs, "
                           f"hidden, outputs), got {connect.dtype} of shape {tuple(connect.shape)}")
        return {"layer": layer_of_sizes(sizes), "allowed_layers": connect}
    return {"layer": layer_of_sizes(sizes), "allowed_layers": allowed_layers(len(sizes), connect)}


def _may_feed(last_source: int, constraint: dict) -> Callable[[int], np.ndarray]:
    """``pool(j)``: the nodes that may feed node ``j``, ascending: every earlier input and hidden
    neuron (outputs do not feed outputs), or, under a constraint, those of the layers allowed
    into ``j``'s layer."""
    if not constraint:
        return lambda j: np.arange(min(j, last_source))
    layer, allowed = constraint["layer"].numpy(), constraint["allowed_layers"].numpy()
    return lambda j: np.flatnonzero(allowed[layer, layer[j]])


def _fed_by(n: int, constraint: dict) -> Callable[[int], np.ndarray]:
    """``mask(v)``: bool ``[n]``, the nodes node ``v`` may feed (all, without a constraint)."""
    if not constraint:
        return lambda v: np.ones(n, dtype=bool)
    layer, allowed = constraint["layer"].numpy(), constraint["allowed_layers"].numpy()
    return lambda v: allowed[layer[v], layer]


def layered_start(
    num_inputs: int, num_hidden: int, num_outputs: int, depth: int, fan_in: int, seed: int | None = None
) -> NCG:
    """A random sparse DAG of bounded depth, built in O(edges) with array operations.

    The ``H`` hidden neurons are cut into ``depth`` consecutive groups. Every neuron of group
    ``k`` draws ``fan_in`` sources uniformly from the inputs and groups ``< k``, every output
    from the inputs and all hidden neurons (draws that repeat a pair are dropped, so a few
    neurons get fewer). Then every hidden neuron without an outgoing edge gets one to a random
    neuron of the next group (an output after the last), so every neuron reaches an output and
    the longest path has at most ``depth + 1`` edges. Node numbering and weights follow
    :func:`sparse_start`.

    Raises
    ------
    NCGError
        A size is not a positive int (``num_hidden`` may be 0), or ``depth`` exceeds ``num_hidden``.

    Examples
    --------
    >>> g = layered_start(num_inputs=10, num_hidden=40, num_outputs=2, depth=4, fan_in=3, seed=0)
    >>> g
    NCG(neurons=52, edges=137, outputs=2, inputs=10)
    >>> from ncg.schedule import topological_generations
    >>> int(topological_generations(g.edge_index, g.num_neurons).max()) <= 5
    True
    """
    for name, value, low in (("num_inputs", num_inputs, 1), ("num_hidden", num_hidden, 0),
                             ("num_outputs", num_outputs, 1), ("depth", depth, 1), ("fan_in", fan_in, 1)):
        if not isinstance(value, int) or value < low:
            raise NCGError(f"{name} must be an int >= {low}, got {value!r}")
    if num_hidden and depth > num_hidden:
        raise NCGError(f"depth must be at most num_hidden = {num_hidden}, got {depth}")
    rng = np.random.default_rng(seed)
    f, h = num_inputs, num_hidden
    n = f + h + num_outputs
    # Group boundaries: group k holds nodes bounds[k]:bounds[k + 1]; the outputs are the last group.
    sizes = [len(group) for group in np.array_split(np.arange(h), depth)] if h else []
    bounds = np.cumsum([f, *sizes, num_outputs])
    src_parts, dst_parts = [], []
    for start, end in zip(bounds[:-1], bounds[1:]):
        dst = np.repeat(np.arange(start, end), fan_in)
        src_parts.append(rng.integers(0, start, size=dst.size))
        dst_parts.append(dst)
    src, dst = np.concatenate(src_parts), np.concatenate(dst_parts)
    keys = np.sort(dst * n + src)
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if keys.size else keys
    src, dst = keys % n, keys // n
    has_out = np.bincount(src, minlength=n) > 0
    extra_src, extra_dst = [], []
    for start, end, next_end in zip(bounds[:-2], bounds[1:-1], bounds[2:]):  # hidden groups
        lonely = np.flatnonzero(~has_out[start:end]) + start
        extra_src.append(lonely)
        extra_dst.append(rng.integers(end, next_end, size=lonely.size))
    src = np.concatenate([src, *extra_src])
    dst = np.concatenate([dst, *extra_dst])
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return NCG(
        edge_index, n, outputs=torch.arange(f + h, n), weight=init_edge_weights(edge_index, n, generator),
        order=torch.arange(n), inputs=torch.arange(f),
    )


_MODULE_ACTIVATIONS: dict[type[nn.Module], str] = {a.module: a.name for a in ACTIVATIONS.values()}


@dataclass(frozen=True)
class MLPGraph:
    """A layered MLP read as a graph (:func:`mlp_graph`).

    Attributes
    ----------
    graph : NCG
        One neuron per unit, layer after layer (the topological order); layer ``l`` feeds layer
        ``l + 1`` through edges carrying the weights, target-major (``weight[j, i]`` of each
        ``nn.Linear`` in row order); the biases are the neurons' biases; the last layer's units
        are the outputs.
    first_weight : Tensor
        The first layer's weight ``[units, in_features]`` (detached, not copied): what a dense
        encoder holds for the first layer's neurons.
    activation : str or None
        The hidden layers' activation (``None`` for an MLP without a hidden layer).
    output_activation : str
        The activation after the last layer (``"identity"`` if none).
    """

    graph: NCG
    first_weight: Tensor
    activation: str | None
    output_activation: str

    @property
    def in_features(self) -> int:
        return self.first_weight.shape[1]


def mlp_graph(mlp: nn.Sequential) -> MLPGraph:
    """The graph of a layered MLP, with what a model needs besides it.

    ``mlp`` is an ``nn.Sequential`` of ``nn.Linear`` layers, each optionally followed by one
    activation module of :data:`ncg.activations.ACTIVATIONS` with its default arguments; the
    hidden layers share one activation.

    Raises
    ------
    NCGError
        ``mlp`` is not a non-empty ``nn.Sequential``; a module is neither ``nn.Linear`` nor a
        known activation after one; an activation has other than its default arguments; two
        layers' widths do not chain; or the hidden layers' activations differ.

    See Also
    --------
    ncg.model.FreeNet.from_mlp : the FreeNet that computes what the MLP computes.

    Examples
    --------
    >>> from torch import nn
    >>> read = mlp_graph(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)))
    >>> read.graph, read.in_features, read.activation, read.output_activation
    (NCG(neurons=5, edges=6, outputs=2), 4, 'relu', 'identity')
    """
    layers = _parse_mlp(mlp)
    hidden_acts = {act for _, act in layers[:-1]}
    if len(hidden_acts) > 1:
        raise NCGError(f"all hidden layers must share one activation, got {sorted(hidden_acts)}")
    sizes = [lin.out_features for lin, _ in layers]
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    sources, targets, weights = [], [], []
    for l in range(1, len(layers)):
        lin = layers[l][0]
        dst, src = torch.meshgrid(
            torch.arange(sizes[l]) + offsets[l], torch.arange(sizes[l - 1]) + offsets[l - 1], indexing="ij"
        )
        sources.append(src.flatten())
        targets.append(dst.flatten())
        weights.append(lin.weight.detach().float().flatten())
    num_neurons = offsets[-1]
    edge_index = torch.stack([torch.cat(sources), torch.cat(targets)]) if sources else torch.zeros(2, 0, dtype=torch.long)
    graph = NCG(
        edge_index,
        num_neurons,
        outputs=torch.arange(offsets[-2], num_neurons),
        weight=torch.cat(weights) if weights else torch.zeros(0),
        bias=torch.cat([
            lin.bias.detach().float() if lin.bias is not None else torch.zeros(lin.out_features)
            for lin, _ in layers
        ]),
        order=torch.arange(num_neurons),
    )
    return MLPGraph(graph, layers[0][0].weight.detach(), hidden_acts.pop() if hidden_acts else None, layers[-1][1])


def _parse_mlp(mlp: nn.Sequential) -> list[tuple[nn.Linear, str]]:
    """The ``(linear layer, activation name)`` pairs of ``mlp``, checked."""
    if not isinstance(mlp, nn.Sequential) or len(mlp) == 0:
        raise NCGError(f"mlp must be a non-empty nn.Sequential, got {type(mlp).__name__}")
    layers: list[tuple[nn.Linear, str]] = []
    for i, module in enumerate(mlp):
        if isinstance(module, nn.Linear):
            if layers and layers[-1][0].out_features != module.in_features:
                raise NCGError(
                    f"mlp[{i}] expects {module.in_features} inputs but the previous layer gives "
                    f"{layers[-1][0].out_features}"
                )
            layers.append((module, "identity"))
        elif type(module) in _MODULE_ACTIVATIONS and layers and layers[-1][1] == "identity":
            name = _MODULE_ACTIVATIONS[type(module)]
            probe = torch.linspace(-3, 3, 13)
            if not torch.equal(module(probe.clone()), ACTIVATIONS[name].fn(probe)):
                raise NCGError(
                    f"mlp[{i}] is {module!r}: ncg's {name!r} is {type(module).__name__} with its default "
                    f"arguments, {type(module).__name__}()"
                )
            layers[-1] = (layers[-1][0], name)
        else:
            raise NCGError(
                f"mlp[{i}] is {type(module).__name__}: expected nn.Linear, each optionally followed by "
                f"one of {[t.__name__ for t in _MODULE_ACTIVATIONS]}"
            )
    return layers
