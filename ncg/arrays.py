"""Array helpers shared by the graph algorithms.

Examples
--------
>>> from typing import Callable

import numpy as np
>>> unique_sorted(np.array([5, 1, 5, 3, 1]))
array([1, 3, 5])
>>> is_member(np.array([1, 2, 7]), np.array([7, 1, 1]))
array([ True, False,  True])
"""
from __future__ import annotations

import numpy as np

__all__ = ["unique_sorted", "index_in", "is_member"]


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-D integer array, ascending: ``np.unique(values)`` by a sort.

    NumPy 2.4's ``np.unique`` (and ``np.isin``, which calls it) takes a hash-based path for
    integers that measured 250x slower than sorting on 4M int64 keys (13 s against 0.05 s),
    which made candidate sampling at 100k neurons the slowest part of a Free-Evolve round.

    Parameters
    ----------
    values : np.ndarray
        1-D array of any sortable dtype.

    Returns
    -------
    np.ndarray
        Sorted distinct values (a new array).
    """
    ordered = np.sort(values)
    if ordered.size == 0:
        return ordered
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def index_in(pool: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A lookup into ``pool``, sorted once: ``find(values)`` is the index of each value in
    ``pool`` (one of them where a value repeats), ``-1`` where absent. O(m log m) to build, O(n log m) a call.

    Examples
    --------
    >>> find = index_in(np.array([40, 10, 30]))
    >>> find(np.array([30, 20, 40]))
    array([ 2, -1,  0])
    """
    pool = np.ravel(pool)
    sorter = np.argsort(pool)
    ordered = pool[sorter]

    def find(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        if ordered.size == 0:
            return np.full(values.shape, -1, dtype=np.int64)
        loc = np.minimum(np.searchsorted(ordered, values), ordered.size - 1)
        return np.where(ordered[loc] == values, sorter[loc], -1)

    return find


def is_member(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Bool array shaped like ``values``: whether each is in ``pool`` (``np.isin`` by a sort
    and a binary search, O((n + m) log m); see :func:`unique_sorted` for why).

    Parameters
    ----------
    values, pool : np.ndarray
        Arrays of one sortable dtype (``pool`` is flattened).

    Returns
    -------
    np.ndarray
        Bool, ``values.shape``.
    """
    return index_in(pool)(values) >= 0
