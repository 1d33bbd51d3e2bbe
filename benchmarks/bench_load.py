"""The whole main job beside a busy neighbour: default threads against one thread.

Runs ``examples/evolve_mnist.py --no-figures --device cpu`` (start to exit, as a user times it)
as a fresh process for each setting, on an idle machine and while one other process spins pinned
to the first CPU: ``--threads auto`` (the default), ``--threads 1`` and ``--threads N`` with N
torch's default thread count here (every step on all of torch's threads, whatever the load). The settings are interleaved within each repeat; medians of wall seconds. The
target: under load, the default is at most 1.5x one thread.

    python benchmarks/bench_load.py                 # 6 main jobs of 20-90 s per repeat
    python benchmarks/bench_load.py --repeats 3 --doc docs/benchmarks.md
    python benchmarks/bench_load.py --tiny          # smoke test: --quick main jobs
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import busy_process, machine  # noqa: E402

from ncg.experiments.report import write_marked_section  # noqa: E402

MAIN_JOB = Path(__file__).resolve().parent.parent / "examples" / "evolve_mnist.py"
TARGET = 1.5
"""Under load, the whole main job with default threads over its one-thread time: at most this."""
CONDITIONS = ("idle", "load")


def settings() -> dict[str, str]:
    """The ``--threads`` value of each setting, by label."""
    pinned = torch.get_num_threads()
    return {"auto": "auto", "1": "1", f"{pinned} (pinned)": str(pinned)}


def run_main_job(threads: str, out: Path, extra: list[str]) -> tuple[float, dict]:
    """Wall seconds of one main job as a fresh process, and its summary."""
    command = [sys.executable, str(MAIN_JOB), "--no-figures", "--device", "cpu", "--overwrite", "--out", str(out),
               "--threads", threads, *extra]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return seconds, json.loads((out / "summary.json").read_text())


def measure(repeats: int, extra: list[str], folder: Path) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """Wall seconds of each setting under each condition, ``repeats`` times interleaved, and the
    test accuracy of every run."""
    cpu = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    times: dict[str, dict[str, list[float]]] = {condition: {} for condition in CONDITIONS}
    accuracy: list[float] = []
    for _ in range(repeats):
        for condition in CONDITIONS:
            with busy_process(cpu) if condition == "load" else contextlib.nullcontext():
                for label, threads in settings().items():
                    seconds, summary = run_main_job(threads, folder / "run", extra)
                    times[condition].setdefault(label, []).append(seconds)
                    accuracy.append(float(summary["test_accuracy"]))
    return times, accuracy


def summarise(times: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """Median seconds of each setting and condition, and each setting over one thread."""
    result: dict[str, float] = {}
    for condition in CONDITIONS:
        one = median(times[condition]["1"])
        for label, values in times[condition].items():
            key = label.split()[0]
            result[f"{condition}_{key}_seconds"] = median(values)
            result[f"{condition}_{key}_vs_1t"] = median(values) / one
    return result


def render(argv: list[str], info: dict, times: dict, accuracy: list[float], result: dict[str, float]) -> str:
    labels = list(settings())
    repeats = len(times["idle"][labels[0]])
    lines = [
        f"Command: `python benchmarks/bench_load.py{' ' + ' '.join(argv) if argv else ''}`. {info['cpu']} "
        f"({info['isa']}), {info['cores']} cores, torch {info['torch']}, load average {info['load']:.1f} at the "
        "start. The whole main job (`examples/evolve_mnist.py --no-figures --device cpu`, start to exit) as a fresh "
        f"process per run; medians of {repeats} interleaved repeat{'s' * (repeats > 1)}; under load, one other "
        "process spins pinned to the first CPU.",
        "",
        "| condition | " + " | ".join(f"`--threads {label}` s" for label in labels)
        + " | " + " | ".join(f"{label} / 1 thread" for label in labels if label != "1") + " |",
        "|---|" + "---:|" * (2 * len(labels) - 1),
    ]
    for condition in CONDITIONS:
        seconds = [f"{result[f'{condition}_{label.split()[0]}_seconds']:.1f}" for label in labels]
        ratios = [f"{result[f'{condition}_{label.split()[0]}_vs_1t']:.2f}" for label in labels if label != "1"]
        lines.append(f"| {condition} | " + " | ".join(seconds + ratios) + " |")
    value = result["load_auto_vs_1t"]
    lines += ["", f"Target: under load, `--threads auto` / `--threads 1` <= {TARGET}: **{value:.2f}** "
              f"({'met' if value <= TARGET else 'missed'}). Test accuracy of the runs: "
              f"{min(accuracy):.4f}-{max(accuracy):.4f}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=1, help="interleaved repeats (default: %(default)s)")
    p.add_argument("--tiny", action="store_true", help="smoke test: --quick main jobs")
    p.add_argument("--doc", type=Path, default=None, help="page whose bench_load section receives the table")
    args = p.parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    info = machine()
    with tempfile.TemporaryDirectory() as tmp:
        times, accuracy = measure(args.repeats, ["--quick"] if args.tiny else [], Path(tmp))
    result = summarise(times)
    body = render(argv, info, times, accuracy, result)
    print(body)
    if args.doc is not None:
        write_marked_section(args.doc, "bench_load", body, heading="## The whole main job beside a busy neighbour",
                             new_page="# Benchmarks\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
