"""The process-group view of a run: which rank this is, what the ranks share, and a check that
they agree.

ncg runs data-parallel on PyTorch's own engine (``torch.distributed``), launched with
``torchrun``: gloo on CPU, nccl on GPU. Every rank holds the whole (in-memory) data set and the
same model; a global batch is split into one contiguous slice per rank (:func:`local_slice`),
gradients are summed over the ranks before each optimiser step (:func:`all_reduce_gradients`),
and statistics (metrics, coactivation counts, gradient scores) are summed with
:func:`all_reduce`. After each Free-Evolve round :func:`check_consistent` compares a digest of
every rank's model and optimiser and raises if any differs. Outside ``torchrun`` (or with one
process) every function here is the one-process identity, so the same code runs anywhere.

The payload of every collective is counted per kind (:func:`traffic`): the bytes this rank puts
into it (a ring all-reduce moves about ``2 (K - 1) / K`` times that over each rank's link).

Examples
--------
>>> world()
(0, 1)
>>> [local_slice(10, rank, 3) for rank in range(3)]
[(0, 4), (4, 7), (7, 10)]
>>> import torch
>>> all_reduce(torch.ones(2))  # one process: nothing to reduce
tensor([1., 1.])
"""
from __future__ import annotations

import atexit
import datetime
import hashlib
import os
from typing import Iterable, Mapping, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from ncg.errors import InconsistentRanksError, NCGError

__all__ = [
    "world",
    "is_main",
    "env_world",
    "shard_from_env",
    "default_device",
    "init_from_env",
    "barrier",
    "local_slice",
    "local_samples_before",
    "all_reduce",
    "all_gather",
    "all_reduce_gradients",
    "state_digest",
    "check_consistent",
    "traffic",
    "reset_traffic",
]

Value = TypeVar("Value", Tensor, np.ndarray)

OPS = ("sum", "max", "min")
_TRAFFIC: dict[str, list[int]] = {}


def world() -> tuple[int, int]:
    """``(rank, size)`` of the initialised process group, ``(0, 1)`` without one.

    Examples
    --------
    >>> world()
    (0, 1)
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Whether this is rank 0, the one that prints and writes files.

    Examples
    --------
    >>> is_main()
    True
    """
    return world()[0] == 0


def env_world(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` as ``torchrun`` sets them, ``(0, 1)`` when they are not set.

    Examples
    --------
    >>> env_world({"RANK": "3", "WORLD_SIZE": "8"}), env_world({})
    ((3, 8), (0, 1))
    """
    environ = os.environ if environ is None else environ
    return int(environ.get("RANK", 0)), int(environ.get("WORLD_SIZE", 1))


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(index, count)`` of this process among a sweep's processes.

    ``torchrun`` sets ``RANK`` and ``WORLD_SIZE``; a SLURM array job sets
    ``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_STEP`` and
    ``SLURM_ARRAY_TASK_COUNT``; otherwise the process is the only one, ``(0, 1)``.

    Examples
    --------
    >>> shard_from_env({"RANK": "1", "WORLD_SIZE": "4"})
    (1, 4)
    >>> shard_from_env({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "5"})
    (2, 5)
    >>> shard_from_env({})
    (0, 1)
    """
    environ = os.environ if environ is None else environ
    if int(environ.get("WORLD_SIZE", 1)) > 1:
        return env_world(environ)
    if "SLURM_ARRAY_TASK_ID" in environ and "SLURM_ARRAY_TASK_COUNT" in environ:
        offset = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
        return offset // int(environ.get("SLURM_ARRAY_TASK_STEP", 1)), int(environ["SLURM_ARRAY_TASK_COUNT"])
    return 0, 1


def default_device() -> torch.device:
    """This rank's GPU (``cuda:LOCAL_RANK``) when CUDA is available, else the CPU.

    Examples
    --------
    >>> default_device().type in ("cpu", "cuda")
    True
    """
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    return torch.device("cpu")


def init_from_env(device: torch.device | str | None = None, timeout: float | None = None) -> tuple[int, int]:
    """Join the process group that ``torchrun`` describes in the environment; returns :func:`world`.

    Does nothing in a single process (``WORLD_SIZE`` unset or 1) or when a group already exists.
    The backend follows ``device`` (:func:`default_device` if omitted): nccl for CUDA, whose
    rank then uses that GPU, gloo otherwise. ``timeout`` (seconds) bounds every collective
    (PyTorch's default if ``None``). The group is destroyed when the process exits.

    Examples
    --------
    >>> init_from_env("cpu")  # not under torchrun
    (0, 1)
    """
    if env_world()[1] <= 1 or dist.is_initialized():
        return world()
    if not dist.is_available():
        raise NCGError("WORLD_SIZE > 1 asks for several processes, but this torch build has no torch.distributed")
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    kwargs = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", **kwargs)
    atexit.register(_destroy)
    return world()


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every rank gets here (nothing to wait for in one process)."""
    if world()[1] > 1:
        dist.barrier()


def local_slice(n: int, rank: int | None = None, size: int | None = None) -> tuple[int, int]:
    """``(start, stop)`` of rank ``rank``'s share of ``n`` items split contiguously over ``size``
    ranks (this process's by default); the first ``n % size`` ranks take one item more.

    Examples
    --------
    >>> [local_slice(5, rank, 2) for rank in range(2)], local_slice(5)
    ([(0, 3), (3, 5)], (0, 5))
    """
    if rank is None or size is None:
        rank, size = world()
    quotient, remainder = divmod(n, size)
    start = rank * quotient + min(rank, remainder)
    return start, start + quotient + (rank < remainder)


def local_samples_before(num_samples: int, batch_size: int, end: int, rank: int | None = None,
                         size: int | None = None) -> int:
    """How many of rank ``rank``'s samples lie before position ``end`` of an epoch whose
    ``num_samples`` samples come in global batches of ``batch_size``, each split by
    :func:`local_slice`. A rank sees its samples in epoch order, so the epoch's samples from
    ``end`` on are the ones it sees after this many.

    Examples
    --------
    >>> local_samples_before(10, 4, 6, rank=1, size=2)  # batches [0:4] [4:8] [8:10]; rank 1 holds 2, 3, 6, 7, 9
    2
    """
    if rank is None or size is None:
        rank, size = world()
    count = 0
    for start in range(0, min(end, num_samples), batch_size):
        lo, hi = local_slice(min(batch_size, num_samples - start), rank, size)
        count += max(0, min(hi, end - start) - lo)
    return count


def _count(kind: str, tensor: Tensor) -> None:
    entry = _TRAFFIC.setdefault(kind, [0, 0])
    entry[0] += 1
    entry[1] += tensor.numel() * tensor.element_size()


def _comm_device() -> torch.device:
    """Where a collective runs: the current GPU for nccl, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce(value: Value, op: str = "sum", kind: str = "statistics") -> Value:
    """``value`` (a tensor or numpy array) reduced over every rank with ``op`` (``"sum"``,
    ``"max"`` or ``"min"``); a new value of the same type and device, ``value`` itself in one
    process. Its bytes are counted under ``kind``.

    Examples
    --------
    >>> import numpy as np
    >>> all_reduce(np.arange(3.0), op="max")
    array([0., 1., 2.])
    """
    if op not in OPS:
        raise NCGError(f"op must be one of {OPS}, got {op!r}")
    if world()[1] == 1:
        return value
    tensor = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value
    buffer = tensor.detach().to(_comm_device(), copy=True)
    _count(kind, buffer)
    dist.all_reduce(buffer, op=getattr(dist.ReduceOp, op.upper()))
    if isinstance(value, np.ndarray):
        return buffer.cpu().numpy()
    return buffer.to(tensor.device)


def all_gather(tensor: Tensor, kind: str = "statistics") -> list[Tensor]:
    """Every rank's ``tensor`` (same shape and dtype on all), in rank order, on ``tensor``'s device.

    Examples
    --------
    >>> import torch
    >>> all_gather(torch.tensor([7]))
    [tensor([7])]
    """
    if world()[1] == 1:
        return [tensor]
    buffer = tensor.detach().to(_comm_device()).contiguous()
    parts = [torch.empty_like(buffer) for _ in range(world()[1])]
    _count(kind, buffer)
    dist.all_gather(parts, buffer)
    return [part.to(tensor.device) for part in parts]


def all_reduce_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Sum every parameter's ``.grad`` over the ranks, in place, with one all-reduce per dtype.

    Works on whatever autograd produced (custom autograd functions included) and on parameters
    whose shapes change between calls (after every topology edit). A rank that had no sample in
    a step (``grad`` is ``None``) adds zeros; a gradient that is ``None`` on every rank stays
    ``None``, as in one process, so the optimiser skips that parameter on every rank alike.

    Examples
    --------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1)
    >>> layer(torch.ones(1, 2)).sum().backward()
    >>> all_reduce_gradients(layer.parameters())
    >>> layer.bias.grad
    tensor([1.])
    """
    if world()[1] == 1:
        return
    groups: dict[tuple[torch.dtype, torch.device], list[nn.Parameter]] = {}
    for param in parameters:
        if param.requires_grad:
            groups.setdefault((param.dtype, param.device), []).append(param)
    for (dtype, device), params in groups.items():
        present = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=device)
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
                         + [present])
        flat = all_reduce(flat, kind="gradients")
        chunks = flat.split([p.numel() for p in params] + [len(params)])
        for param, chunk, anywhere in zip(params, chunks, chunks[-1].tolist()):
            param.grad = chunk.view_as(param).clone() if anywhere else None


def state_digest(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> str:
    """SHA-256 (hex) of ``model``'s state (the graph's ``edge_index`` and every parameter and
    buffer: dtype, shape and bytes) and of ``optimizer``'s state if given.

    Examples
    --------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1)
    >>> before = state_digest(layer)
    >>> with torch.no_grad():
    ...     layer.bias += 1e-7
    >>> state_digest(layer) == before
    False
    """
    digest = hashlib.sha256()

    def feed(name: str, value: object) -> None:
        if isinstance(value, Tensor):
            tensor = value.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}:{tensor.dtype}:{list(value.shape)};".encode())
            if tensor.numel():  # an empty tensor may carry stride 0, which view() rejects
                digest.update(tensor.view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=repr):
                feed(f"{name}.{key}", value[key])
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                feed(f"{name}[{index}]", item)
        else:
            digest.update(f"{name}={value!r};".encode())

    feed("model", model.state_dict())
    if optimizer is not None:
        feed("optimizer", optimizer.state_dict())
    return digest.hexdigest()


def check_consistent(model: nn.Module, where: str, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Raise :class:`~ncg.errors.InconsistentRanksError` on every rank unless all ranks hold the
    same model (graph and weights) and optimiser state, bit for bit (:func:`state_digest`).

    Examples
    --------
    >>> import torch
    >>> check_consistent(torch.nn.Linear(2, 1), "after round 1")  # one process agrees with itself
    """
    if world()[1] == 1:
        return
    mine = torch.frombuffer(bytearray(bytes.fromhex(state_digest(model, optimizer))), dtype=torch.uint8)
    digests = [bytes(d.cpu().tolist()) for d in all_gather(mine, kind="digests")]
    differ = [rank for rank, d in enumerate(digests) if d != digests[0]]
    if differ:
        raise InconsistentRanksError(
            f"{where}: ranks {differ} hold a different model or optimiser state than rank 0 "
            f"(digests {[d.hex()[:12] for d in digests]}); data-parallel ranks must stay identical"
        )


def traffic() -> dict[str, dict[str, int]]:
    """Collectives issued by this process so far, per kind: ``{"calls": ..., "bytes": ...}``
    (the bytes this rank contributed). Kinds used by ncg: ``gradients`` (every step),
    ``loss`` (every step of a max loss), ``metrics`` (every epoch and evaluation),
    ``statistics`` (coactivation counts and gradient scores, every round), ``digests`` (the
    consistency check, every round).

    Examples
    --------
    >>> reset_traffic(); traffic()
    {}
    """
    return {kind: {"calls": calls, "bytes": size} for kind, (calls, size) in _TRAFFIC.items()}


def reset_traffic() -> None:
    """Start counting :func:`traffic` from zero."""
    _TRAFFIC.clear()
