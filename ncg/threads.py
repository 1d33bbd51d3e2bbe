"""How many intra-op threads ncg's training and evaluation loops give torch.

torch splits each op of a step over its intra-op threads (OpenMP), and every op ends at a
barrier. A small step gains little from a second thread on an idle machine, and on a machine
where another process holds a core it loses a lot: every barrier waits for the thread that core's
scheduler has parked. A FreeNet's step at batch 256 runs ~15 such ops (Adam over the edge
weights, the loss, the ``[N, B]`` buffers) around ncg's compiled kernels, and the kernels
themselves keep a batch this small on the calling thread (a chunk is at least 2^24 row updates,
``ncg/kernels/sweep.cpp``). Measured on a 2-core AMD EPYC (AVX-512), train step
at batch 256 of a FreeNet with 784 input nodes and 517 neurons, two threads against one: at
16k-42k edges 0.92-0.95x on an idle machine but 2.5-3.7x beside one busy process; at 85k-171k
edges 0.65-0.72x idle and 1.7-1.9x beside the busy process.

Larger steps do gain from a second thread on an idle machine (0.65-0.72x above 85k edges), but
lose the same way beside a busy process: the complete start of the main job (545k edges) stepped
at ~80 ms on two threads against 12 ms on one while another process held a core.

So ncg's loops (:func:`ncg.train.train_epoch`, :func:`~ncg.train.evaluate` and
:func:`~ncg.evolve.coactivation.record_coactivation` with ``threads="auto"``, the default, and
everything built on them: :func:`~ncg.train.fit`, Free-Evolve, the experiment runner) choose the
thread count from the work and from the machine:

* a FreeNet whose step does fewer than :data:`SMALL_STEP_MACS` forward multiply-adds runs on one
  thread (:func:`step_threads`);
* any other step gets the cores that other processes leave free, at most torch's setting when
  the loop began: :class:`AutoThreads` measures them (:class:`ncg.cores.CoreUse`) when the loop
  starts and again every :data:`RECHECK_SECONDS` between steps, so a neighbour that starts or
  stops mid-epoch is seen within a second.

A count pins the threads; ``None`` leaves torch's setting. Small steps give the same numbers on
one thread as on two (ncg's kernels split work only above the same size, and the elementwise ops
do not depend on the thread count); dense GEMMs (the complete start's blocks, a dense encoder)
may differ in the last bits between one and two threads, so a run that must repeat bit for bit
pins its threads (``threads=1``, ``evolve_mnist.py --threads 1``).

Examples
--------
>>> import torch
>>> from ncg import FreeNet
>>> from ncg.build import sparse_start
>>> net = FreeNet(sparse_start(784, 64, 10, fan_in=16, seed=0), in_features=784)
>>> step_threads(net, batch_size=256)
1
>>> step_threads(torch.nn.Linear(784, 10), batch_size=256) is None  # not a FreeNet: torch decides
True
>>> with intra_op_threads(1):
...     torch.get_num_threads()
1
>>> with thread_scope("auto", net, batch_size=256) as tick:  # the small step: one thread
...     tick(); torch.get_num_threads()
1
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Iterator, Union

import torch
from torch import nn

from ncg.cores import CoreUse
from ncg.cost import macs_per_sample
from ncg.errors import NCGError
from ncg.model import FreeNet

__all__ = [
    "SMALL_STEP_MACS", "RECHECK_SECONDS", "Threads", "AutoThreads", "step_threads", "resolve_threads",
    "intra_op_threads", "thread_scope", "auto_threads",
]

SMALL_STEP_MACS = 1 << 24
"""Under ``threads="auto"`` a FreeNet's training step runs on one intra-op thread when its forward
pass does fewer multiply-adds than this (:func:`~ncg.cost.macs_per_sample` times the batch): about
where the compiled kernels start to split a batch over threads (the learned main-job net, 39k
edges at batch 256, is 10M; the same net before its last prune, 52k edges, 13M)."""

RECHECK_SECONDS = 0.5
"""How often (wall seconds, checked between steps) :class:`AutoThreads` measures the free cores
again: reading ``/proc/stat`` costs ~30 us, a step of the complete start ~12 ms."""

MIN_WINDOW_SECONDS = 0.05
"""The shortest window a measurement of the free cores spans (five clock ticks at the usual
100 Hz); the first measurement of a process waits this long for one."""

Threads = Union[int, str, None]
"""A training loop's thread setting: ``"auto"`` (:func:`step_threads`), a positive count, or
``None`` (torch's setting, unchanged)."""


def step_threads(model: nn.Module, batch_size: int) -> int | None:
    """The intra-op thread count ``threads="auto"`` gives one training step of ``model`` at
    ``batch_size``: 1 for a FreeNet whose step is smaller than :data:`SMALL_STEP_MACS`, else
    ``None`` (torch's setting)."""
    if isinstance(model, FreeNet) and macs_per_sample(model) * batch_size < SMALL_STEP_MACS:
        return 1
    return None


def resolve_threads(threads: Threads, model: nn.Module, batch_size: int) -> int | None:
    """The count a training loop sets for ``threads`` (``None``: leave torch's setting).

    Raises
    ------
    NCGError
        ``threads`` is not ``"auto"``, ``None`` or a positive int.

    >>> resolve_threads(2, torch.nn.Linear(2, 2), 64)
    2
    """
    if threads == "auto":
        return step_threads(model, batch_size)
    if threads is None or (isinstance(threads, int) and not isinstance(threads, bool) and threads > 0):
        return threads
    raise NCGError(f"threads must be 'auto', None or a positive int, got {threads!r}")


@contextlib.contextmanager
def intra_op_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block (``None``: unchanged) and
    restored after it, also when the block raises."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class AutoThreads:
    """torch's intra-op thread count kept at the cores other processes leave free.

    Parameters
    ----------
    use : CoreUse
        Measures the other processes' work. :func:`thread_scope` shares one per process, so
        each measurement spans the time since the previous one, whichever loop took it.

    The count is ``round(cpus - busy_elsewhere)``, clamped to ``[1, ceiling]``: one spinning
    neighbour on two cores leaves one thread, a neighbour that uses a fifth of a core leaves two.
    A window shorter than :data:`MIN_WINDOW_SECONDS` (two loops back to back) is too coarse for
    the kernel's clock ticks: the previous count stands.

    Examples
    --------
    >>> auto = AutoThreads(CoreUse())
    >>> 1 <= auto.choose(ceiling=2) <= 2
    True
    """

    def __init__(self, use: CoreUse) -> None:
        self.use = use
        self.count: int | None = None
        self.counts: list[int] = []

    def choose(self, ceiling: int) -> int:
        """The count for a loop allowed ``ceiling`` threads, measured now (the process's first
        measurement waits :data:`MIN_WINDOW_SECONDS` for a window); torch's setting is left alone."""
        age = self.use.age()
        if age is None:
            self.use.sample()
            if self.use.age() is None:  # no counters to read (not Linux): torch's setting
                return ceiling
            time.sleep(MIN_WINDOW_SECONDS)
        elif age < MIN_WINDOW_SECONDS and self.count is not None:
            return min(self.count, ceiling)
        busy = self.use.sample()
        if busy is not None:
            self.count = max(round(self.use.num_cpus - busy), 1)
            if not self.counts or self.counts[-1] != self.count:
                self.counts.append(self.count)
        return ceiling if self.count is None else min(self.count, ceiling)

    @contextlib.contextmanager
    def scope(self, ceiling: int) -> Iterator[Callable[[], None]]:
        """Set torch's threads from a measurement now and yield ``tick``, which measures and sets
        them again between steps once :data:`RECHECK_SECONDS` have passed; torch's setting is
        restored afterwards."""
        before = torch.get_num_threads()

        def apply() -> None:
            count = self.choose(ceiling)
            if count != torch.get_num_threads():
                torch.set_num_threads(count)

        def tick() -> None:
            age = self.use.age()  # None: no counters, nothing to measure again
            if age is not None and age >= RECHECK_SECONDS:
                apply()

        try:
            apply()
            yield tick
        finally:
            torch.set_num_threads(before)


_AUTO: AutoThreads | None = None


def auto_threads() -> AutoThreads:
    """The process's :class:`AutoThreads` (created on first use)."""
    global _AUTO
    if _AUTO is None:
        _AUTO = AutoThreads(CoreUse())
    return _AUTO


@contextlib.contextmanager
def thread_scope(threads: Threads, model: nn.Module, batch_size: int) -> Iterator[Callable[[], None]]:
    """torch's intra-op threads for a loop over steps of ``model`` at ``batch_size``; yields a
    ``tick`` to call between steps. torch's setting is restored afterwards, also on error.

    ``"auto"`` gives a small FreeNet step one thread (:func:`step_threads`) and any other step
    the free cores, at most torch's setting (:func:`auto_threads`, measured again as ``tick`` is
    called); a count pins the threads; ``None`` leaves torch's setting.

    Raises
    ------
    NCGError
        ``threads`` is not ``"auto"``, ``None`` or a positive int.
    """
    count = resolve_threads(threads, model, batch_size)
    ceiling = torch.get_num_threads()
    if threads != "auto" or count is not None or ceiling == 1:
        with intra_op_threads(count):
            yield lambda: None
        return
    with auto_threads().scope(ceiling) as tick:
        yield tick
