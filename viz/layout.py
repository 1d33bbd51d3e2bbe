"""Neuron positions for drawing a DAG by generation, and curved edge paths between them.

:func:`generation_layout` puts each neuron at ``x = generation`` and orders the neurons of each
generation on ``y`` by barycenter sweeps (the Sugiyama heuristic): a neuron moves towards the mean
height of its predecessors (forward sweep), then of its successors (backward sweep), which removes
most edge crossings; a sweep is O(N + E), one numpy step per generation. :func:`edge_paths`
bends edges that skip generations into arcs, so the long edges of a deep, narrow FreeNet do not
lie on top of each other, and :func:`arc_y_range` gives how far those arcs reach without
building them.

Examples
--------
>>> import numpy as np
>>> edge_index = np.array([[0, 0, 1, 2], [1, 2, 3, 3]])
>>> x, y = generation_layout(edge_index, 4)
>>> x.tolist(), y.tolist()
([0.0, 1.0, 1.0, 2.0], [0.5, 0.25, 0.75, 0.5])
"""
from __future__ import annotations

import numpy as np
import torch

from ncg.schedule import topological_generations

__all__ = ["generation_layout", "edge_paths", "arc_y_range"]


def _slots(generation: np.ndarray, key: np.ndarray | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each node's rank among the nodes of its generation sorted by ``key`` (default: node index),
    and the nodes of each generation in that order."""
    perm = np.argsort(generation, kind="stable") if key is None else np.lexsort((key, generation))
    sizes = np.bincount(generation)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(generation.size, dtype=np.int64)
    rank[perm] = np.arange(generation.size) - starts[generation[perm]]
    return rank, np.split(perm, np.cumsum(sizes)[:-1])


def generation_layout(
    edge_index: np.ndarray,
    num_nodes: int,
    generation: np.ndarray | None = None,
    sweeps: int = 4,
    initial: np.ndarray | None = None,
    fixed_y: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions ``(x, y)`` of every node: ``x`` its generation, ``y`` in ``(0, 1)``.

    Parameters
    ----------
    edge_index : ndarray ``[2, E]``
        Edges ``source -> target`` of a DAG.
    num_nodes : int
    generation : ndarray ``[N]``, optional
        Precomputed generations (see :func:`ncg.schedule.topological_generations`).
    sweeps : int, default 4
        Forward + backward barycenter sweeps.
    initial : ndarray ``[N]``, optional
        Key of the initial order inside each generation (default: node index).
    fixed_y : ndarray ``[N]``, optional
        A ``y`` that pins a node (NaN: the sweeps place it), e.g. the rows of input nodes drawn
        as an image grid. Pinned nodes pull their neighbours but do not move; the free nodes of
        a generation share its slots among themselves.

    Returns
    -------
    (ndarray, ndarray)
        ``x`` (float generation) and ``y``; the ``s`` free neurons of a generation sit at
        ``(r + 0.5) / s`` for ranks ``r = 0 .. s-1``, so a lone neuron is centred at 0.5.

    Examples
    --------
    >>> x, y = generation_layout(np.array([[0, 1], [2, 2]]), 3, fixed_y=np.array([0.9, 0.1, np.nan]))
    >>> y.tolist()
    [0.9, 0.1, 0.5]
    """
    edge_index = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    if generation is None:
        generation = topological_generations(torch.from_numpy(edge_index), num_nodes).numpy()
    generation = np.asarray(generation, dtype=np.int64)
    num_generations = int(generation.max()) + 1 if num_nodes else 0
    pinned = np.zeros(num_nodes, dtype=bool) if fixed_y is None else ~np.isnan(np.asarray(fixed_y, dtype=np.float64))
    free_generation = np.where(pinned, num_generations, generation)  # pinned nodes rank apart
    sizes = np.bincount(free_generation)
    rank, _ = _slots(free_generation, None if initial is None else np.asarray(initial))
    y = (rank + 0.5) / sizes[free_generation]
    if pinned.any():
        y[pinned] = np.asarray(fixed_y, dtype=np.float64)[pinned]
    src, dst = edge_index
    slot, members = _slots(generation)
    # Edge ends sorted by the generation of the node that moves (target going forward, source
    # back): the moving node as its slot in that generation, and the fixed node; and the number
    # of edges each node moves by (its in-degree going forward, out-degree back).
    passes = []
    for moving, fixed, generations in ((dst, src, range(1, num_generations)),
                                       (src, dst, range(num_generations - 2, -1, -1))):
        by_generation = np.argsort(generation[moving], kind="stable")
        bounds = np.searchsorted(generation[moving][by_generation], np.arange(num_generations + 1))
        passes.append((slot[moving[by_generation]], fixed[by_generation], np.bincount(moving, minlength=num_nodes),
                       generations, bounds))
    for _ in range(sweeps):
        for moving_slot, fixed, degree, generations, bounds in passes:
            for g in generations:
                nodes = members[g]
                free = ~pinned[nodes]
                if free.sum() < 2:
                    continue
                edges = slice(bounds[g], bounds[g + 1])
                total = np.bincount(moving_slot[edges], weights=y[fixed[edges]], minlength=nodes.size)[free]
                nodes = nodes[free]
                count = degree[nodes]
                bary = np.where(count > 0, total / np.maximum(count, 1), y[nodes])
                ranked = nodes[np.lexsort((y[nodes], bary))]
                y[ranked] = (np.arange(nodes.size) + 0.5) / nodes.size
    return generation.astype(np.float64), y


def _arc_controls(
    x: np.ndarray, y: np.ndarray, src: np.ndarray, dst: np.ndarray, bend: float, max_span: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control points ``p0, p1, p2`` (each ``[E, 2]``) of the quadratic Bezier arcs of :func:`edge_paths`."""
    p0 = np.stack([x[src], y[src]], axis=1)
    p2 = np.stack([x[dst], y[dst]], axis=1)
    span = np.abs(p2[:, 0] - p0[:, 0])
    if max_span is None:
        max_span = span.max() if span.size else 1.0
    extra = np.clip(span - 1, 0, None) / max(max_span - 1, 1.0)
    side = np.where((p0[:, 1] + p2[:, 1]) / 2 < 0.5 - 1e-9, -1.0, 1.0)
    p1 = (p0 + p2) / 2
    p1[:, 1] += side * 2 * bend * extra  # a quadratic Bezier peaks at half the control offset
    return p0, p1, p2


def edge_paths(
    x: np.ndarray,
    y: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    points: int = 24,
    bend: float = 0.45,
    max_span: float | None = None,
) -> np.ndarray:
    """Polylines ``[E, points, 2]`` for edges ``src -> dst``: straight or arced.

    An edge between adjacent generations is straight. An edge spanning ``s > 1`` generations is a
    quadratic Bezier arc whose peak is ``bend * (s - 1) / (max_span - 1)`` away from the straight
    line, away from the middle of the plot (upwards for neurons at mid height), so longer edges
    arc higher and do not hide each other. ``max_span`` defaults to the longest given edge's;
    pass it to draw edge subsets with the same arcs.

    Examples
    --------
    >>> import numpy as np
    >>> paths = edge_paths(np.array([0.0, 1.0, 2.0]), np.full(3, 0.5), np.array([0, 0]), np.array([1, 2]), points=3)
    >>> paths[:, 1].tolist()
    [[0.5, 0.5], [1.0, 0.95]]
    """
    p0, p1, p2 = _arc_controls(x, y, src, dst, bend, max_span)
    t = np.linspace(0.0, 1.0, points)[None, :, None]
    return (1 - t) ** 2 * p0[:, None] + 2 * (1 - t) * t * p1[:, None] + t**2 * p2[:, None]


def arc_y_range(
    x: np.ndarray,
    y: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    bend: float = 0.45,
    max_span: float | None = None,
) -> tuple[float, float]:
    """Lowest and highest ``y`` on the arcs of :func:`edge_paths`, exactly, in O(E) memory.

    The arcs are not built: the extreme of a quadratic Bezier is at one of its ends or where its
    derivative vanishes. Parameters are those of :func:`edge_paths`; there must be an edge.

    Examples
    --------
    >>> import numpy as np
    >>> arc_y_range(np.array([0.0, 1.0, 2.0]), np.full(3, 0.5), np.array([0, 0]), np.array([1, 2]))
    (0.5, 0.95)
    """
    (_, y0), (_, y1), (_, y2) = (p.T for p in _arc_controls(x, y, src, dst, bend, max_span))
    curvature = y0 - 2 * y1 + y2
    t = np.clip(np.divide(y0 - y1, curvature, out=np.zeros_like(y0), where=curvature != 0), 0.0, 1.0)
    turn = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * y1 + t**2 * y2
    candidates = np.concatenate([y0, y2, turn])
    return float(candidates.min()), float(candidates.max())
