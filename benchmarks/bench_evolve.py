"""Cost of one Free-Evolve round against one training epoch, side by side in one run.

On the 512-hidden-neuron complete DAG (MNIST shape: 784 inputs, 10 outputs) this times
(1) one training epoch over 60,000 MNIST samples (batch 256, Adam) and (2) one evolve round's
topology work: recording coactivation over 10,000 samples, proposing edits (remove, prune,
augment) and applying them (new graph, rewired model and optimiser). It prints both and the
ratio round / epoch (target: <= 0.10), then one JSON line.

    python benchmarks/bench_evolve.py [--hidden 512] [--record-samples 10000]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ncg import NCG, FreeNet
from ncg.datasets import mnist
from ncg.evolve.apply import apply_edits, rewire
from ncg.evolve.coactivation import record_coactivation
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.train import train_epoch


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--record-samples", type=int, default=10_000)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    data = mnist()
    x = torch.cat([data.train.tensors[0], data.val.tensors[0]])
    y = torch.cat([data.train.tensors[1], data.val.tensors[1]])
    model = FreeNet(NCG.complete(args.hidden + 10, num_outputs=10, seed=0), in_features=784, seed=0)
    evolve = FreeEvolve(model, EvolveConfig(record_samples=args.record_samples, budget=EditBudget(prune_fraction=0.2)))

    start = time.perf_counter()
    train_epoch(model, evolve.optimizer, x, y, batch_size=256, generator=torch.Generator().manual_seed(0))
    epoch = time.perf_counter() - start

    edges_before = model.edge_index.shape[1]
    start = time.perf_counter()
    co = record_coactivation(model, x, max_samples=args.record_samples)
    recorded = time.perf_counter() - start
    edits = evolve.propose(co, (x, y))
    proposed = time.perf_counter() - start
    graph, maps = apply_edits(model.graph, edits, unreachable="ignore")
    rewire(model, graph, maps, evolve.optimizer)
    round_seconds = time.perf_counter() - start

    print(f"complete DAG: {args.hidden} hidden + 10 outputs, {edges_before:,} edges before the round")
    print(f"one epoch over {len(x):,} samples:        {epoch:7.2f} s")
    print(f"one evolve round ({args.record_samples:,} samples):     {round_seconds:7.2f} s"
          f"  (record {recorded:.2f} s, propose {proposed - recorded:.2f} s, apply {round_seconds - proposed:.2f} s)")
    print(f"edits: {len(edits):,} ({sum(e.op == 'prune_edge' for e in edits):,} pruned, {sum(e.op == 'add_edge' for e in edits):,} added)")
    result = {"round_vs_epoch": round(round_seconds / epoch, 4), "epoch_seconds": round(epoch, 3), "round_seconds": round(round_seconds, 3)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
