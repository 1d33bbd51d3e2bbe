"""Shared timing helper for the benchmarks: interleaved runs, median per candidate."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], repeats: int = 15, warmup: int = 3
) -> dict[str, float]:
    """Median wall time (seconds) of each candidate, timed round-robin.

    Interleaving (a, b, c, a, b, c, ...) exposes every candidate to the same machine load, so the
    ratios stay meaningful on a busy or throttled machine.
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
