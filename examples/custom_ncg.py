"""Build an NCG by hand, train it on the bundled 8x8 digits, and inspect it.

The graph below is a small hand-made DAG: two "feature" neurons feed a chain that skips
generations, and every hidden neuron feeds the ten outputs. It shows the three things a user does
in code: construct (``NCG``), wrap (``FreeNet``) and inspect (generations, plan, summary).

    python examples/custom_ncg.py            # 30 epochs, test accuracy 0.985
    python examples/custom_ncg.py --quick    # smoke run used by the tests

Measured with ``OMP_NUM_THREADS=1`` on a 2-core AMD EPYC (torch 2.13 CPU, other jobs running):
4.9-7.2 s wall for the whole command over five runs, 2-4 s of it starting Python and importing
torch; ``--quick`` takes about 3 s.
"""
from __future__ import annotations

import argparse
import sys

import torch

from ncg import NCG, FreeNet
from ncg.datasets import digits
from ncg.io import summary, to_networkx
from ncg.schedule import topological_generations
from ncg.train import evaluate, train_epoch


def build_graph(num_hidden: int = 24, num_outputs: int = 10) -> NCG:
    """Hidden neuron ``k`` feeds hidden ``k+1`` and ``k+3`` (skip connections); all hidden feed all outputs."""
    edges = []
    for k in range(num_hidden):
        edges += [(k, j) for j in (k + 1, k + 3) if j < num_hidden]
        edges += [(k, num_hidden + o) for o in range(num_outputs)]
    edge_index = torch.tensor(edges, dtype=torch.long).t()
    outputs = torch.arange(num_hidden, num_hidden + num_outputs)
    return NCG(edge_index, num_hidden + num_outputs, outputs)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch order (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="two epochs: a smoke run")
    args = p.parse_args(argv)
    epochs = 2 if args.quick else args.epochs
    torch.manual_seed(args.seed)

    graph = build_graph()
    print(graph)
    generations = topological_generations(graph.edge_index, graph.num_neurons)
    print("generation of each neuron:", generations.tolist())

    data = digits()
    net = FreeNet(graph, in_features=data.num_features, activation="relu", seed=args.seed)
    plan, _ = net.plan()
    print(f"{net}\nplan: {plan.num_generations} generations in {len(plan.blocks)} blocks {[b[:2] for b in plan.blocks]}")

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(epochs):
        stats = train_epoch(net, optimizer, *data.train.tensors, batch_size=64, generator=generator)
        if epoch % 10 == 9 or epoch == epochs - 1:
            val = evaluate(net, *data.val.tensors)
            print(f"epoch {epoch + 1:3d}  train loss {stats['loss']:.3f}  val accuracy {val['accuracy']:.3f}")
    test = evaluate(net, *data.test.tensors)

    info = summary(net)
    g = to_networkx(net.graph)
    strongest = max(g.edges(data=True), key=lambda e: abs(e[2]["weight"]))
    print(f"test accuracy {test['accuracy']:.3f}")
    print(f"summary: {info}")
    print("  graph_parameters: edges + one bias per neuron (the graph's numbers); parameters: PyTorch's count, "
          "which adds the dense encoder's neurons x in_features weights (ncg.io.summary)")
    print(f"strongest edge: {strongest[0]} -> {strongest[1]} (w = {strongest[2]['weight']:+.3f})")
    return {"test_accuracy": test["accuracy"], **info}


if __name__ == "__main__":
    main(sys.argv[1:])
