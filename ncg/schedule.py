"""Pure functions from an ``edge_index`` to an evaluation plan.

A DAG of neurons is evaluated generation by generation: generation 0 holds the neurons with no
predecessors, generation g the neurons whose longest incoming path has g edges (the semantics of
``networkx.topological_generations``). Neurons are renumbered into *positions* sorted by
generation, and consecutive generations are packed into blocks that the evaluator runs as one GEMM
from everything before the block plus one compiled sweep inside it.

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

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ncg.errors import CycleError, NCGError

__all__ = ["topological_generations", "find_cycle", "Plan", "build_plan"]


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
        frontier = np.unique(children[indeg[children] == 0])
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
    """

    perm: Tensor
    position: Tensor
    generation: Tensor
    src_pos: Tensor
    dst_pos: Tensor
    blocks: tuple[tuple[int, int, int, int], ...]
    num_generations: int

    def to(self, device: torch.device | str) -> Plan:
        """Copy the index tensors to ``device``."""
        return Plan(
            perm=self.perm.to(device),
            position=self.position.to(device),
            generation=self.generation.to(device),
            src_pos=self.src_pos.to(device),
            dst_pos=self.dst_pos.to(device),
            blocks=self.blocks,
            num_generations=self.num_generations,
        )


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


def build_plan(
    edge_index: Tensor, num_nodes: int, block_size: int = 64, tie_break: Tensor | None = None
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
    return Plan(perm, position, generation, src_pos, dst_pos, blocks, num_generations)
