"""Minimal, fast training helpers over tensors, Datasets or DataLoaders.

The data is tensors ``(x, y)`` (batches are index slices, no DataLoader worker overhead), a
map-style Dataset of ``(x, y)`` items (a batch reads only its items), or a DataLoader, streamed
with its own batching and shuffling (:mod:`ncg.batches`). A ``torch.Generator`` fixes the
shuffling of tensors and Datasets, so a seed fixes a run, and a Dataset gives the same batches,
and the same results, as its tensors. The loss and the
metrics come from a :class:`~ncg.tasks.Task` (cross-entropy and accuracy by default).

Under ``torchrun`` (:mod:`ncg.distributed`) training is data-parallel and :func:`train_epoch`
and :func:`evaluate` are collective: every rank calls them with the same data (tensors or a
Dataset; a DataLoader raises) and seed, draws
the same permutation, and works on its slice of each global batch of ``batch_size``; the
gradients are summed over the ranks before each step, so the run follows the one-process run
with the same ``batch_size`` (up to float rounding). Metrics are summed over the ranks.

Examples
--------
>>> import torch
>>> from ncg import NCG, FreeNet
>>> from ncg.train import evaluate, train_epoch
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
>>> net = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=4, seed=0)
>>> opt = torch.optim.Adam(net.parameters(), lr=1e-2)
>>> stats = train_epoch(net, opt, x, y, batch_size=16, generator=torch.Generator().manual_seed(0))
>>> sorted(stats), 0.0 <= evaluate(net, x, y)["accuracy"] <= 1.0
(['accuracy', 'loss'], True)
>>> fit(net, (x, y), epochs=[(1, 1e-2), (1, 1e-3)], seed=0)["epochs"]
2
>>> from torch.utils.data import DataLoader, TensorDataset
>>> sorted(evaluate(net, DataLoader(TensorDataset(x, y), batch_size=32)))
['accuracy', 'loss']
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ncg.batches import Check, Data, as_batches
from ncg.distributed import all_gather, all_reduce_gradients, world
from ncg.errors import NCGError, NonFiniteError
from ncg.tasks import Task, get_task
from ncg.threads import Threads, thread_scope

__all__ = ["adam", "train_epoch", "train_epochs", "evaluate", "fit"]


FUSED_DEVICES = ("cpu", "cuda")
"""Devices on which :func:`adam` fuses the update into one kernel per parameter."""


def adam(parameters: Iterable[nn.Parameter], lr: float = 1e-3, weight_decay: float = 0.0) -> torch.optim.Adam:
    """The Adam that ncg's training loops create: ``torch.optim.Adam`` with ``fused=True`` where
    every parameter is on a device that has the fused kernel (CPU, CUDA), else the default.

    The update is Adam's, computed in one vectorised kernel per parameter instead of ~10 ops.

    >>> opt = adam(torch.nn.Linear(3, 2).parameters(), lr=1e-2)
    >>> opt.defaults["fused"], opt.defaults["lr"]
    (True, 0.01)
    """
    parameters = list(parameters)
    fused = bool(parameters) and all(p.device.type in FUSED_DEVICES for p in parameters)
    return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay, fused=fused or None)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor | Data,
    y: Tensor | None = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "train",
    task: str | Task = "classification",
    threads: Threads = "auto",
) -> dict[str, float]:
    """One pass over ``(x, y)`` in shuffled mini-batches, minimising ``task``'s loss.

    ``x`` may also be the whole data: ``(x, y)``, a Dataset or a DataLoader (``y`` omitted;
    a DataLoader's own batches and order are used, ``batch_size`` and ``generator`` ignored).
    ``threads`` sets torch's intra-op threads for the epoch (:func:`ncg.threads.thread_scope`):
    ``"auto"`` runs a small FreeNet's steps on one thread and any other step on the cores other
    processes leave free (measured again every half second), a count pins it, ``None`` leaves
    torch's setting; torch's setting is restored afterwards.
    Returns the task's metrics over the epoch (e.g. mean loss and accuracy). Raises
    :class:`~ncg.errors.NonFiniteError` at the end of the epoch if the loss is NaN or infinite,
    and :class:`~ncg.errors.NCGError` if the data yields no batch.
    """
    task = get_task(task)
    device = next(model.parameters()).device
    data = as_batches(x, y, "training data")
    rank, size = world()
    n = data.num_samples
    if size > 1 and n is not None and min(batch_size, n) < size:
        raise NCGError(f"batch_size={batch_size} and {n} samples leave some of the {size} ranks "
                       "without a sample of the first batch; use a batch of at least one sample per rank")
    model.train()
    step_batch = data.batch_size(batch_size)
    with thread_scope(threads, model, step_batch) as tick:
        batches = data.shuffled(batch_size, generator, check=_checker(task, model, device))
        totals: dict[str, float] = {}
        seen = 0
        for batch in tqdm(batches, total=data.num_batches(batch_size), desc=desc,
                          disable=not progress or rank > 0, leave=False):
            tick()
            optimizer.zero_grad(set_to_none=True)
            output = loss = None
            if batch.x is not None:
                xb, yb = batch.x.to(device), batch.y.to(device)
                output = model(xb)
                loss = task.loss(output, yb)
            if size == 1:
                loss.backward()
            else:
                share = _loss_share(task, loss, 0 if batch.x is None else batch.x.shape[0], batch.total)
                if loss is not None:
                    (loss * share).backward()
                all_reduce_gradients(model.parameters())
            optimizer.step()
            if output is not None:
                task.merge(totals, task.metric_sums(output.detach(), yb))
            seen += batch.total
    if not seen:
        raise NCGError("training data yielded no batch: it is empty, or a one-shot iterator that an earlier "
                       "epoch used up (pass a Dataset or a DataLoader, which start over every epoch)")
    metrics = task.reduce(_merge_ranks(task, totals), seen)
    loss = metrics.get("loss", 0.0)
    if loss != loss or loss in (float("inf"), float("-inf")):
        raise NonFiniteError(f"training loss became {loss}; lower the learning rate")
    return metrics


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Tensor | Data, y: Tensor | None = None, batch_size: int = 2048,
    task: str | Task = "classification", threads: Threads = "auto",
) -> dict[str, float]:
    """``task``'s metrics of ``model`` on ``(x, y)`` (by default mean cross-entropy and accuracy);
    ``x`` may also be the whole data, and ``threads`` the setting, as :func:`train_epoch` takes
    them."""
    task = get_task(task)
    device = next(model.parameters()).device
    data = as_batches(x, y, "evaluation data")
    was_training = model.training
    model.eval()
    size = world()[1]
    n = data.num_samples
    shared = size > 1 and (n is None or n >= size)  # else every rank evaluates everything: no exchange
    totals: dict[str, float] = {}
    seen = 0
    step_batch = data.batch_size(batch_size)
    try:
        with thread_scope(threads, model, step_batch) as tick:
            for xb, yb in (data.local() if shared else data).in_order(batch_size, check=_checker(task, model, device)):
                tick()
                task.merge(totals, task.metric_sums(model(xb.to(device)), yb.to(device)))
                seen += xb.shape[0]
    finally:
        model.train(was_training)
    return task.reduce(_merge_ranks(task, totals) if shared else totals, n if shared else seen)


def _checker(task: Task, model: nn.Module, device: torch.device) -> Check:
    """``task``'s check of ``(x, y, label)`` against ``model``'s outputs and device, as
    :class:`~ncg.batches.Batches` runs it (once on tensors, on every batch of streamed data)."""
    outputs = _num_outputs(model)
    return lambda x, y, label: task.check(x, y, label, outputs, device)


def _loss_share(task: Task, loss: Tensor | None, local: int, total: int) -> float:
    """The factor on this rank's loss (over ``local`` of a global batch's ``total`` samples)
    that makes the ranks' gradients sum to the global batch's: ``local / total`` for a mean
    loss; for a maximum, 1 on the rank holding the batch's maximum (the first such rank) and 0
    on the others."""
    if task.loss_is_mean:
        return local / total
    mine = loss.detach().double().reshape(1) if loss is not None else torch.tensor([float("-inf")], dtype=torch.float64)
    values = torch.cat([value.cpu() for value in all_gather(mine, kind="loss")])
    return 1.0 if int(values.argmax()) == world()[0] else 0.0


def _merge_ranks(task: Task, totals: dict[str, float]) -> dict[str, float]:
    """``task``'s metric sums of this rank merged with every other rank's (sums add, maxima
    take the largest), in rank order, so every rank gets the same totals."""
    if world()[1] == 1:
        return totals
    keys = sorted(totals)
    merged: dict[str, float] = {}
    for values in all_gather(torch.tensor([totals[k] for k in keys], dtype=torch.float64), kind="metrics"):
        task.merge(merged, dict(zip(keys, values.tolist())))
    return merged


def _num_outputs(model: nn.Module) -> int | None:
    """Output width of a FreeNet or of a model ending in ``nn.Linear`` (``None`` if unknown)."""
    if hasattr(model, "out_features"):
        return int(model.out_features)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return linears[-1].out_features if linears else None


def train_epochs(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: Data,
    epochs: int,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "epoch",
    task: str | Task = "classification",
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    last_epoch_hook: Callable[[Tensor], None] | None = None,
    threads: Threads = "auto",
) -> tuple[dict[str, float], float]:
    """Run :func:`train_epoch` ``epochs`` times: the one epoch loop of :func:`fit` and of
    Free-Evolve's rounds.

    Parameters
    ----------
    model, optimizer, train, batch_size, generator, progress, task, threads
        As :func:`train_epoch` takes them; ``train`` is the whole data (tensors ``(x, y)``, a
        Dataset or a DataLoader). The epochs continue ``generator``'s shuffling.
    epochs : int
        How many epochs (0 trains nothing).
    desc : str
        Progress-bar label, shown as ``"{desc} {epoch}/{epochs}"``.
    on_epoch : callable, optional
        ``on_epoch(epoch, stats)`` after every epoch, ``epoch`` counting from 1, ``stats`` that
        epoch's training metrics (unprefixed); its time is not counted.
    last_epoch_hook : callable, optional
        Set as the model's ``activation_hook`` (a :class:`~ncg.model.FreeNet` passes it every
        batch's neuron activations) during the last epoch only, and cleared after it, also when
        the epoch raises.

    Returns
    -------
    metrics : dict
        The last epoch's training metrics, prefixed ``train_`` (empty for ``epochs=0``).
    seconds : float
        Wall-clock seconds spent in the epochs themselves.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    >>> model = nn.Linear(3, 2)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> metrics, seconds = train_epochs(model, opt, (x, y), 3, batch_size=8, generator=torch.Generator().manual_seed(0))
    >>> sorted(metrics), seconds > 0
    (['train_accuracy', 'train_loss'], True)
    """
    metrics: dict[str, float] = {}
    seconds = 0.0
    for epoch in range(1, epochs + 1):
        if last_epoch_hook is not None and epoch == epochs:
            model.activation_hook = last_epoch_hook
        start = time.perf_counter()
        try:
            stats = train_epoch(model, optimizer, train, batch_size=batch_size, generator=generator,
                                progress=progress, desc=f"{desc} {epoch}/{epochs}", task=task, threads=threads)
        finally:
            if last_epoch_hook is not None:
                model.activation_hook = None
        seconds += time.perf_counter() - start
        metrics = {f"train_{k}": v for k, v in stats.items()}
        if on_epoch is not None:
            on_epoch(epoch, stats)
    return metrics, seconds


def fit(
    model: nn.Module,
    train: Data,
    val: Data | None = None,
    epochs: Sequence[tuple[int, float]] = ((1, 1e-3),),
    batch_size: int = 256,
    seed: int = 0,
    task: str | Task = "classification",
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool = False,
    generator: torch.Generator | None = None,
    threads: Threads = "auto",
) -> dict[str, float]:
    """Train ``model`` with Adam (:func:`adam`, unless ``optimizer`` is given) through stages of
    ``(epochs, learning_rate)``.

    The plain-training baseline: ``epochs=[(8, 1e-3), (3, 2e-4)]`` is the main job's budget.
    ``train`` and ``val`` are tensors ``(x, y)``, Datasets or DataLoaders (:mod:`ncg.batches`).
    Shuffling is fixed by ``seed`` (or continues ``generator``, and an ``optimizer`` passed in
    keeps its state, so two calls can make one run). ``threads`` is :func:`train_epoch`'s.
    Returns the last epoch's training metrics (prefixed ``train_``), the validation metrics
    (``val_``) if ``val`` is given, and ``epochs``.
    """
    stages = [(int(n), float(lr)) for n, lr in epochs]
    if any(n < 0 or lr <= 0 for n, lr in stages):
        raise NCGError(f"epochs must be (count >= 0, learning rate > 0) pairs, got {stages}")
    optimizer = optimizer or adam(model.parameters(), lr=stages[0][1] if stages else 1e-3)
    generator = generator or torch.Generator().manual_seed(seed)
    metrics: dict[str, float] = {}
    for count, lr in stages:
        for group in optimizer.param_groups:
            group["lr"] = lr
        stage_metrics, _ = train_epochs(model, optimizer, train, count, batch_size=batch_size, generator=generator,
                                        progress=progress, desc=f"lr {lr:g} epoch", task=task, threads=threads)
        metrics = stage_metrics or metrics
    if val is not None:
        metrics.update({f"val_{k}": v for k, v in evaluate(model, val, task=task).items()})
    return {**metrics, "epochs": sum(count for count, _ in stages)}
