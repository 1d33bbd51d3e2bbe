"""Topology operators: pure functions from a graph and statistics to edits (an :class:`EditSet`).

None of them changes its input; :func:`ncg.evolve.apply.apply_edits` carries the edits out.

* :func:`prune_edges` — drop edges whose score is below ``tau`` (lowest first, within a budget).
  Scores come from the prune rules of :mod:`ncg.evolve.rules` (coactivation, magnitude,
  saliency, ...).
  The best-scoring outgoing edge of every hidden neuron is never pruned, so pruning never cuts a
  neuron off from the outputs.
* :func:`augment_edges` — add edges ``i -> j`` (``i`` before ``j`` in the topological order, so
  the graph stays acyclic) between neurons that fire together above ``tau``; weights start at 0,
  which leaves the network's function unchanged at the moment of the edit.
* :func:`grow_edges` — add the best of any candidate pairs (e.g. :func:`forward_non_edges` scored
  at random or by gradient, as SET and RigL regrow); :func:`augment_edges` is its Hebbian case.
* :func:`remove_neurons` — drop hidden neurons that never fire, and then every hidden neuron
  left without a path to an output.
* :func:`grow_neurons` — insert new neurons between strongly coactive, unconnected pairs, wired
  from the target's most coactive predecessors; the new neuron's outgoing weight starts at 0.

Examples
--------
>>> import numpy as np
>>> from ncg import NCG
>>> g = NCG.complete(4, num_outputs=1, seed=0)
>>> for edit in prune_edges(g, np.array([0.9, 0.1, 0.8, 0.05, 0.7, 0.6]), tau=0.25):
...     print(edit)
Edit(op='prune_edge', source=1, target=2, score=0.05, weight=0.0)
Edit(op='prune_edge', source=0, target=2, score=0.1, weight=0.0)
"""
from __future__ import annotations

import numpy as np
import torch

from ncg.arrays import unique_sorted
from ncg.errors import NCGError
from ncg.evolve.coactivation import Coactivation
from ncg.evolve.edits import Edit, EditSet
from ncg.graph import NCG

__all__ = [
    "coactivation_scores",
    "prune_edges",
    "augment_edges",
    "coactive_pairs",
    "forward_non_edges",
    "grow_edges",
    "remove_neurons",
    "grow_neurons",
]


def coactivation_scores(graph: NCG, coactivation: Coactivation, measure: str = "phi") -> np.ndarray:
    """Coactivation ``measure`` of every edge, aligned with ``graph.edge_index``.

    Raises :class:`~ncg.errors.NCGError` if some edge was not tracked by the recording (it was
    made for another graph).
    """
    src, dst = graph.edge_index.numpy()
    index = coactivation.pair_index(src, dst)
    if (index < 0).any():
        k = int(np.flatnonzero(index < 0)[0])
        raise NCGError(
            f"edge {src[k]} -> {dst[k]} has no coactivation record; record on this graph first"
        )
    return coactivation.score(measure)[index]


def _best_out_edge(graph: NCG, scores: np.ndarray) -> np.ndarray:
    """Bool ``[E]``: the highest-scoring outgoing edge of each neuron (the first one on ties)."""
    src = graph.edge_index[0].numpy()
    best = np.zeros(src.size, dtype=bool)
    if src.size == 0:
        return best
    order = np.argsort(src, kind="stable")
    grouped = scores[order]
    starts = np.flatnonzero(np.r_[True, src[order][1:] != src[order][:-1]])
    group_max = np.maximum.reduceat(grouped, starts)
    is_max = grouped == np.repeat(group_max, np.diff(np.r_[starts, src.size]))
    hits = np.flatnonzero(is_max)
    _, first = np.unique(np.searchsorted(starts, hits, side="right"), return_index=True)
    best[order[hits[first]]] = True
    return best


def prune_edges(
    graph: NCG, scores: np.ndarray, tau: float | None = 0.25, max_edits: int | None = None
) -> EditSet:
    """Propose pruning the edges scored below ``tau``, lowest first.

    Parameters
    ----------
    graph : NCG
    scores : ndarray ``[E]``
        One score per edge (see :data:`PRUNE_SCORES`).
    tau : float or None
        Edges with ``score < tau`` are candidates; ``None`` makes every edge a candidate (pure
        budget pruning, as in magnitude-pruning baselines).
    max_edits : int, optional
        At most this many edges are pruned.

    Notes
    -----
    The best-scoring outgoing edge of each neuron is protected, so every hidden neuron keeps a
    path towards the outputs; input nodes are not protected (an input feature may lose every
    connection).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (graph.num_edges,):
        raise NCGError(f"scores must have shape [{graph.num_edges}], got {list(scores.shape)}")
    if np.isnan(scores).any():
        raise NCGError("scores contain NaN; record statistics on finite activations")
    candidate = ~_best_out_edge(graph, scores) | graph.is_input[graph.edge_index[0]].numpy()
    if tau is not None:
        candidate &= scores < tau
    picked = np.flatnonzero(candidate)
    picked = picked[np.argsort(scores[picked], kind="stable")][:max_edits]
    ids = graph.neuron_ids.numpy()
    src, dst = graph.edge_index.numpy()
    return EditSet.of("prune_edge", ids[src[picked]], ids[dst[picked]], scores[picked])


def _edge_keys(graph: NCG) -> np.ndarray:
    """Sorted ``source * N + target`` keys of the graph's edges (neuron indices)."""
    src, dst = graph.edge_index.numpy()
    return np.sort(src.astype(np.int64) * graph.num_neurons + dst)


def _is_edge(graph: NCG, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    keys = _edge_keys(graph)
    wanted = src.astype(np.int64) * graph.num_neurons + dst
    if keys.size == 0:
        return np.zeros(wanted.size, dtype=bool)
    loc = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
    return keys[loc] == wanted


def forward_non_edges(
    graph: NCG, max_pairs: int = 4_000_000, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``i -> j`` that are not edges, ``i`` before ``j`` in ``graph.order`` (so adding any
    of them keeps the graph acyclic) and allowed by its topology constraint: the candidates of
    random and gradient regrowth.

    All of them when the complete DAG has at most ``max_pairs`` pairs; otherwise a uniform
    sample of about ``max_pairs`` pairs (without repeats), so memory stays bounded.

    Examples
    --------
    >>> import torch
    >>> from ncg import NCG
    >>> g = NCG(torch.tensor([[0, 1], [1, 2]]), 3, outputs=torch.tensor([2]))
    >>> [a.tolist() for a in forward_non_edges(g)]
    [[0], [2]]
    """
    n = graph.num_neurons
    order = graph.order.numpy()
    if n * (n - 1) // 2 <= max_pairs:
        a, b = np.triu_indices(n, 1)
    else:
        rng = rng or np.random.default_rng(0)
        a, b = rng.integers(0, n, size=(2, max_pairs))
        a, b = np.minimum(a, b), np.maximum(a, b)
        keep = a < b
        pairs = unique_sorted(a[keep].astype(np.int64) * n + b[keep])
        a, b = pairs // n, pairs % n
    src, dst = order[a], order[b]
    missing = ~_is_edge(graph, src, dst) & ~graph.is_input[dst].numpy() & graph.allows(src, dst)
    return src[missing], dst[missing]


def coactive_pairs(
    graph: NCG, coactivation: Coactivation, tau: float = 0.25, measure: str = "phi"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracked pairs ``i -> j`` that are not edges, go forward in ``graph.order`` and fire
    together above ``tau``: ``(sources, targets, scores)`` in neuron indices."""
    candidate = _coactive_mask(graph, coactivation, tau, measure)
    return coactivation.src[candidate], coactivation.dst[candidate], coactivation.score(measure)[candidate]


def _coactive_mask(graph: NCG, coactivation: Coactivation, tau: float, measure: str,
                   bridges: bool = False) -> np.ndarray:
    """Bool over the tracked pairs: not an edge, forward in the order, not into an input node,
    firing together above ``tau``, and allowed by the topology constraint: as an edge ``i -> j``,
    or with ``bridges`` as a path ``i -> v -> j`` through a new neuron ``v`` in the layer after
    ``i``'s (where :func:`ncg.evolve.apply.apply_edits` puts a neuron inserted after ``i``)."""
    src, dst = coactivation.src, coactivation.dst
    position = graph.position.numpy()
    if not bridges:
        allowed = graph.allows(src, dst)
    elif graph.allowed_layers is None:
        allowed = np.ones(src.size, dtype=bool)
    else:
        layer, pairs = graph.layer.numpy(), graph.allowed_layers.numpy()
        middle = layer[src] + 1
        inside = middle < pairs.shape[0]
        middle = np.minimum(middle, pairs.shape[0] - 1)
        allowed = inside & pairs[layer[src], middle] & pairs[middle, layer[dst]]
    return (
        (coactivation.score(measure) > tau) & ~_is_edge(graph, src, dst)
        & (position[src] < position[dst]) & ~graph.is_input[dst].numpy() & allowed
    )


def _feeds_layer(graph: NCG, sources: np.ndarray, anchor: int) -> np.ndarray:
    """Bool per source: whether it may feed a new neuron inserted after ``anchor`` (in the layer
    after the anchor's, under a topology constraint)."""
    if graph.allowed_layers is None:
        return np.ones(sources.size, dtype=bool)
    layer = graph.layer.numpy()
    return graph.allowed_layers.numpy()[layer[sources], layer[anchor] + 1]


def grow_edges(
    graph: NCG,
    sources: np.ndarray,
    targets: np.ndarray,
    scores: np.ndarray,
    max_edits: int | None = None,
    init_weights: np.ndarray | float = 0.0,
) -> EditSet:
    """Propose adding the candidate edges ``sources[k] -> targets[k]`` (neuron indices), highest
    score first, at most ``max_edits``, with weights ``init_weights`` (one per candidate, or one
    value for all; 0 leaves the network's function unchanged at the moment of the edit).

    Examples
    --------
    >>> import numpy as np
    >>> from ncg import NCG
    >>> g = NCG.random_dag(4, num_edges=2, num_outputs=1, seed=0)
    >>> src, dst = forward_non_edges(g)
    >>> len(grow_edges(g, src, dst, np.arange(src.size, dtype=float), max_edits=2))
    2
    """
    scores = np.asarray(scores, dtype=np.float64)
    picked = np.argsort(-scores, kind="stable")[:max_edits]
    weights = np.broadcast_to(np.asarray(init_weights, dtype=np.float64), scores.shape)[picked]
    ids = graph.neuron_ids.numpy()
    return EditSet.of("add_edge", ids[sources[picked]], ids[targets[picked]], scores[picked], weights)


def augment_edges(
    graph: NCG,
    coactivation: Coactivation,
    tau: float = 0.25,
    max_edits: int | None = None,
    measure: str = "phi",
    init_weight: float = 0.0,
) -> EditSet:
    """Propose edges between unconnected neurons that fire together (score ``> tau``).

    Only pairs ``i -> j`` with ``i`` before ``j`` in ``graph.order`` are proposed, highest
    score first, at most ``max_edits``. New edges start at ``init_weight`` (0: the network's
    function is unchanged until training moves them).
    """
    src, dst, score = coactive_pairs(graph, coactivation, tau, measure)
    return grow_edges(graph, src, dst, score, max_edits, init_weight)


def remove_neurons(graph: NCG, firing_rate: np.ndarray | None, min_rate: float = 0.0) -> EditSet:
    """Propose removing hidden neurons that fire at most ``min_rate`` of the time, and then
    every hidden neuron that would be left without a path to an output.

    A neuron that never fires outputs 0 for ReLU-like activations, so removing it leaves the
    network's function unchanged; for other activations pass ``firing_rate=None`` to remove
    only the neurons without a path to an output (always function-preserving). Output neurons
    are never removed.
    """
    kept_role = graph.roles.numpy() != NCG.HIDDEN  # outputs and input nodes stay
    if firing_rate is None:
        firing_rate = np.ones(graph.num_neurons)
    firing_rate = np.asarray(firing_rate)
    if firing_rate.shape != (graph.num_neurons,):
        raise NCGError(f"firing_rate must have shape [{graph.num_neurons}], got {list(firing_rate.shape)}")
    dead = (firing_rate <= min_rate) & ~kept_role
    keep = torch.from_numpy(~dead)
    old_to_new = torch.cumsum(keep.long(), 0) - 1
    ei = graph.edge_index
    edge_keep = keep[ei[0]] & keep[ei[1]]
    survivors = NCG(
        old_to_new[ei[:, edge_keep]], int(keep.sum()), old_to_new[graph.outputs],
        weight=graph.weight[edge_keep], order=old_to_new[graph.order[keep[graph.order]]], validate=False,
        inputs=old_to_new[graph.inputs],
    )
    stranded = np.flatnonzero(keep.numpy())[~(survivors.reaches_output() | survivors.is_input).numpy()]
    dead[stranded] = True
    ids = graph.neuron_ids.numpy()
    dead = np.flatnonzero(dead)
    return EditSet.of("remove_neuron", ids[dead], np.full(dead.size, -1), firing_rate[dead])


def grow_neurons(
    graph: NCG,
    coactivation: Coactivation,
    num_new: int,
    fan_in: int = 8,
    tau: float = 0.25,
    measure: str = "phi",
    seed: int = 0,
    first_id: int | None = None,
) -> EditSet:
    """Propose ``num_new`` neurons, each bridging a strongly coactive, unconnected pair.

    For each of the ``num_new`` best unconnected pairs ``i -> j`` (score ``> tau``, at most one
    new neuron per target ``j``), a neuron ``v`` is inserted right after ``i`` in the order (on a
    layered graph in the layer after ``i``'s, so only pairs that the constraint lets ``v``
    bridge are taken), fed by ``i`` and the ``fan_in - 1`` other predecessors most coactive with
    ``j`` that may feed ``v`` (random
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` weights), and feeding ``j`` with weight 0.
    New neurons get stable ids from ``first_id`` on (default: one past the largest id in
    ``graph``; pass one past the largest id ever used so removed ids are never reused).
    """
    if num_new <= 0:
        return EditSet.empty()
    score = coactivation.score(measure)
    position = graph.position.numpy()
    src, dst = coactivation.src, coactivation.dst
    bridged = _coactive_mask(graph, coactivation, tau, measure, bridges=True)
    ranked = np.flatnonzero(bridged)
    ranked = ranked[np.argsort(-score[ranked], kind="stable")]
    ids = graph.neuron_ids.numpy()
    rng = np.random.default_rng(seed)
    bound = 1.0 / np.sqrt(fan_in)
    next_id = int(ids.max()) + 1 if first_id is None else max(first_id, int(ids.max()) + 1)
    edits: list[Edit] = []
    used_targets: set[int] = set()
    for p in ranked:
        i, j = int(src[p]), int(dst[p])
        if j in used_targets:
            continue
        used_targets.add(j)
        feeders = np.flatnonzero((dst == j) & (position[src] <= position[i]) & (src != i) & _feeds_layer(graph, src, i))
        feeders = feeders[np.argsort(-score[feeders], kind="stable")][: fan_in - 1]
        new_id = next_id + len(used_targets) - 1
        edits.append(Edit("add_neuron", int(ids[i]), new_id, float(score[p])))
        for q in [p, *feeders]:
            edits.append(Edit("add_edge", int(ids[src[q]]), new_id, float(score[q]), float(rng.uniform(-bound, bound))))
        edits.append(Edit("add_edge", new_id, int(ids[j]), float(score[p]), 0.0))
        if len(used_targets) == num_new:
            break
    return EditSet.from_edits(edits)
