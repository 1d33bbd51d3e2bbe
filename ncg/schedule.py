"""Pure functions from an ``edge_index`` to an evaluation plan.

A DAG of neurons is evaluated generation by generation: generation 0 holds the neurons with no
predecessors, generation g the neurons whose longest incoming path has g edges (the semantics of
``networkx.topological_generations``). Neurons are renumbered into *positions* sorted by
generation, and consecutive generations are packed into blocks. Each block is evaluated *dense*
(one GEMM from everything before it, then one compiled sweep inside it) or *sparse* (one pass over
its incoming edges, stored once per topology as a CSR over positions); :func:`block_kinds` picks
per block from its density and size.

Examples
--------
>>> import torch
>>> from ncg.schedule import topological_generations, build_plan
>>> edge_index = torch.tensor([[0, 0, 1], [1, 2, 2]])
>>> topological_generations(edge_index, 4).tolist()
[0, 1, 2, 0]
>>> plan = build_plan(edge_index, 4, block_size=2)
>>> plan.num_generations, plan.blocks
(3, ((0, 2, 0, 4), (2, 4, 0, 4)))
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from ncg.arrays import unique_sorted
from ncg.errors import CycleError, NCGError

__all__ = ["topological_generations", "find_cycle", "Plan", "build_plan", "block_kinds", "MODES",
           "DENSE_MIN_DENSITY", "DENSE_MIN_SHARE", "DENSE_MAX_CELLS"]

MODES = ("auto", "density", "dense", "sparse")
"""How :func:`build_plan` evaluates blocks: chosen per block (``auto``; ``density``: by each
block's density alone, without :data:`DENSE_MIN_SHARE`), or all dense, or all sparse."""

DENSE_MIN_DENSITY = 0.5
"""``auto`` makes a block dense when at least this fraction of the pairs it could receive
(earlier positions in its span, and forward pairs inside it) are edges: about where BLAS GEMMs
overtake the compiled sparse pass in a training step at batch 256 (AMD EPYC, AVX-512). On the
main job's net after its first prune (210k edges) the step took 9.5 ms all sparse against 12.9 ms
with its four densest blocks (40-50%) as slabs on one thread, 8.9 against 10.2 ms on two; after
the second (105k), 6.2 against 8.4 ms. Random DAGs agree up to ~0.45 (512 and 2,048 neurons at
density 0.2-0.3 stepped 1.4-1.8x faster all sparse) and split around 0.5 (784 input nodes + 517
neurons at density 0.5: all sparse 11.3 against 13.0 ms on one thread, 10.5 against 8.7 ms on
two). These pairs were timed by hand; ``benchmarks/bench_paths.py`` times the main job's
all-sparse plans against the blocked path and against the plans without :data:`DENSE_MIN_SHARE`."""

DENSE_MIN_SHARE = 0.25
"""``auto`` keeps its dense blocks only where together they receive at least this share of the
edges; otherwise every block is sparse. A few dense blocks in a sparse plan save little and cost
much: each step then gathers and scatters the weights and gradients of both kinds by index, and a
whole-network FreeNet leaves its one-call training path
(:func:`ncg.kernels.sparse.graph_train_forward`). The main job's net after its second prune (105k
edges), whose one dense block was its last output neuron (624 of its edges), stepped in 4.34 ms
all sparse against 6.55 ms with that block dense (batch 256, one thread, AMD EPYC, AVX-512,
``python benchmarks/bench_paths.py --threads 1``, its "no share rule" column); on its complete
start, where the dense blocks receive 98% of the edges, they stay."""

DENSE_MAX_CELLS = 1 << 24
"""``auto`` never makes a block dense whose weight slab would hold more entries than this
(64 MiB of float32), whatever its density: memory stays O(edges)."""


def _as_numpy_edges(edge_index: Tensor) -> tuple[np.ndarray, np.ndarray]:
    ei = edge_index.detach().to("cpu", torch.long).numpy()
    return ei[0], ei[1]


def find_cycle(edge_index: Tensor, num_nodes: int) -> list[int] | None:
    """Return the nodes of one directed cycle, smallest first, or ``None`` if acyclic.

    Examples
    --------
    >>> import torch
    >>> find_cycle(torch.tensor([[0, 1, 2], [1, 2, 1]]), 3)
    [1, 2]
    """
    src, dst = _as_numpy_edges(edge_index)
    remaining = np.ones(num_nodes, dtype=bool)
    indeg = np.bincount(dst, minlength=num_nodes)
    order = np.argsort(src, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=num_nodes))])
    children = dst[order]
    stack = list(np.flatnonzero(indeg == 0))
    while stack:
        node = stack.pop()
        remaining[node] = False
        for child in children[indptr[node]:indptr[node + 1]]:
            indeg[child] -= 1
            if indeg[child] == 0:
                stack.append(int(child))
    if not remaining.any():
        return None
    # Every remaining node keeps a remaining predecessor: walk predecessors until one repeats.
    pred = {}
    for s, d in zip(src, dst):
        if remaining[s] and remaining[d]:
            pred.setdefault(int(d), int(s))
    node = int(np.flatnonzero(remaining)[0])
    seen: dict[int, int] = {}
    walk: list[int] = []
    while node not in seen:
        seen[node] = len(walk)
        walk.append(node)
        node = pred[node]
    cycle = walk[seen[node]:][::-1]
    start = cycle.index(min(cycle))
    return cycle[start:] + cycle[:start]


def topological_generations(edge_index: Tensor, num_nodes: int) -> Tensor:
    """Generation (longest-path depth) of every node of a DAG.

    Parameters
    ----------
    edge_index : Tensor
        LongTensor ``[2, E]`` of ``source -> target`` pairs, assumed in range.
    num_nodes : int
        Number of nodes ``N``.

    Returns
    -------
    Tensor
        LongTensor ``[N]``; node ``v`` is in generation ``g`` when every predecessor is in a
        generation ``< g`` and at least one is in ``g - 1``.

    Raises
    ------
    CycleError
        If the edges contain a directed cycle; the message lists the nodes on one cycle.

    Examples
    --------
    >>> import torch
    >>> topological_generations(torch.tensor([[0, 1], [2, 2]]), 3).tolist()
    [0, 0, 1]
    """
    src, dst = _as_numpy_edges(edge_index)
    generation = np.full(num_nodes, -1, dtype=np.int64)
    indeg = np.bincount(dst, minlength=num_nodes)
    order = np.argsort(src, kind="stable")
    counts = np.bincount(src, minlength=num_nodes)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    children_all = dst[order]
    frontier = np.flatnonzero(indeg == 0)
    level = 0
    while frontier.size:
        generation[frontier] = level
        starts, lengths = indptr[frontier], counts[frontier]
        total = int(lengths.sum())
        if total == 0:
            break
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        children = children_all[offsets + np.arange(total)]
        np.subtract.at(indeg, children, 1)
        frontier = unique_sorted(children[indeg[children] == 0])
        level += 1
    if (generation < 0).any():
        cycle = find_cycle(edge_index, num_nodes)
        raise CycleError(
            f"edge_index contains a directed cycle through neurons {cycle}; an NCG must be acyclic"
        )
    return torch.from_numpy(generation)


@dataclass(frozen=True)
class Plan:
    """How to evaluate one graph: positions sorted by generation and blocks over them.

    Attributes
    ----------
    perm : Tensor
        ``perm[p]`` is the neuron at position ``p`` (positions sorted by generation).
    position : Tensor
        Inverse of ``perm``: ``position[v]`` is neuron ``v``'s position.
    generation : Tensor
        Generation of each *neuron* (indexed by neuron id).
    src_pos, dst_pos : Tensor
        Positions of each edge's source and target, aligned with ``edge_index``.
    blocks : tuple of (start, end, lo, hi)
        Positions ``start:end`` form a block; its incoming edges come from positions ``lo:start``
        and its outgoing edges (to later blocks) reach positions ``end:hi``.
    num_generations : int
        Number of generations, i.e. the longest path's edge count plus one.
    indptr : Tensor
        int64 ``[N + 1]``: the incoming edges of position ``p`` are the CSR slots
        ``indptr[p]:indptr[p + 1]``, sorted by source position.
    csr_src : Tensor
        int32 ``[E]``: the source position of each slot.
    csr_edge : Tensor
        int64 ``[E]``: the edge (column of ``edge_index``) of each slot.
    kinds : tuple of str
        ``"dense"`` or ``"sparse"`` per block (:func:`block_kinds`).
    dense_offsets : tuple of (int or None)
        Where each dense block's ``[end - lo, end - start]`` weight slab starts in one flat
        buffer of ``dense_cells`` entries; None for sparse blocks.
    dense_cells : int
    dense_flat : Tensor
        int64: the flat buffer index of each edge into a dense block.
    dense_edge : Tensor or None
        int64: the edges that ``dense_flat`` indexes, or None when they are all the edges in
        ``edge_index`` order.
    sparse_slots : Tensor or None
        int64: the CSR slots of the sparse blocks, or None when every slot is.
    generation_ptr : Tensor
        int64 ``[G + 1]``: generation ``g`` holds positions ``generation_ptr[g]:generation_ptr[g + 1]``.
    identity : bool
        Whether ``perm`` is the identity (position ``p`` is neuron ``p``), so that gathers by it
        can be skipped.
    """

    perm: Tensor
    position: Tensor
    generation: Tensor
    src_pos: Tensor
    dst_pos: Tensor
    blocks: tuple[tuple[int, int, int, int], ...]
    num_generations: int
    indptr: Tensor
    csr_src: Tensor
    csr_edge: Tensor
    kinds: tuple[str, ...]
    dense_offsets: tuple[int | None, ...]
    dense_cells: int
    dense_flat: Tensor
    dense_edge: Tensor | None
    sparse_slots: Tensor | None
    generation_ptr: Tensor
    identity: bool = False

    def to(self, device: torch.device | str) -> Plan:
        """Copy the index tensors to ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in moved.items():
            if isinstance(value, Tensor):
                moved[name] = value.to(device)
        return Plan(**moved)


def _pack_blocks(generation_sizes: np.ndarray, block_size: int) -> list[tuple[int, int]]:
    """Pack consecutive generations into blocks of at most ``block_size`` positions.

    A generation at least ``block_size`` wide becomes a block of its own (no internal edges, so
    it costs one activation pass); narrow ones are merged and swept in order inside the block.
    """
    blocks: list[tuple[int, int]] = []
    start = end = 0
    for width in generation_sizes.tolist():
        if end > start and (width >= block_size or end - start + width > block_size):
            blocks.append((start, end))
            start = end
        end += width
        if width >= block_size:
            blocks.append((start, end))
            start = end
    if end > start:
        blocks.append((start, end))
    return blocks


def block_kinds(
    blocks: tuple[tuple[int, int, int, int], ...], edges: np.ndarray, mode: str = "auto"
) -> tuple[str, ...]:
    """``"dense"`` or ``"sparse"`` for each block.

    ``auto`` makes a block dense when its incoming ``edges`` are at least
    :data:`DENSE_MIN_DENSITY` of the pairs it could receive, ``(start - lo) * b + b (b - 1) / 2``
    for ``b = end - start``, and its slab has at most :data:`DENSE_MAX_CELLS` entries; unless
    the blocks so chosen receive less than :data:`DENSE_MIN_SHARE` of all the edges, in which case
    every block is sparse. ``density`` chooses by :data:`DENSE_MIN_DENSITY` and
    :data:`DENSE_MAX_CELLS` alone.

    Examples
    --------
    >>> import numpy as np
    >>> block_kinds(((0, 4, 0, 8), (4, 8, 0, 8)), np.array([0, 20]))
    ('sparse', 'dense')
    >>> block_kinds(((0, 4, 0, 8), (4, 200, 0, 300)), np.array([6, 100]))  # dense: 6 of 106 edges
    ('sparse', 'sparse')
    >>> block_kinds(((0, 4, 0, 8), (4, 200, 0, 300)), np.array([6, 100]), mode="density")
    ('dense', 'sparse')
    >>> block_kinds(((0, 4, 0, 8),), np.array([0]), mode="dense")
    ('dense',)
    """
    if mode not in MODES:
        raise NCGError(f"mode must be one of {MODES}, got {mode!r}")
    if mode in ("dense", "sparse"):
        return tuple(mode for _ in blocks)
    kinds = []
    for (start, end, lo, _), count in zip(blocks, edges.tolist()):
        b = end - start
        pairs = (start - lo) * b + b * (b - 1) // 2
        dense = pairs > 0 and count >= DENSE_MIN_DENSITY * pairs and (end - lo) * b <= DENSE_MAX_CELLS
        kinds.append("dense" if dense else "sparse")
    in_dense = sum(count for kind, count in zip(kinds, edges.tolist()) if kind == "dense")
    if mode == "auto" and in_dense < DENSE_MIN_SHARE * edges.sum():
        return tuple("sparse" for _ in blocks)
    return tuple(kinds)


def build_plan(
    edge_index: Tensor, num_nodes: int, block_size: int = 64, tie_break: Tensor | None = None, mode: str = "auto"
) -> Plan:
    """Compute the evaluation plan of a DAG.

    Parameters
    ----------
    edge_index : Tensor
        LongTensor ``[2, E]``.
    num_nodes : int
        Number of neurons.
    block_size : int, default 64
        Largest number of positions packed into one sequential block.
    tie_break : Tensor, optional
        Key ordering neurons inside a generation (e.g. their topological position); by default
        the neuron id.
    mode : {"auto", "density", "dense", "sparse"}, default "auto"
        How blocks are evaluated (:func:`block_kinds`).

    Returns
    -------
    Plan

    Examples
    --------
    >>> import torch
    >>> plan = build_plan(torch.tensor([[2], [0]]), 3)
    >>> plan.perm.tolist(), plan.num_generations
    ([1, 2, 0], 2)
    """
    if block_size < 1:
        raise NCGError(f"block_size must be >= 1, got {block_size}")
    if mode not in MODES:
        raise NCGError(f"mode must be one of {MODES}, got {mode!r}")
    edge_index = edge_index.detach().to("cpu", torch.long)
    generation = topological_generations(edge_index, num_nodes)
    key = torch.arange(num_nodes) if tie_break is None else tie_break.detach().to("cpu", torch.long)
    perm = torch.from_numpy(np.lexsort((key.numpy(), generation.numpy())))
    position = torch.empty_like(perm)
    position[perm] = torch.arange(num_nodes)
    src_pos, dst_pos = position[edge_index[0]], position[edge_index[1]]
    num_generations = int(generation.max()) + 1 if num_nodes else 0
    sizes = np.bincount(generation.numpy(), minlength=num_generations) if num_nodes else np.zeros(0, int)
    spans = _pack_blocks(sizes, block_size)
    block_of = np.zeros(num_nodes, dtype=np.int64)
    for b, (s, e) in enumerate(spans):
        block_of[s:e] = b
    # lo: smallest source position feeding each block; hi: one past the largest target fed by it.
    lo = np.array([s for s, _ in spans], dtype=np.int64)
    hi = np.array([e for _, e in spans], dtype=np.int64)
    if edge_index.numel():
        sp, dp = src_pos.numpy(), dst_pos.numpy()
        np.minimum.at(lo, block_of[dp], sp)
        np.maximum.at(hi, block_of[sp], dp + 1)
    blocks = tuple(
        (s, e, int(min(lo[b], s)), int(max(hi[b], e))) for b, (s, e) in enumerate(spans)
    )
    sp, dp = src_pos.numpy(), dst_pos.numpy()
    order = np.lexsort((sp, dp))
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(dp, minlength=num_nodes), out=indptr[1:])
    csr_src = sp[order]
    kinds = block_kinds(blocks, np.array([indptr[e] - indptr[s] for s, e, _, _ in blocks], dtype=np.int64), mode)
    dense = _dense_layout(blocks, kinds, indptr, csr_src, order, edge_index.shape[1])
    generation_ptr = np.zeros(num_generations + 1, dtype=np.int64)
    np.cumsum(sizes, out=generation_ptr[1:])
    return Plan(
        perm, position, generation, src_pos, dst_pos, blocks, num_generations,
        indptr=torch.from_numpy(indptr), csr_src=torch.from_numpy(csr_src.astype(np.int32)),
        csr_edge=torch.from_numpy(order), kinds=kinds, **dense, generation_ptr=torch.from_numpy(generation_ptr),
        identity=bool(torch.equal(perm, torch.arange(num_nodes))),
    )


def _dense_layout(blocks, kinds, indptr: np.ndarray, csr_src: np.ndarray, order: np.ndarray, num_edges: int) -> dict:
    """The :class:`Plan` fields that place the dense blocks' edges in one flat slab buffer, so
    that a step scatters them with one indexing operation and gathers their gradient with one."""
    offsets, flats, slots, sparse = [], [], [], []
    cells = 0
    for (start, end, lo, _), kind in zip(blocks, kinds):
        first, last = indptr[start], indptr[end]
        if kind == "sparse":
            offsets.append(None)
            sparse.append(np.arange(first, last))
            continue
        dst = np.repeat(np.arange(start, end), np.diff(indptr[start:end + 1]))
        flats.append(cells + (csr_src[first:last] - lo) * (end - start) + (dst - start))
        slots.append(np.arange(first, last))
        offsets.append(cells)
        cells += (end - lo) * (end - start)
    flat = np.concatenate(flats) if flats else np.zeros(0, np.int64)
    edge = order[np.concatenate(slots)] if slots else np.zeros(0, np.int64)
    sparse_slots = np.concatenate(sparse) if sparse else np.zeros(0, np.int64)
    if edge.size == num_edges:  # every edge is dense: index the buffer in edge order
        aligned = np.empty_like(flat)
        aligned[edge] = flat
        flat, edge_t = aligned, None
    else:
        edge_t = torch.from_numpy(edge)
    return {
        "dense_offsets": tuple(offsets), "dense_cells": int(cells), "dense_flat": torch.from_numpy(flat),
        "dense_edge": edge_t, "sparse_slots": None if sparse_slots.size == num_edges else torch.from_numpy(sparse_slots),
    }
