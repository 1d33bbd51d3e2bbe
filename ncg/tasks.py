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

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ncg.errors import NCGError, NonFiniteError

__all__ = ["Task", "TASKS", "get_task"]


def _linf(output: Tensor, target: Tensor) -> Tensor:
    return (output - target.reshape(output.shape)).abs().max()


def _mse(output: Tensor, target: Tensor) -> Tensor:
    return nn.functional.mse_loss(output, target.reshape(output.shape).to(output.dtype))


def _cross_entropy(output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy over class labels of any integer dtype (converted to ``torch.long``)."""
    return nn.functional.cross_entropy(output, target.long(), reduction=reduction)


def _classification_sums(output: Tensor, target: Tensor) -> dict[str, float]:
    return {
        "loss": float(_cross_entropy(output, target, reduction="sum")),
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

    def check(
        self,
        x: Tensor,
        y: Tensor,
        argument: str = "data",
        num_outputs: int | None = None,
        device: torch.device | None = None,
    ) -> None:
        """Check that a model with ``num_outputs`` outputs on ``device`` can be trained on or
        evaluated on ``(x, y)``, before any batch is drawn.

        Data on another device than the model is fine (each batch is copied to the model's
        device); a tensor or model on the ``meta`` device (shapes without values) is not. Class
        labels may have any integer dtype (the loss converts them to ``torch.long``).

        Parameters
        ----------
        x, y : Tensor
            Inputs ``[N, ...]`` (one row per sample) and targets: class labels ``[N]`` for
            classification, ``[N]`` or ``[N, num_outputs]`` real values for regression.
        argument : str
            What the data is called in error messages (e.g. ``"training data"``).
        num_outputs : int, optional
            The model's outputs (``out_features``); labels and target widths are checked
            against it when given.
        device : torch.device, optional
            The device of the model's parameters.

        Raises
        ------
        NCGError
            Naming ``argument``, what was expected, what was found, and the fix: not a pair of
            tensors, no sample dimension, lengths that differ, meta tensors or a meta model,
            class labels that are not integers, not 1-D or outside ``[0, num_outputs)``,
            regression targets that are not floating point or whose width differs from
            ``num_outputs``.
        NonFiniteError
            If ``x`` or a regression ``y`` holds a NaN or an infinity: the message names the
            first one's place and the count, before anything trains on it.

        Examples
        --------
        >>> TASKS["classification"].check(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 1.0]), "train")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ncg.errors.NCGError: train: class labels must be integers (torch.long), got torch.float32; for \
real-valued targets pass task="regression" (EvolveConfig(task="regression"), fit(..., task="regression")), ...
        >>> TASKS["regression"].check(torch.zeros(4, 2), torch.zeros(4, 2), "train", num_outputs=1)
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ncg.errors.NCGError: train: targets have shape [4, 2] (2 values per sample) but the model has 1 output; \
build it with out_features=2 ...
        """
        if not isinstance(x, Tensor) or not isinstance(y, Tensor):
            raise NCGError(f"{argument} must be a pair of tensors (x, y), got ({type(x).__name__}, {type(y).__name__})")
        for name, tensor in (("x", x), ("y", y)):
            if tensor.dim() == 0:
                raise NCGError(f"{argument}: {name} must have one row per sample, got a scalar (shape [])")
            if tensor.is_meta:
                raise NCGError(f"{argument}: {name} is on the meta device (shape {list(tensor.shape)} without "
                               "values); pass tensors that hold data, e.g. on 'cpu' or 'cuda'")
        if device is not None and torch.device(device).type == "meta":
            raise NCGError(f"{argument}: the model's parameters are on the meta device (shapes without values); "
                           "build or load the model on a real device, e.g. load_freenet(path, map_location='cpu')")
        if x.shape[0] != y.shape[0]:
            raise NCGError(f"{argument}: x has {x.shape[0]} samples but y has {y.shape[0]}")
        if x.dim() == 1:
            raise NCGError(f"{argument}: x must be [samples, features], got shape {list(x.shape)}; "
                           "for one feature per sample pass x.unsqueeze(1)")
        _check_finite(x, "x", argument)
        if self.primary == "accuracy":
            self._check_labels(y, argument, num_outputs)
        else:
            self._check_targets(y, argument, num_outputs)
            _check_finite(y, "y", argument)

    def _check_labels(self, y: Tensor, argument: str, num_outputs: int | None) -> None:
        """:meth:`check` for class labels: integers, 1-D, in ``[0, num_outputs)``."""
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            one_hot = " (for one-hot rows, y.argmax(1))" if y.dim() == 2 and y.shape[1] > 1 else ""
            raise NCGError(
                f"{argument}: class labels must be integers (torch.long), got {y.dtype}; for real-valued targets "
                'pass task="regression" (EvolveConfig(task="regression"), fit(..., task="regression")), '
                f"for class labels stored as {'bools' if y.dtype == torch.bool else 'floats'} pass y.long(){one_hot}"
            )
        if y.dim() != 1:
            fix = "y.reshape(-1)" if math.prod(y.shape[1:]) == 1 else "y.argmax(1) for one-hot rows"
            raise NCGError(f"{argument}: class labels must be 1-D (one class index per sample), "
                           f"got shape {list(y.shape)}; pass {fix}")
        if not y.numel():
            return
        low, high = int(y.min()), int(y.max())
        classes = "num_classes" if num_outputs is None else str(num_outputs)
        if low < 0:
            raise NCGError(f"{argument}: label {low} is outside [0, {classes}): class labels are 0-based "
                           "indices; relabel them to start at 0")
        if num_outputs is not None and high >= num_outputs:
            raise NCGError(
                f"{argument}: label {high} is outside [0, {num_outputs}) for a model with {num_outputs} "
                f"output{'s' if num_outputs != 1 else ''}; build it with out_features={high + 1} (one output per "
                f"class), or relabel the classes to 0..{num_outputs - 1}"
            )

    def _check_targets(self, y: Tensor, argument: str, num_outputs: int | None) -> None:
        """:meth:`check` for regression targets: floating point, ``num_outputs`` values per sample."""
        if not y.dtype.is_floating_point:
            raise NCGError(f"{argument}: regression targets must be floating point, got {y.dtype}; pass y.float(), "
                           'or task="classification" for class labels')
        width = math.prod(y.shape[1:])
        if num_outputs is not None and width != num_outputs:
            raise NCGError(
                f"{argument}: targets have shape {list(y.shape)} ({width} value{'s' if width != 1 else ''} per "
                f"sample) but the model has {num_outputs} output{'s' if num_outputs != 1 else ''}; build it with "
                f"out_features={width} (e.g. FreeNet(graph, in_features, out_features={width})), or pass targets "
                f"of shape [{y.shape[0]}, {num_outputs}]"
            )

    def better(self, a: float, b: float) -> bool:
        """Whether primary value ``a`` beats ``b``."""
        return a > b if self.higher_is_better else a < b


TASKS: dict[str, Task] = {
    "classification": Task("classification", _cross_entropy, _classification_sums, "accuracy", True),
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


def _check_finite(tensor: Tensor, name: str, argument: str) -> None:
    """Raise :class:`~ncg.errors.NonFiniteError` naming the first NaN or infinity in
    ``tensor`` (``name`` of ``argument``) and their count."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return
    low, high = torch.aminmax(tensor)  # NaN propagates; one pass, no [N, ...] mask (28x faster on MNIST)
    if bool(torch.isfinite(low) & torch.isfinite(high)):
        return
    bad = ~torch.isfinite(tensor)
    first = tuple(int(i) for i in bad.nonzero()[0])
    count = int(bad.sum())
    raise NonFiniteError(
        f"{argument}: {name}[{', '.join(map(str, first))}] is {tensor[first].item()}"
        f"{f' (and {count - 1:,} more NaN or infinite values)' if count > 1 else ''}; the data must be finite: "
        "drop or fill in those samples before training"
    )
