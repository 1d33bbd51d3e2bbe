"""Free-Evolve a small FreeNet on digits, in one process or data-parallel under torchrun; every
rank saves its final state to ``OUT/rank<k>.pt`` (used by ``tests/test_distributed.py``).

    python tests/distributed_worker.py OUT
    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py OUT

Two runs: the Hebbian rules recording during training (``hebbian``), and the gradient rules
(saliency pruning, RigL growing) with a separate recording pass (``gradient``); then a plain
fit with the max (L-infinity) loss (``linf``). Under torchrun, rank 1 then perturbs one weight
and every rank records the error of the consistency check.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor

from ncg import NCG, FreeNet, distributed
from ncg.datasets import load_dataset
from ncg.errors import InconsistentRanksError
from ncg.evolve import EditBudget, EvolveConfig, FreeEvolve
from ncg.train import fit

CONFIGS = {
    "hebbian": EvolveConfig(rounds=2, epochs_per_round=2, final_epochs=1, record_samples=300, tau=0.1,
                            batch_size=64, lr=1e-2, budget=EditBudget(prune_fraction=0.2, add_fraction=0.05),
                            stop_when_unchanged=False),
    "gradient": EvolveConfig(rounds=2, epochs_per_round=1, final_epochs=1, record_samples=300, batch_size=64,
                             lr=1e-2, prune_score="saliency", grow_score="gradient", record_during_training=False,
                             budget=EditBudget(prune_fraction=0.2, add_fraction=0.05), stop_when_unchanged=False),
}


def evolve(name: str, train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor]) -> dict:
    """Run ``CONFIGS[name]``; the final state, edits per round, metrics, traffic after each round,
    and the error of a deliberately failed consistency check (``None`` in one process)."""
    model = FreeNet(NCG.complete(24 + 10, num_outputs=10, seed=0), in_features=64, seed=0)
    rounds = []
    run = FreeEvolve(model, CONFIGS[name], callbacks=[lambda evolve, record: rounds.append(distributed.traffic())])
    distributed.reset_traffic()
    history = run.run(train, val)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mismatch = None
    rank, size = distributed.world()
    if size > 1:
        with torch.no_grad():
            model.weight[0] += 1e-6 * (rank == 1)
        try:
            distributed.check_consistent(model, "after a deliberate change on rank 1", run.optimizer)
        except InconsistentRanksError as error:
            mismatch = str(error)
    return {
        "state": state,
        "edits": [len(r.edits) for r in history.rounds],
        "metrics": history.rounds[-1].metrics,
        "traffic": rounds,
        "parameters": sum(p.numel() for p in model.parameters()),
        "mismatch": mismatch,
    }


def linf_fit(train: tuple[Tensor, Tensor]) -> dict:
    """Plain training with the max loss, which only the rank holding the maximum back-propagates."""
    x, labels = train
    target = torch.nn.functional.one_hot(labels, 10).float()
    model = FreeNet(NCG.complete(8 + 10, num_outputs=10, seed=1), in_features=64, seed=1)
    metrics = fit(model, (x, target), epochs=[(2, 1e-2)], batch_size=50, task="regression_linf", seed=3)
    return {"state": model.state_dict(), "metrics": metrics}


def main(out: Path) -> None:
    rank, size = distributed.init_from_env("cpu", timeout=120)
    torch.manual_seed(0)
    data = load_dataset("digits")
    train = tuple(t[:499] for t in data.train.tensors)  # the last batch of 64 is split unevenly, 26 + 25
    result = {name: evolve(name, train, data.val.tensors) for name in CONFIGS}
    result["linf"] = linf_fit(train)
    torch.save({"rank": rank, "size": size, **result}, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
