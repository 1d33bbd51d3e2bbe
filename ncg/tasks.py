"""Learning tasks: the loss a model is trained on and the metrics it is judged by.

A :class:`Task` is a small frozen value: training (:mod:`ncg.train`), Free-Evolve's saliency
scores and the experiment runner take one instead of hard-coding cross-entropy. Three are built
in (:data:`TASKS`):

* ``classification``: cross-entropy; metrics ``loss`` and ``accuracy``.
* ``regression``: mean squared error; metrics ``loss``, ``mse`` and ``max_abs_error``.
* ``regression_linf``: the largest absolute error of the batch (L-infinity), as the FreeNets
  authors fit polynomials; the same metrics.

Metrics are accumulated as sums over samples (:meth:`Task.metric_sums`) and divided once at the
end, except ``max_abs_error``, which is a maximum.

Examples
--------
>>> import torch
>>> task = TASKS["regression"]
>>> out, y = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.0], [4.0]])
>>> float(task.loss(out, y)), task.metrics(out, y)
(2.0, {'mse': 2.0, 'max_abs_error': 2.0, 'loss': 2.0})
>>> TASKS["classification"].metrics(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))["accuracy"]
0.5
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ncg.errors import NCGError

__all__ = ["Task", "TASKS", "get_task"]


def _linf(output: Tensor, target: Tensor) -> Tensor:
    return (output - target.reshape(output.shape)).abs().max()


def _mse(output: Tensor, target: Tensor) -> Tensor:
    return nn.functional.mse_loss(output, target.reshape(output.shape).to(output.dtype))


def _classification_sums(output: Tensor, target: Tensor) -> dict[str, float]:
    return {
        "loss": float(nn.functional.cross_entropy(output, target, reduction="sum")),
        "accuracy": float((output.argmax(1) == target).sum()),
    }


def _regression_sums(output: Tensor, target: Tensor) -> dict[str, float]:
    error = output - target.reshape(output.shape).to(output.dtype)
    outputs_per_sample = max(1, error.numel() // max(1, error.shape[0]))
    return {"mse": float(error.square().sum()) / outputs_per_sample, "max_abs_error": float(error.abs().max()) if error.numel() else 0.0}


@dataclass(frozen=True)
class Task:
    """A training loss plus the metrics that judge the result.

    Attributes
    ----------
    name : str
        Key in :data:`TASKS`.
    loss : callable
        ``loss(output [B, K], target) -> scalar Tensor``, the mean (or max) over the batch.
    sums : callable
        ``sums(output, target) -> dict``: per-batch metric sums over samples (``max_abs_error``
        is a maximum).
    primary : str
        The metric a result is reported by (``accuracy`` or ``mse``).
    higher_is_better : bool
        Whether a larger ``primary`` is better.
    loss_is_mean : bool
        ``loss`` is a per-sample mean (``False`` for the L-infinity loss); decides how the
        ``loss`` metric is accumulated.
    """

    name: str
    loss: Callable[[Tensor, Tensor], Tensor]
    sums: Callable[[Tensor, Tensor], dict[str, float]]
    primary: str
    higher_is_better: bool
    loss_is_mean: bool = True

    def metric_sums(self, output: Tensor, target: Tensor) -> dict[str, float]:
        """Metric sums of one batch (the ``loss`` entry times the batch size when it is a mean)."""
        sums = self.sums(output, target)
        if "loss" not in sums:
            loss = float(self.loss(output, target))
            sums["loss"] = loss * output.shape[0] if self.loss_is_mean else loss
        return sums

    def _is_max(self, key: str) -> bool:
        return key == "max_abs_error" or (key == "loss" and not self.loss_is_mean)

    def merge(self, totals: dict[str, float], sums: dict[str, float]) -> dict[str, float]:
        """Fold one batch's :meth:`metric_sums` into ``totals`` (in place; also returned)."""
        for key, value in sums.items():
            combine = max if self._is_max(key) else float.__add__
            totals[key] = combine(totals[key], value) if key in totals else value
        return totals

    def reduce(self, totals: dict[str, float], num_samples: int) -> dict[str, float]:
        """Turn merged :meth:`metric_sums` into metrics: sums become means, maxima stay."""
        n = max(1, num_samples)
        return {key: value if self._is_max(key) else value / n for key, value in totals.items()}

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, float]:
        """Metrics of one batch."""
        return self.reduce(self.metric_sums(output, target), output.shape[0])

    def check(self, x: Tensor, y: Tensor, argument: str = "data", num_outputs: int | None = None) -> None:
        """Raise :class:`~ncg.errors.NCGError` naming ``argument`` if ``(x, y)`` cannot be
        trained on: not tensors, lengths that differ, class labels that are not integers or lie
        outside ``[0, num_outputs)``, regression targets that are not floating point.

        Examples
        --------
        >>> TASKS["classification"].check(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 1.0]), "train")
        Traceback (most recent call last):
        ...
        ncg.errors.NCGError: train: class labels must be integers (torch.long), got torch.float32
        """
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise NCGError(f"{argument} must be a pair of tensors (x, y), got ({type(x).__name__}, {type(y).__name__})")
        if x.shape[0] != y.shape[0]:
            raise NCGError(f"{argument}: x has {x.shape[0]} samples but y has {y.shape[0]}")
        if self.primary == "accuracy":
            if y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
                raise NCGError(f"{argument}: class labels must be integers (torch.long), got {y.dtype}")
            if y.dim() != 1:
                raise NCGError(f"{argument}: class labels must be 1-D, got shape {list(y.shape)}")
            if y.numel():
                low, high = int(y.min()), int(y.max())
                if low < 0 or (num_outputs is not None and high >= num_outputs):
                    bad = low if low < 0 else high
                    raise NCGError(f"{argument}: label {bad} is outside [0, {num_outputs}) for a model with "
                                   f"{num_outputs} outputs")
        elif not y.dtype.is_floating_point:
            raise NCGError(f"{argument}: regression targets must be floating point, got {y.dtype}")

    def better(self, a: float, b: float) -> bool:
        """Whether primary value ``a`` beats ``b``."""
        return a > b if self.higher_is_better else a < b


TASKS: dict[str, Task] = {
    "classification": Task("classification", nn.functional.cross_entropy, _classification_sums, "accuracy", True),
    "regression": Task("regression", _mse, _regression_sums, "mse", False),
    "regression_linf": Task("regression_linf", _linf, _regression_sums, "mse", False, loss_is_mean=False),
}
"""Built-in tasks by name."""


def get_task(task: str | Task) -> Task:
    """A :class:`Task` from itself or its name; raises :class:`~ncg.errors.NCGError` otherwise.

    Examples
    --------
    >>> get_task("regression").primary
    'mse'
    """
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise NCGError(f"task must be a Task or one of {sorted(TASKS)}, got {task!r}")
    return TASKS[task]
