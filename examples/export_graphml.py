"""Load a finished run, export its learned graph to GraphML, reopen it with networkx, analyse it.

    python examples/export_graphml.py runs/mnist-seed0
    python examples/export_graphml.py runs/mnist-seed0 --out learned.graphml

The GraphML file uses standard keys only, so Gephi, yEd, igraph and Cytoscape open it too. On the
reference machine (2-core AMD EPYC, AVX-512, both cores busy) the whole command took 3.6-3.9 s on a
``--quick`` run folder, most of it starting Python and importing torch.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import networkx as nx
import torch

from ncg import load_freenet
from ncg.io import read_graphml, write_graphml


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run folder holding model.pt (from examples/evolve_mnist.py)")
    p.add_argument("--out", default=None, help="GraphML path (default RUN_DIR/export.graphml)")
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    if not (run / "model.pt").is_file():
        raise SystemExit(f"{run / 'model.pt'} not found: pass a run folder written by examples/evolve_mnist.py")
    model, extra = load_freenet(run / "model.pt")
    out = Path(args.out) if args.out else run / "export.graphml"
    write_graphml(model, out)
    print(f"wrote {out}")

    g = nx.read_graphml(out)
    roles = Counter(nx.get_node_attributes(g, "role").values())
    weights = [abs(w) for w in nx.get_edge_attributes(g, "weight").values()]
    longest = nx.dag_longest_path(g, weight=None)
    in_degrees = [d for _, d in g.in_degree()]
    hubs = sorted(g.out_degree(), key=lambda kv: -kv[1])[:5]
    analysis = {
        "nodes": g.number_of_nodes(),
        "edges": g.number_of_edges(),
        "roles": dict(roles),
        "is_dag": nx.is_directed_acyclic_graph(g),
        "longest_path_edges": len(longest) - 1,
        "generations": sum(1 for _ in nx.topological_generations(g)),
        "mean_in_degree": sum(in_degrees) / max(1, len(in_degrees)),
        "mean_abs_weight": sum(weights) / max(1, len(weights)),
        "top_out_degree": hubs,
    }
    for key, value in analysis.items():
        print(f"{key:>20}: {value}")

    reloaded = read_graphml(out)
    x = torch.rand(4, model.in_features)
    same = torch.equal(reloaded(x), model(x))
    print(f"re-imported model gives identical outputs: {same}")
    analysis["identical_outputs"] = same
    return analysis


if __name__ == "__main__":
    main(sys.argv[1:])
