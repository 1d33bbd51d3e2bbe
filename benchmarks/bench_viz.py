"""Time draw_topology on a large graph, to PNG, and its peak memory.

Run ``python benchmarks/bench_viz.py`` for ``NCG.random_dag(--neurons, num_edges=--edges)`` (2,000
neurons, 100,000 edges), or ``python benchmarks/bench_viz.py --layered 1000000`` for
``ncg.build.layered_start(784, 1_000_000, 10, depth=8, fan_in=10)``: a million hidden neurons and
ten million edges, drawn from a fixed sample of ``--max-neurons`` neurons. Prints the build time,
the median seconds of the figure over ``--repeats`` runs, the resident memory (Linux) before
drawing (the graph), at its peak while drawing (reset after the build) and at its peak over the
whole run, and the figure's caption. The target is well under a minute and a few GiB.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ncg import NCG
from ncg.build import layered_start
from viz import draw_topology

NEURONS = 2000
EDGES = 100_000
NUM_OUTPUTS = 10
MAX_EDGES = 5000
MAX_NEURONS = 3000
REPEATS = 3
LAYERED = {"num_inputs": 784, "num_outputs": NUM_OUTPUTS, "depth": 8, "fan_in": 10}
"""layered_start arguments besides the hidden neuron count: MNIST-sized inputs, ten outputs."""


def memory_gib(field: str) -> float | None:
    """``VmRSS`` (now) or ``VmHWM`` (peak) resident memory of this process in GiB; None off Linux."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    line = next(line for line in status.read_text().splitlines() if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 2**20  # kB


def reset_peak() -> None:
    """Restart the ``VmHWM`` peak at the current resident size (Linux; ignored elsewhere)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def gib(value: float | None) -> str:
    """``value`` GiB, two decimals, or ``n/a``."""
    return "n/a" if value is None else f"{value:.2f} GiB"


def build_graph(args: argparse.Namespace) -> tuple[NCG, str]:
    """The benchmark graph and the words naming how it was built."""
    if args.layered:
        return layered_start(num_hidden=args.layered, seed=0, **LAYERED), "layered_start"
    return NCG.random_dag(args.neurons, num_edges=args.edges, num_outputs=NUM_OUTPUTS, seed=0), "random_dag"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=NEURONS, help="random_dag neurons")
    parser.add_argument("--edges", type=int, default=EDGES, help="random_dag edges")
    parser.add_argument("--layered", type=int, default=0, metavar="N",
                        help="use layered_start with N hidden neurons instead of random_dag")
    parser.add_argument("--max-edges", type=int, default=MAX_EDGES, help="edges drawn; 0 draws all")
    parser.add_argument("--max-neurons", type=int, default=MAX_NEURONS, help="neurons drawn; 0 draws all")
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    start = time.perf_counter()
    graph, kind = build_graph(args)
    build_seconds, build_peak, before = time.perf_counter() - start, memory_gib("VmHWM"), memory_gib("VmRSS")
    reset_peak()
    samples = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "topology.png"
        for _ in range(args.repeats):
            start = time.perf_counter()
            fig = draw_topology(graph, path, max_edges=args.max_edges or None, max_neurons=args.max_neurons or None)
            samples.append(time.perf_counter() - start)
        size_kb = path.stat().st_size / 1024
    drawing = memory_gib("VmHWM")
    overall = None if drawing is None else max(build_peak, drawing)
    print(f"draw_topology: {graph.num_neurons:,} neurons, {graph.num_edges:,} edges ({kind}, built in "
          f"{build_seconds:.1f} s) -> PNG ({size_kb:.0f} KiB): median {statistics.median(samples):.2f} s over "
          f"{args.repeats} runs")
    print(f"RSS: {gib(before)} before drawing (the graph), peak {gib(drawing)} while drawing, "
          f"peak {gib(overall)} over the run")
    print("caption: " + " | ".join(fig.axes[0].get_title().splitlines()[1:]))


if __name__ == "__main__":
    main()
