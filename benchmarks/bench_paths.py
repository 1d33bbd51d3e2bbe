"""The evaluator's fast paths, side by side on the main job's own nets.

Runs the main job (``examples/evolve_mnist.py --no-figures``, into a temporary folder) keeping a
copy of the network after each round's edits, the network the next round trains, then times
with ``common.interleaved_medians`` at one torch thread (``--threads``), batch 256, on real
MNIST samples:

1. **one call against the blocked evaluator**: a training step (forward, cross-entropy,
   backward, ``ncg.train.adam``) of each round's all-sparse net on the one-call path
   (``ncg.kernels.sparse.graph_train_forward``) and on the blocked path (``FreeNet.path =
   "blocked"``), the same net and plan; and the same step while an activation hook records firing rates (the last
   epoch of a round, ``CoactivationRecorder(pairs=False)``), on each path;
2. **``DENSE_MIN_SHARE``**: the step of each round's net with its plan built under the default
   share and without it (``evaluator="density"``: every block dense that its density makes dense);
3. **inference** of the learned net at batch 256 and 10,000 against MLP 784-512-10 alone (no
   other model interleaved, unlike ``bench_learned.py``).

Prints one table and, as its last line, JSON whose keys name the rows.

    python benchmarks/bench_paths.py                 # the main job, then every row (~2 min)
    python benchmarks/bench_paths.py --threads 2     # the same at two threads
    python benchmarks/bench_paths.py --quick         # a --quick main job, 2 repeats (smoke test)
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
import evolve_mnist  # noqa: E402
from common import interleaved_medians, machine  # noqa: E402

from ncg import FreeNet  # noqa: E402
from ncg.datasets import mnist  # noqa: E402
from ncg.evolve import CoactivationRecorder, FreeEvolve, RoundRecord  # noqa: E402
from ncg.train import adam  # noqa: E402


def main_job_nets(quick: bool) -> list[FreeNet]:
    """The main job's network after each round's edits (the first is what round 2 trains)."""
    nets: list[FreeNet] = []

    def keep(evolve: FreeEvolve, record: RoundRecord) -> None:
        nets.append(copy.deepcopy(evolve.model))

    with tempfile.TemporaryDirectory() as out:
        evolve_mnist.main(["--no-figures", "--device", "cpu", "--out", out, *(["--quick"] if quick else [])],
                          callbacks=[keep])
    return nets[:-1]  # the last one is the fine-tuned copy of the one before


def step(net: FreeNet, x: torch.Tensor, y: torch.Tensor, one_call: bool, hook: bool) -> Callable[[], None]:
    """One training step of ``net`` on its one-call path or on the blocked evaluator, with or
    without a firing-rate recorder as its activation hook."""
    optimizer = adam(net.parameters(), lr=1e-3)
    net.path = "auto" if one_call else "blocked"
    recorder = CoactivationRecorder(net, pairs=False) if hook else None

    def run() -> None:
        net.activation_hook = recorder.update if recorder else None
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()
        net.activation_hook = None

    return run


def without_share(net: FreeNet) -> FreeNet:
    """A copy of ``net`` whose blocks are chosen by their density alone, without ``DENSE_MIN_SHARE``."""
    twin = copy.deepcopy(net)
    twin.evaluator = "density"
    return twin


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=15, help="interleaved repeats per row (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="a --quick main job and 2 repeats: a smoke test")
    args = p.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    nets = main_job_nets(args.quick)
    torch.set_num_threads(args.threads)
    data = mnist()
    x, y = data.train.tensors[0][:256].flatten(1).float(), data.train.tensors[1][:256]
    info = machine()
    print(f"{info['cpu']} ({info['isa']}), {info['cores']} cores, torch {torch.__version__} at {args.threads} "
          f"thread(s), load average {info['load']:.1f}; medians of {repeats} interleaved repeats, batch 256\n")
    print("| net (trains in round) | edges | dense blocks | step, one call ms | step, blocked ms | ratio | "
          "recording step, one call ms | recording step, blocked ms | ratio | step, no share rule ms | ratio to default |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    result: dict[str, float] = {}
    for k, net in enumerate(nets, start=2):
        bare = without_share(net)
        calls = {"one": step(net, x, y, True, False), "blocked": step(copy.deepcopy(net), x, y, False, False),
                 "rec_one": step(copy.deepcopy(net), x, y, True, True),
                 "rec_blocked": step(copy.deepcopy(net), x, y, False, True),
                 "share0": step(bare, x, y, True, False)}
        t = {name: 1e3 * s for name, s in interleaved_medians(calls, repeats).items()}
        dense = bare.execution_plan().dense_blocks
        print(f"| round {k} | {net.weight.numel():,} | {dense} without the share rule, "
              f"{net.execution_plan().dense_blocks} by default | {t['one']:.2f} | {t['blocked']:.2f} | "
              f"{t['one'] / t['blocked']:.2f} | {t['rec_one']:.2f} | {t['rec_blocked']:.2f} | "
              f"{t['rec_one'] / t['rec_blocked']:.2f} | {t['share0']:.2f} | {t['share0'] / t['one']:.2f} |")
        result.update({f"round{k}_{name}_ms": round(value, 3) for name, value in t.items()})
    learned = nets[-1].eval()
    mlp = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)).eval()
    test = data.test.tensors[0].flatten(1).float()
    print("\n| inference | FreeNet ms | MLP 784-512-10 ms | ratio |\n|---|---:|---:|---:|")
    with torch.inference_mode():
        for batch in (256, 10_000):
            xb = test[:batch].contiguous()
            t = interleaved_medians({"freenet": lambda: learned(xb), "mlp": lambda: mlp(xb)},
                                    repeats if batch == 256 else max(2, repeats // 3))
            print(f"| batch {batch:,} | {1e3 * t['freenet']:.3f} | {1e3 * t['mlp']:.3f} | "
                  f"{t['freenet'] / t['mlp']:.2f} |")
            result[f"infer_b{batch}_vs_mlp512"] = round(t["freenet"] / t["mlp"], 4)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
