"""Array helpers shared by the graph algorithms.

Examples
--------
>>> import numpy as np
>>> unique_sorted(np.array([5, 1, 5, 3, 1]))
array([1, 3, 5])
"""
from __future__ import annotations

import numpy as np

__all__ = ["unique_sorted"]


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values of a 1-D integer array, ascending: ``np.unique(values)`` by a sort.

    NumPy 2.4's ``np.unique`` takes a hash-based path for integers that measured 250x slower
    than sorting on 4M int64 keys (13 s against 0.05 s), which made candidate sampling at 100k
    neurons the slowest part of a Free-Evolve round.

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
