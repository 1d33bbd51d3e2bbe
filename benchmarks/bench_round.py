"""Cost of one Free-Evolve round's topology work on a large sparse FreeNet, phase by phase.

Builds ``layered_start(784, H, 10, depth=8, fan_in=10)`` (H = 100,000 by default: about 1M edges),
then times what a round does besides training: proposing the edits (magnitude pruning of
``--fraction`` of the edges and as many regrown, candidates scored at random or by gradient on
``--samples`` samples, as SET and RigL do), applying them (:func:`ncg.evolve.apply.apply_edits`),
rewiring the model and its Adam state (after one step), recording the round in the history and serialising it.
Prints one line per grow score and a JSON line.

    python benchmarks/bench_round.py [--hidden 100000] [--fraction 0.1] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from ncg import FreeNet
from ncg.build import layered_start
from ncg.evolve.apply import apply_edits, rewire
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve


def one_round(hidden: int, grow_score: str, fraction: float, samples: int) -> dict:
    """Seconds of each phase of one round on a fresh model, and the number of edits."""
    graph = layered_start(784, hidden, 10, depth=8, fan_in=10, seed=0)
    model = FreeNet(graph, in_features=784, seed=0)
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(samples, 784, generator=generator), torch.randint(0, 10, (samples,), generator=generator)
    config = EvolveConfig(prune_score="magnitude", grow_score=grow_score, remove_dead=False, record_samples=samples,
                          budget=EditBudget(prune_fraction=fraction, regrow=True))
    evolve = FreeEvolve(model, config)
    evolve.history.append_graph(graph)
    torch.nn.functional.cross_entropy(model(x[:256]), y[:256]).backward()
    evolve.optimizer.step()  # so that rewiring carries real Adam moments
    times = {}
    start = time.perf_counter()
    edits = evolve.propose(None, (x, y))
    times["propose"] = time.perf_counter() - start
    start = time.perf_counter()
    new_graph, maps = apply_edits(model.graph, edits, unreachable="ignore")
    times["apply"] = time.perf_counter() - start
    start = time.perf_counter()
    rewire(model, new_graph, maps, evolve.optimizer)
    times["rewire"] = time.perf_counter() - start
    start = time.perf_counter()
    evolve.history.append_graph(new_graph, edits)
    saved = json.dumps(evolve.history.to_dict())
    times["history"] = time.perf_counter() - start
    return {**times, "edits": len(edits), "edges": graph.num_edges, "neurons": graph.num_neurons,
            "history_mib": len(saved) / 2**20}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=100_000)
    p.add_argument("--fraction", type=float, default=0.1, help="fraction of the edges pruned (and regrown)")
    p.add_argument("--samples", type=int, default=512, help="samples of the gradient grow score")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--grow", nargs="+", default=["random", "gradient"])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {}
    for grow in args.grow:
        row = one_round(args.hidden, grow, args.fraction, args.samples)
        print(f"{row['neurons']:,} neurons, {row['edges']:,} edges, {row['edits']:,} edits, grow {grow}: "
              f"propose {row['propose']:.2f} s, apply {row['apply']:.2f} s, rewire {row['rewire']:.2f} s, "
              f"history {row['history']:.2f} s ({row['history_mib']:.1f} MiB for 2 rounds)")
        result.update({f"{grow}_{k}_seconds": round(row[k], 3) for k in ("propose", "apply", "rewire", "history")})
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
