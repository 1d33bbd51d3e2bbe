"""Log a Free-Evolve run to TensorBoard, one step per round.

:class:`TensorBoardCallback` is a :class:`~ncg.evolve.loop.FreeEvolve` callback: after every round
(and after the fine-tuning) it writes the round's scalars, a histogram of every parameter and,
if given a ``figure`` function, a figure of the model; after every epoch, the epoch's training
metrics (``epoch/train_*``, step = the epoch's number in the run).

The figure is a function passed in, not drawn here, because nothing under ``ncg/`` imports the
plotting package ``viz/``; pass ``figure=viz.draw_topology`` for the topology of every round
(about half a second per round for 2,000 neurons, so it is off by default).

Needs the ``tensorboard`` package (``pip install "ncg[tensorboard]"``). View a run with
``tensorboard --logdir LOG_DIR``.

Examples
--------
>>> import tempfile, torch
>>> from ncg import NCG, FreeNet
>>> from ncg.evolve import EvolveConfig, FreeEvolve
>>> net = FreeNet(NCG.complete(8, num_outputs=2, seed=0), in_features=3, seed=0)
>>> board = TensorBoardCallback(tempfile.mkdtemp())
>>> x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
>>> len(FreeEvolve(net, EvolveConfig(rounds=1, record_samples=32), callbacks=[board]).run((x, y)))
3
>>> board.close()
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable

from torch import nn

from ncg.evolve.edits import EDIT_OPS
from ncg.evolve.history import RoundRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ncg.evolve.loop import FreeEvolve

__all__ = ["TensorBoardCallback", "round_scalars"]


def round_scalars(record: RoundRecord) -> dict[str, float]:
    """The scalars of one round under their TensorBoard tags: ``train/*`` and ``val/*`` (the
    metrics; others under ``metrics/*``), ``graph/*`` (edges, neurons, depth, generations),
    ``edits/*`` (one per edit kind) and ``timing/*`` (``record.timing`` and the round's seconds).

    Examples
    --------
    >>> import numpy as np
    >>> record = RoundRecord(1, 4, 3, 2, 3, np.zeros((2, 3), np.int64), np.array([3]), np.arange(4),
    ...                      metrics={"train_loss": 0.5, "val_accuracy": 0.75}, timing={"seconds_per_step": 0.01})
    >>> scalars = round_scalars(record)
    >>> scalars["train/loss"], scalars["val/accuracy"], scalars["graph/edges"], scalars["edits/prune_edge"]
    (0.5, 0.75, 3.0, 0.0)
    >>> scalars["timing/seconds_per_step"]
    0.01
    """
    scalars: dict[str, float] = {}
    for key, value in record.metrics.items():
        split, _, name = key.partition("_")
        scalars[f"{split}/{name}" if split in ("train", "val") and name else f"metrics/{key}"] = float(value)
    scalars.update({
        "graph/edges": float(record.num_edges),
        "graph/neurons": float(record.num_neurons),
        "graph/depth": float(record.depth),
        "graph/generations": float(record.num_generations),
    })
    scalars.update({f"edits/{op}": float(record.count(op)) for op in EDIT_OPS})
    scalars.update({f"timing/{key}": float(value) for key, value in record.timing.items()})
    scalars["timing/round_seconds"] = float(record.seconds)
    return scalars


class TensorBoardCallback:
    """A FreeEvolve callback writing every round to a TensorBoard event file in ``log_dir``.

    Parameters
    ----------
    log_dir : str or path-like
        Folder of the event files (created if missing).
    histograms : bool
        Write a histogram of every parameter of the model (``weights/<name>``) each round.
    figure : callable, optional
        ``figure(model) -> matplotlib Figure`` drawn each round under the tag ``topology``, e.g.
        ``viz.draw_topology`` (needs matplotlib); none by default.

    Notes
    -----
    The step of each entry is the round number (the fine-tuning is the last step). Under
    ``torchrun`` give it to rank 0 only (``callbacks=[board] if ncg.distributed.is_main() else []``):
    every rank holds the same model and metrics.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str],
        histograms: bool = True,
        figure: Callable[[nn.Module], Figure] | None = None,
    ) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:  # torch's writer needs the tensorboard package
            raise ModuleNotFoundError(
                'TensorBoardCallback needs the tensorboard package: pip install "ncg[tensorboard]"'
            ) from error
        self.writer = SummaryWriter(log_dir=os.fspath(log_dir))
        self.histograms = histograms
        self.figure = figure

    def __call__(self, evolve: FreeEvolve, record: RoundRecord) -> None:
        """Write ``record``'s scalars, the parameter histograms and the figure at step ``record.round``."""
        step = record.round
        for tag, value in round_scalars(record).items():
            self.writer.add_scalar(tag, value, step)
        if self.histograms:
            for name, parameter in evolve.model.named_parameters():
                if parameter.numel():
                    self.writer.add_histogram(f"weights/{name}", parameter.detach().cpu(), step)
        if self.figure is not None:
            self.writer.add_figure("topology", self.figure(evolve.model), step, close=True)
        self.writer.flush()

    def on_epoch(self, evolve: FreeEvolve, epoch: int, stats: dict[str, float]) -> None:
        """Write one epoch's training metrics as ``epoch/train_*`` at step ``epoch``."""
        for name, value in stats.items():
            self.writer.add_scalar(f"epoch/train_{name}", value, epoch)

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
