"""Neuron samples for drawing large graphs: a fixed-seed subset of neurons and the edges among it.

A figure cannot show a million neurons one by one. The drawing functions draw a uniform random
sample of at most ``max_neurons`` neurons, some of them (the outputs) always included, and only
the edges whose two ends are drawn. Both steps are vectorised, O(N + E) in time and memory, and
the same seed gives the same sample.

Examples
--------
>>> import numpy as np
>>> neurons = sample_neurons(10, max_neurons=4, keep=np.array([9]), seed=0)
>>> neurons.size, 9 in neurons
(4, True)
>>> which, local = induced_edges(np.array([[0, 1, 2], [9, 9, 3]]), 10, np.array([0, 2, 3, 9]))
>>> which.tolist(), local.tolist()
([0, 2], [[0, 1], [3, 2]])
"""
from __future__ import annotations

import numpy as np

__all__ = ["MAX_NEURONS", "sample_neurons", "induced_edges", "sample_caption"]

MAX_NEURONS = 3000
"""Default number of neurons a figure draws; larger graphs are drawn from a sample."""


def sample_neurons(
    num_neurons: int, max_neurons: int | None, keep: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Sorted indices of the neurons to draw: every neuron, or ``max_neurons`` of them.

    Parameters
    ----------
    num_neurons : int
    max_neurons : int or None
        Draw every neuron when there are at most this many (or when ``None``); otherwise all of
        ``keep`` plus a uniform random sample of the other neurons, ``max_neurons`` in all (just
        ``keep`` if it is that large already).
    keep : ndarray of int, optional
        Neurons always drawn, e.g. the outputs.
    seed : int, default 0
        Seed of the sample: the same seed draws the same neurons.

    Returns
    -------
    ndarray of int64

    Examples
    --------
    >>> sample_neurons(5, max_neurons=None).tolist()
    [0, 1, 2, 3, 4]
    >>> first = sample_neurons(1000, 3, keep=np.array([7]), seed=1)
    >>> 7 in first, np.array_equal(first, sample_neurons(1000, 3, keep=np.array([7]), seed=1))
    (True, True)
    """
    if max_neurons is None or num_neurons <= max_neurons:
        return np.arange(num_neurons, dtype=np.int64)
    keep = np.unique(np.asarray(keep if keep is not None else [], dtype=np.int64))
    others = np.ones(num_neurons, dtype=bool)
    others[keep] = False
    pool = np.flatnonzero(others)
    chosen = np.random.default_rng(seed).choice(pool.size, size=max(max_neurons - keep.size, 0), replace=False)
    return np.sort(np.concatenate([keep, pool[chosen]]))


def induced_edges(edge_index: np.ndarray, num_neurons: int, neurons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges whose two ends are in ``neurons``.

    Parameters
    ----------
    edge_index : ndarray ``[2, E]``
        Edges ``source -> target`` among ``num_neurons`` neurons.
    num_neurons : int
    neurons : ndarray of int
        Distinct neuron indices.

    Returns
    -------
    (ndarray, ndarray)
        The positions of those edges in ``edge_index`` (ascending), and their ends ``[2, *]``
        renumbered to positions in ``neurons``.

    Examples
    --------
    >>> which, local = induced_edges(np.array([[0, 1], [1, 2]]), 3, np.array([1, 2]))
    >>> which.tolist(), local.tolist()
    ([1], [[0], [1]])
    """
    local = np.full(num_neurons, -1, dtype=np.int64)
    local[neurons] = np.arange(len(neurons))
    drawn = local >= 0
    which = np.flatnonzero(drawn[edge_index[0]] & drawn[edge_index[1]])
    return which, local[edge_index[:, which]]


def sample_caption(drawn: int, total: int) -> str:
    """The words saying that a figure draws a sample: ``drawn`` of ``total`` neurons.

    Examples
    --------
    >>> sample_caption(3000, 1_000_794)
    'a fixed random sample of 3,000 of 1,000,794 neurons is drawn (all outputs included)'
    """
    return f"a fixed random sample of {drawn:,} of {total:,} neurons is drawn (all outputs included)"
