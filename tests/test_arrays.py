"""The sort-based set helpers agree with NumPy's own on any integer arrays."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ncg.arrays import is_member, unique_sorted

integers = st.lists(st.integers(-(2**62), 2**62), max_size=60).map(lambda v: np.array(v, dtype=np.int64))


@given(integers)
def test_unique_sorted_is_np_unique(values):
    assert np.array_equal(unique_sorted(values), np.unique(values))


@given(integers, integers)
def test_is_member_is_np_isin(values, pool):
    assert np.array_equal(is_member(values, pool), np.isin(values, pool))
