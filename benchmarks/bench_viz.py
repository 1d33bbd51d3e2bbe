"""Time draw_topology on a large graph: 2,000 neurons and 100,000 edges, to PNG.

Run ``python benchmarks/bench_viz.py``. Builds ``NCG.random_dag(NEURONS, num_edges=EDGES)``, then
times the layout and drawing (``max_edges`` strongest edges drawn) and the PNG write, and prints
the median seconds over ``--repeats`` runs. The target is well under a minute.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ncg import NCG
from viz import draw_topology

NEURONS = 2000
EDGES = 100_000
NUM_OUTPUTS = 10
MAX_EDGES = 5000
REPEATS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=NEURONS)
    parser.add_argument("--edges", type=int, default=EDGES)
    parser.add_argument("--max-edges", type=int, default=MAX_EDGES, help="edges drawn; 0 draws all")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    graph = NCG.random_dag(args.neurons, num_edges=args.edges, num_outputs=NUM_OUTPUTS, seed=0)
    samples = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "topology.png"
        for _ in range(args.repeats):
            start = time.perf_counter()
            draw_topology(graph, path, max_edges=args.max_edges or None)
            samples.append(time.perf_counter() - start)
        size_kb = path.stat().st_size / 1024
    drawn = "all" if not args.max_edges else f"{min(args.max_edges, args.edges):,}"
    print(f"draw_topology: {args.neurons:,} neurons, {args.edges:,} edges ({drawn} drawn) -> PNG "
          f"({size_kb:.0f} KiB): median {statistics.median(samples):.2f} s over {args.repeats} runs")


if __name__ == "__main__":
    main()
