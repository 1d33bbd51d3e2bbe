"""How many intra-op threads a training step of a FreeNet gets.

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

So ncg's training loop (:func:`ncg.train.train_epoch` with ``threads="auto"``, the default, and
everything built on it: :func:`~ncg.train.fit`, Free-Evolve, the experiment runner) runs a
FreeNet whose step does fewer than :data:`SMALL_STEP_MACS` forward multiply-adds on one thread,
and leaves every other step at torch's setting. Results do not depend on the choice: one step
gives the same numbers on one thread as on two (ncg's kernels split work only above the same
size, and the elementwise ops do not depend on the thread count).

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
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Union

import torch
from torch import nn

from ncg.cost import macs_per_sample
from ncg.errors import NCGError
from ncg.model import FreeNet

__all__ = ["SMALL_STEP_MACS", "Threads", "step_threads", "resolve_threads", "intra_op_threads"]

SMALL_STEP_MACS = 1 << 24
"""Under ``threads="auto"`` a FreeNet's training step runs on one intra-op thread when its forward
pass does fewer multiply-adds than this (:func:`~ncg.cost.macs_per_sample` times the batch): about
where the compiled kernels start to split a batch over threads (the learned main-job net, 39k
edges at batch 256, is 10M; the same net before its last prune, 52k edges, 13M)."""

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
