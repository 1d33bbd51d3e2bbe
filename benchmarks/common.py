"""Shared helpers of the benchmarks: interleaved runs with a median per candidate, a busy
neighbour process, and the description of the machine every table names."""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from ncg.kernels.sweep import backend


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], repeats: int = 15, warmup: int = 3, burst: int = 1
) -> dict[str, float]:
    """Median wall time (seconds) of one call of each candidate, timed round-robin.

    Interleaving (a, b, c, a, b, c, ...) exposes every candidate to the same machine load, so the
    ratios stay meaningful on a busy or throttled machine. With ``burst`` > 1 each visit makes
    one untimed call (the candidate's data back in the caches after the others ran), then times
    ``burst`` calls together and keeps their mean: calls too short to time one by one.
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            if burst > 1:
                fn()
            start = time.perf_counter()
            for _ in range(burst):
                fn()
            times[name].append((time.perf_counter() - start) / burst)
    return {name: statistics.median(values) for name, values in times.items()}


def machine() -> dict:
    """What a run's tables were measured on: CPU model and vector ISA (AVX-512 / AVX2), cores,
    torch threads and version, Python, the sweep backend, OMP_WAIT_POLICY, load average."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return {"cpu": models[0] if models else platform.processor() or "unknown CPU",
            "isa": "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2",
            "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "backend": backend(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")}


@contextlib.contextmanager
def busy_process(cpu: int | None = None) -> Iterator[None]:
    """One other process spinning until the block ends, pinned to ``cpu`` where given (and where
    the platform sets affinity)."""
    pin = f"os.sched_setaffinity(0, {{{cpu}}})\n" if cpu is not None and hasattr(os, "sched_setaffinity") else ""
    code = f"import os, sys\n{pin}sys.stdout.write('ready\\n')\nsys.stdout.flush()\nwhile True:\n    pass\n"
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        process.stdout.readline()
        yield
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
