"""Training-step time of FreeNets against a parameter-matched MLP, side by side in one run.

(a) FreeNet on a complete DAG of 512 hidden neurons (+10 output neurons), (b) a one-hidden-layer
MLP with the same number of parameters, (c) FreeNet on a random DAG keeping 10% of (a)'s edges,
and for scale (d) the straightforward per-neuron loop over (a)'s parameters (timed separately,
fewer repeats: it is slow).
A step is forward + backward + Adam update, batch 256, 784 inputs, 10 outputs, on the CPU; the
three are timed round-robin and the median step of each is reported.
The targets are (a) <= 3x and (c) <= 2x the MLP's step. (c) keeps (a)'s dense 784 x 522 encoder,
so its step holds a GEMM as large as the MLP's first layer plus the sparse graph pass.
The last line is JSON: ``{"complete_vs_mlp": a/b, "sparse10_vs_mlp": c/b}``.

    python benchmarks/bench_forward.py [--hidden 512] [--batch 256] [--repeats 20]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved_medians  # noqa: E402

from ncg import NCG, FreeNet, presets  # noqa: E402
from ncg.kernels.sweep import backend  # noqa: E402


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, make_optimizer=torch.optim.Adam):
    """A closure running one forward + backward + optimiser step (``make_optimizer(params,
    lr=1e-3)``, torch's Adam by default)."""
    optimizer = make_optimizer(model.parameters(), lr=1e-3)

    def step() -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


class PerNeuronLoop(nn.Module):
    """The straightforward evaluation of (a)'s complete DAG: one neuron at a time, autograd
    recording every step. Shares (a)'s parameters; only here to show what the blocked evaluator
    avoids. Each neuron's activation is pushed into the pre-activations of the later neurons at
    once (one rank-1 update of the shrinking rest), so no step copies the earlier activations."""

    def __init__(self, net: FreeNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        n, k = net.num_neurons, net.graph_num_outputs
        rest = x @ net.encoder.weight.t() + net.bias  # [B, N]: pre-activations of the neurons not yet computed
        w = torch.zeros(n, n).index_put((net.edge_index[0], net.edge_index[1]), net.weight)
        outputs: list[torch.Tensor] = []
        for j in range(n):
            z = rest[:, 0]
            h = z if j >= n - k else torch.relu(z)
            if j >= n - k:
                outputs.append(h)
            rest = rest[:, 1:] + h.unsqueeze(1) * w[j, j + 1:]
        return torch.stack(outputs, 1)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=presets.MAIN.neurons)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--loop-repeats", type=int, default=3, help="repeats for the slow per-neuron loop (0 skips it)")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    inputs, classes = 784, 10
    x, y = torch.randn(args.batch, inputs), torch.randint(0, classes, (args.batch,))
    n = args.hidden + classes
    complete = FreeNet(NCG.complete(n, num_outputs=classes, seed=0), in_features=inputs, block_size=args.block_size)
    target = count_parameters(complete)
    width = round((target - classes) / (inputs + 1 + classes))
    mlp = nn.Sequential(nn.Linear(inputs, width), nn.ReLU(), nn.Linear(width, classes))
    sparse_graph = NCG.random_dag(n, density=0.1, num_outputs=classes, seed=0)
    sparse = FreeNet(sparse_graph, in_features=inputs, block_size=args.block_size)

    models = {"(a) FreeNet complete DAG": complete, "(b) MLP, parameter-matched": mlp, "(c) FreeNet random DAG 10%": sparse}
    medians = interleaved_medians({name: training_step(m, x, y) for name, m in models.items()}, repeats=args.repeats)
    rows = [(name, count_parameters(m), medians[name]) for name, m in models.items()]
    a, b, c = (t for _, _, t in rows)
    if args.loop_repeats:
        loop = PerNeuronLoop(complete)
        torch.testing.assert_close(loop(x), complete(x), atol=1e-3, rtol=1e-3)
        seconds = interleaved_medians({"loop": training_step(loop, x, y)}, repeats=args.loop_repeats, warmup=1)
        rows.append(("(d) per-neuron loop over (a)", count_parameters(loop), seconds["loop"]))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, sweep backend: {backend()}")
    print(f"batch {args.batch}, {inputs} inputs, {classes} outputs, {args.hidden} hidden neurons, MLP width {width}")
    print(f"{'model':<30} {'parameters':>11} {'step ms':>9} {'vs MLP':>7}")
    for name, params, t in rows:
        print(f"{name:<30} {params:>11,} {t * 1e3:>9.2f} {t / b:>7.2f}")
    result = {"complete_vs_mlp": round(a / b, 3), "sparse10_vs_mlp": round(c / b, 3)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
