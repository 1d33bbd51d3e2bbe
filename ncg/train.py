"""Minimal, fast training helpers over in-memory tensors.

Data sets here fit in memory, so batches are index slices of one tensor (no DataLoader worker
overhead). A ``torch.Generator`` fixes the shuffling, so a seed fixes a run.

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
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ncg.errors import NonFiniteError

__all__ = ["train_epoch", "evaluate"]


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    progress: bool = False,
    desc: str = "train",
) -> dict[str, float]:
    """One pass over ``(x, y)`` in shuffled mini-batches with cross-entropy.

    Returns the mean training loss and accuracy. Raises
    :class:`~ncg.errors.NonFiniteError` at the end of the epoch if the mean loss is NaN or infinite.
    """
    model.train()
    device = next(model.parameters()).device
    order = torch.randperm(x.shape[0], generator=generator)
    total_loss = torch.zeros((), dtype=torch.float64)
    correct = 0
    for start in tqdm(range(0, x.shape[0], batch_size), desc=desc, disable=not progress, leave=False):
        index = order[start:start + batch_size]
        xb, yb = x[index].to(device), y[index].to(device)
        logits = model(xb)
        loss = nn.functional.cross_entropy(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.detach().double().cpu() * index.numel()
        correct += int((logits.detach().argmax(1) == yb).sum())
    mean_loss = float(total_loss) / max(1, x.shape[0])
    if mean_loss != mean_loss or mean_loss in (float("inf"), float("-inf")):
        raise NonFiniteError(f"training loss became {mean_loss}; lower the learning rate")
    return {"loss": mean_loss, "accuracy": correct / max(1, x.shape[0])}


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 2048) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``(x, y)``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_loss, correct = 0.0, 0
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
        logits = model(xb)
        total_loss += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(1) == yb).sum())
    model.train(was_training)
    n = max(1, x.shape[0])
    return {"loss": total_loss / n, "accuracy": correct / n}
