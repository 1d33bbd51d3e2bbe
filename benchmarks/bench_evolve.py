"""Cost of one Free-Evolve round against one training epoch, side by side in one run.

On the 512-hidden-neuron complete DAG (MNIST shape: 784 inputs, 10 outputs) this times
(1) one training epoch over 60,000 MNIST samples (batch 256, Adam) and (2) one evolve round's
topology work on a copy of the same model: recording coactivation over 10,000 samples, proposing
edits (remove, prune, augment) and applying them (new graph, rewired model and optimiser).
The two alternate ``--repeats`` times and the medians are compared, so machine load hits both
alike. It prints both and the ratio round / epoch (target: <= 0.10), then one JSON line.

    python benchmarks/bench_evolve.py [--hidden 512] [--record-samples 10000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from ncg import NCG, FreeNet
from ncg.datasets import mnist
from ncg.evolve.apply import apply_edits, rewire
from ncg.evolve.coactivation import record_coactivation
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.train import train_epoch


def evolve_round(evolve: FreeEvolve, x: torch.Tensor, y: torch.Tensor, samples: int) -> dict[str, float]:
    """Record, propose and apply one round on ``evolve.model``; the seconds of each phase."""
    start = time.perf_counter()
    co = record_coactivation(evolve.model, x, max_samples=samples)
    recorded = time.perf_counter()
    edits = evolve.propose(co, (x, y))
    proposed = time.perf_counter()
    graph, maps = apply_edits(evolve.model.graph, edits, unreachable="ignore")
    rewire(evolve.model, graph, maps, evolve.optimizer)
    done = time.perf_counter()
    return {"record": recorded - start, "propose": proposed - recorded, "apply": done - proposed,
            "total": done - start, "edits": len(edits)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--record-samples", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    data = mnist()
    x = torch.cat([data.train.tensors[0], data.val.tensors[0]])
    y = torch.cat([data.train.tensors[1], data.val.tensors[1]])
    model = FreeNet(NCG.complete(args.hidden + 10, num_outputs=10, seed=0), in_features=784, seed=0)
    config = EvolveConfig(record_samples=args.record_samples, budget=EditBudget(prune_fraction=0.2))
    evolve = FreeEvolve(model, config)
    edges = model.edge_index.shape[1]

    epochs, rounds = [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        train_epoch(model, evolve.optimizer, x, y, batch_size=256, generator=torch.Generator().manual_seed(repeat))
        epochs.append(time.perf_counter() - start)
        trial = FreeEvolve(copy.deepcopy(model), config)
        rounds.append(evolve_round(trial, x, y, args.record_samples))
    epoch = statistics.median(epochs)
    phase = {k: statistics.median(r[k] for r in rounds) for k in ("record", "propose", "apply", "total")}

    print(f"complete DAG: {args.hidden} hidden + 10 outputs, {edges:,} edges; medians of {args.repeats} alternating runs")
    print(f"one epoch over {len(x):,} samples:        {epoch:7.2f} s")
    print(f"one evolve round ({args.record_samples:,} samples):     {phase['total']:7.2f} s"
          f"  (record {phase['record']:.2f} s, propose {phase['propose']:.2f} s, apply {phase['apply']:.2f} s,"
          f" {rounds[-1]['edits']:,} edits)")
    result = {"round_vs_epoch": round(phase["total"] / epoch, 4), "epoch_seconds": round(epoch, 3),
              "round_seconds": round(phase["total"], 3)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
