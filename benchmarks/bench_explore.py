"""Time the explorer page (viz.explore) in headless Chromium, against its targets.

Two graphs: the main job's net (``--run RUN_DIR`` reads a run folder of ``examples/evolve_mnist.py``,
1,291 nodes and 39,478 edges; without it, ``sparse_start(784, 497, 10, fan_in=77)`` of the same
size stands in), and the 100k-neuron / 1M-edge graph of ``bench_scale.py``
(``layered_start(784, 100_000, 10, depth=8, fan_in=10)``). For each: the seconds Python takes to
build the page's data and write the file, the file's bytes per edge, and, measured in the page
with ``performance.now()`` (viz.browser): the first frame (from the start of navigation), a full
frame, and the median pan and zoom frames of a mouse drag and wheel turns. The last line is JSON.

    python benchmarks/bench_explore.py --run /tmp/main-run   # the main job's own net, and the 1M graph
    python benchmarks/bench_explore.py --quick               # the stand-in net only
    python benchmarks/bench_explore.py --tiny                # a 200-edge graph: a smoke run
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

from ncg.build import layered_start, sparse_start  # noqa: E402
from viz.browser import browser_missing, chromium, interaction_ms, open_explorer  # noqa: E402
from viz.explore import _load, explorer_data, write_explorer  # noqa: E402

TARGETS = {  # row: (first frame ms, pan / zoom frame ms, bytes per edge)
    "main": (2000, 50, 60),
    "1m": (5000, None, 60),
    "tiny": (2000, 50, None),
}


def graphs(args: argparse.Namespace) -> dict[str, tuple]:
    """Per row: what to build the page of (a callable giving ``explorer_data`` arguments) and its name."""
    if args.tiny:
        return {"tiny": (lambda: (sparse_start(16, 20, 4, fan_in=8, seed=0), {"image_shape": (4, 4)}),
                         "sparse_start(16, 20, 4, fan_in=8)")}
    rows = {}
    if args.run:
        rows["main"] = (lambda: _load(args.run)[:2], f"run folder {args.run}")
    else:
        rows["main"] = (lambda: (sparse_start(784, 497, 10, fan_in=77, seed=0), {"image_shape": (28, 28)}),
                        "sparse_start(784, 497, 10, fan_in=77)")
    if not args.quick:
        rows["1m"] = (lambda: (layered_start(784, 100_000, 10, depth=8, fan_in=10, seed=0), {"image_shape": (28, 28)}),
                      "layered_start(784, 100_000, 10, depth=8, fan_in=10)")
    return rows


def measure(name: str, build, browser, folder: Path) -> dict:
    """One row: Python's seconds and the file's size, then the page's timings."""
    graph, kwargs = build()
    start = time.perf_counter()
    data = explorer_data(graph, **kwargs)
    built = time.perf_counter()
    page = write_explorer(data, folder / f"{name}.html")
    written = time.perf_counter()
    row = {"nodes": data.num_nodes, "edges": data.num_edges, "data_s": built - start, "write_s": written - built,
           "bytes_per_edge": page.stat().st_size / max(data.num_edges, 1)}
    with open_explorer(page, browser) as opened:
        stats = opened.settled()
        row.update(first_frame_ms=stats["firstFrameMs"], loaded_ms=stats["loadedMs"], full_frame_ms=stats["lastRedrawMs"],
                   drawn=stats["drawnEdges"], hidden=stats["hiddenEdges"], **interaction_ms(opened))
        row["console_errors"] = len(opened.errors)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="run folder of the main job (default: a stand-in net of its size)")
    parser.add_argument("--quick", action="store_true", help="the main job's net only, no 1M-edge graph")
    parser.add_argument("--tiny", action="store_true", help="one 200-edge graph (a smoke run)")
    args = parser.parse_args(argv)
    reason = browser_missing()
    if reason is not None:
        raise SystemExit(f"bench_explore needs a browser: {reason}")
    info = machine()
    print(f"{info['cpu']}, {info['cores']} cores, load {info['load']:.1f}, {info['date']}")
    results = {}
    with chromium() as browser, tempfile.TemporaryDirectory() as folder:
        for name, (build, what) in graphs(args).items():
            row = measure(name, build, browser, Path(folder))
            first, frame, size = TARGETS[name]
            print(f"\n{name}: {what}: {row['nodes']:,} nodes, {row['edges']:,} edges")
            print(f"  python: data {row['data_s']:.2f} s, write {row['write_s']:.2f} s, "
                  f"{row['bytes_per_edge']:.1f} bytes / edge" + (f" (target < {size}: {row['bytes_per_edge'] / size:.2f}x)" if size else ""))
            print(f"  page: loaded {row['loaded_ms']:.0f} ms, first frame {row['first_frame_ms']:.0f} ms "
                  f"(target <= {first}: {row['first_frame_ms'] / first:.2f}x), full frame {row['full_frame_ms']:.0f} ms "
                  f"({row['drawn']:,} edges drawn, {row['hidden']:,} hidden)")
            targets = f" (target <= {frame}: {row['pan_ms'] / frame:.2f}x, {row['zoom_ms'] / frame:.2f}x)" if frame else ""
            print(f"  pan frame {row['pan_ms']:.1f} ms, zoom frame {row['zoom_ms']:.1f} ms (medians){targets}; "
                  f"console errors {row['console_errors']}")
            results[name] = {key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()}
    results["machine"] = {key: info[key] for key in ("cpu", "cores", "load", "date")}
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
