"""Cost of one Free-Evolve round against one training epoch, side by side in one run.

On the 512-hidden-neuron complete DAG (MNIST shape: 784 inputs, 10 outputs) this times
(1) one training epoch over 60,000 MNIST samples (batch 256, Adam) and (2) one evolve round's
topology work on a copy of the same model: recording coactivation over 10,000 samples, proposing
edits (remove, prune, augment) and applying them (new graph, rewired model and optimiser).

Recording is timed both ways Free-Evolve can do it: *during training* (the default: the last
10,000 samples of the round's epoch feed a recorder through ``FreeNet.activation_hook``; the
cost is the hook's own work, timed on the same batches) and as a *separate pass* in eval mode.
Epochs and rounds alternate ``--repeats`` times and medians are compared, so machine load hits
both alike. It prints the ratios round / epoch (target: <= 0.10), then one JSON line.

    python benchmarks/bench_evolve.py [--hidden 512] [--record-samples 10000] [--repeats 5]
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time

import torch

from ncg import NCG, FreeNet, presets
from ncg.datasets import mnist
from ncg.evolve.apply import apply_edits, rewire
from ncg.evolve.coactivation import CoactivationRecorder, record_coactivation
from ncg.evolve.loop import EvolveConfig, FreeEvolve
from ncg.train import train_epoch


def hook_recording_seconds(model: FreeNet, x: torch.Tensor, samples: int, batch_size: int = 256):
    """What recording during training adds to an epoch: the hook's work on ``samples`` samples.

    The training forward passes compute the activations anyway; the hook adds a reorder to
    neuron-id order and one recorder update per batch, timed here on the same batch shapes.
    """
    recorder = CoactivationRecorder(model)
    plan, _ = model.plan()
    batches = [model.neuron_activations(x[i:i + batch_size]).t()[plan.perm].contiguous()
               for i in range(0, samples, batch_size)]
    start = time.perf_counter()
    for h_positions in batches:
        recorder.update(h_positions[plan.position].t())
    return time.perf_counter() - start, recorder.result()


def evolve_round(evolve: FreeEvolve, x: torch.Tensor, y: torch.Tensor, samples: int, in_training: bool) -> dict[str, float]:
    """Record, propose and apply one round on ``evolve.model``; the seconds of each phase."""
    if in_training:
        recording, co = hook_recording_seconds(evolve.model, x, samples)
    else:
        start = time.perf_counter()
        co = record_coactivation(evolve.model, x, max_samples=samples)
        recording = time.perf_counter() - start
    recorded = time.perf_counter()
    edits = evolve.propose(co, (x, y))
    proposed = time.perf_counter()
    graph, maps = apply_edits(evolve.model.graph, edits, unreachable="ignore")
    rewire(evolve.model, graph, maps, evolve.optimizer)
    done = time.perf_counter()
    return {"record": recording, "propose": proposed - recorded, "apply": done - proposed,
            "total": recording + done - recorded, "edits": len(edits)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=presets.MAIN.neurons)
    p.add_argument("--record-samples", type=int, default=presets.MAIN.record_samples)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    data = mnist()
    x = torch.cat([data.train.tensors[0], data.val.tensors[0]])
    y = torch.cat([data.train.tensors[1], data.val.tensors[1]])
    model = FreeNet(NCG.complete(args.hidden + 10, num_outputs=10, seed=0), in_features=784, seed=0)
    config = EvolveConfig(record_samples=args.record_samples, **presets.COACTIVATION.config())
    evolve = FreeEvolve(model, config)
    edges = model.edge_index.shape[1]

    epochs: list[float] = []
    rounds: dict[str, list[dict]] = {"during training": [], "separate pass": []}
    for repeat in range(args.repeats):
        start = time.perf_counter()
        train_epoch(model, evolve.optimizer, x, y, batch_size=256, generator=torch.Generator().manual_seed(repeat))
        epochs.append(time.perf_counter() - start)
        for mode, runs in rounds.items():
            trial = FreeEvolve(copy.deepcopy(model), config)
            runs.append(evolve_round(trial, x, y, args.record_samples, in_training=mode == "during training"))
    epoch = statistics.median(epochs)

    print(f"complete DAG: {args.hidden} hidden + 10 outputs, {edges:,} edges; medians of {args.repeats} alternating runs")
    print(f"one epoch over {len(x):,} samples: {epoch:6.2f} s")
    result = {"epoch_seconds": round(epoch, 3)}
    for mode, runs in rounds.items():
        phase = {k: statistics.median(r[k] for r in runs) for k in ("record", "propose", "apply", "total")}
        ratio = phase["total"] / epoch
        print(f"one evolve round, recording {mode:<15}: {phase['total']:6.2f} s = {ratio:.3f} of an epoch"
              f"  (record {phase['record']:.2f} s, propose {phase['propose']:.2f} s, apply {phase['apply']:.2f} s,"
              f" {runs[-1]['edits']:,} edits)")
        key = "round_vs_epoch" if mode == "during training" else "round_vs_epoch_separate_pass"
        result[key] = round(ratio, 4)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
