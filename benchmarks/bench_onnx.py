"""The main job's learned FreeNet in ONNX Runtime, against MLP 784-512-10 exported the same way.

The net is the one ``examples/evolve_mnist.py`` trains: ``--run DIR`` loads ``DIR/model.pt``;
otherwise this script runs the main job first (``--no-figures --device cpu`` into a temporary
folder, 1-2 minutes; ``--tiny``: its ``--quick`` mode with 16 neurons, seconds). Timed, on one
thread (onnxruntime's ``intra_op_num_threads=1``, torch's ``set_num_threads(1)``), at batch 1,
256 and 10,000 of MNIST test images:

- ``freenet``: the net written by ``ncg.io.export_onnx``, in onnxruntime;
- ``slab``: the net's ``ncg.io.export.to_module`` (the ``torch.export`` layout: dense slabs over
  all earlier neurons) written with the same exporter and settings, in onnxruntime;
- ``mlp``: MLP 784-512-10 (random weights) written with the same exporter and settings, in
  onnxruntime: the reference of the ratios;
- ``mlp_torch``: that MLP in PyTorch.

Both FreeNet files are checked against the net's own outputs first. Each repeat times every
candidate in turn (round-robin, after warm-up; at batch 1 and 256 the mean of a burst of calls
after one untimed call, see ``BURSTS``); medians. The table goes to stdout with the CPU's name;
the last line is JSON.

    python benchmarks/bench_onnx.py --run /path/to/run     # the learned net of a run folder
    python benchmarks/bench_onnx.py                        # trains the main job first
    python benchmarks/bench_onnx.py --tiny                 # smoke test: a --quick main job
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import warnings
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved_medians, machine  # noqa: E402

from ncg import FreeNet, load_freenet  # noqa: E402
from ncg.datasets import mnist  # noqa: E402
from ncg.io import export_onnx, to_module  # noqa: E402

MAIN_JOB = Path(__file__).resolve().parent.parent / "examples" / "evolve_mnist.py"
TINY_MAIN_JOB = ["--quick", "--neurons", "16"]
BATCHES = (1, 256, 10_000)
BURSTS = {1: 20, 256: 3}
"""Consecutive calls timed together (after one untimed call) per batch size: a call at batch 1
takes tens of microseconds, and one call after the other candidates ran would time cold caches."""
OPSET = 17
TOLERANCE = 1e-4
"""Largest difference allowed between a FreeNet file's outputs and the net's."""

Call = Callable[[np.ndarray], object]


def run_main_job(out: Path, tiny: bool) -> None:
    """``examples/evolve_mnist.py`` into ``out`` in a process of its own; its prints go to stderr."""
    command = [sys.executable, str(MAIN_JOB), "--no-figures", "--device", "cpu", "--out", str(out)]
    done = subprocess.run(command + (TINY_MAIN_JOB if tiny else []), capture_output=True, text=True)
    sys.stderr.write(done.stdout + done.stderr)
    done.check_returncode()


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)).eval()


def export_module(module: nn.Module, path: Path) -> Path:
    """``module`` written as ``export_onnx`` writes its module: the TorchScript exporter, opset
    17, dynamic batch, no constant folding."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(2, 784),), str(path), dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                          opset_version=OPSET, do_constant_folding=False)
    return path


def session(path: Path) -> Call:
    """One onnxruntime session on one thread."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    run = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run
    return lambda x: run(None, {"x": x})[0]


def candidates(net: FreeNet, folder: Path) -> tuple[dict[str, Call], dict[str, int]]:
    """The calls to time, and the files' sizes in bytes."""
    files = {"freenet": export_onnx(net, folder / "freenet.onnx"),
             "slab": export_module(to_module(net), folder / "slab.onnx"),
             "mlp": export_module(mlp(), folder / "mlp.onnx")}
    calls = {name: session(path) for name, path in files.items()}
    reference = mlp()

    def mlp_torch(x: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return reference(torch.from_numpy(x))

    calls["mlp_torch"] = mlp_torch
    return calls, {name: path.stat().st_size for name, path in files.items()}


def check(net: FreeNet, calls: dict[str, Call], x: np.ndarray) -> float:
    """The largest difference of the FreeNet files' outputs from the net's on ``x``."""
    with torch.inference_mode():
        expected = net(torch.from_numpy(x)).numpy()
    worst = max(float(np.abs(calls[name](x) - expected).max()) for name in ("freenet", "slab"))
    if not worst <= TOLERANCE:
        raise AssertionError(f"an exported FreeNet differs from the net by {worst:.3g} (> {TOLERANCE})")
    return worst


def render(info: dict, source: str, net: FreeNet, sizes: dict[str, int], medians: dict[int, dict[str, float]],
           worst: float) -> str:
    edges = net.edge_index.shape[1]
    lines = [
        f"Learned FreeNet ({source}: {edges:,} edges) in onnxruntime against MLP 784-512-10 exported the same way; "
        f"one thread; {info['cpu']} ({info['isa']}), torch {info['torch']}, load average {info['load']:.1f}. "
        f"Files: FreeNet {sizes['freenet'] / edges:.1f} bytes per edge, slab form {sizes['slab'] / edges:.1f}; "
        f"largest difference from the net {worst:.1e}.",
        "",
        "| batch | FreeNet (ms) | slab form (ms) | MLP onnx (ms) | MLP torch (ms) | FreeNet / MLP onnx | slab / MLP onnx |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch, m in medians.items():
        lines.append(f"| {batch:,} | {m['freenet'] * 1e3:.3f} | {m['slab'] * 1e3:.3f} | {m['mlp'] * 1e3:.3f} | "
                     f"{m['mlp_torch'] * 1e3:.3f} | **{m['freenet'] / m['mlp']:.2f}** | {m['slab'] / m['mlp']:.2f} |")
    return "\n".join(lines)


def summarise(info: dict, net: FreeNet, sizes: dict[str, int], medians: dict[int, dict[str, float]]) -> dict:
    result: dict = {"cpu": info["cpu"], "edges": net.edge_index.shape[1],
                    "freenet_bytes_per_edge": sizes["freenet"] / net.edge_index.shape[1]}
    for batch, m in medians.items():
        for name, seconds in m.items():
            result[f"{name}_b{batch}_ms"] = seconds * 1e3
        result[f"freenet_vs_mlp_onnx_b{batch}"] = m["freenet"] / m["mlp"]
        result[f"slab_vs_mlp_onnx_b{batch}"] = m["slab"] / m["mlp"]
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=None, help="run folder of examples/evolve_mnist.py holding model.pt")
    p.add_argument("--tiny", action="store_true", help="smoke test: a --quick main job with 16 neurons, 1 repeat")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 15, tiny 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per candidate first (default 3, tiny 1)")
    args = p.parse_args(argv)
    repeats = args.repeats or (1 if args.tiny else 15)
    warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    test_x = mnist().test.tensors[0].flatten(1).numpy().astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.run is None:
            run_main_job(folder / "run", args.tiny)
        torch.set_num_threads(1)
        info = machine()
        net, _ = load_freenet((args.run or folder / "run") / "model.pt")
        net.eval()
        calls, sizes = candidates(net, folder)
        worst = check(net, calls, test_x[:1000])
        medians = {}
        for batch in BATCHES:
            x = np.ascontiguousarray(test_x[:batch])
            medians[batch] = interleaved_medians({name: partial(call, x) for name, call in calls.items()}, repeats,
                                                 warmup, burst=BURSTS.get(batch, 1))
    source = f"`{args.run}/model.pt`" if args.run else "the main job run by this benchmark"
    print(render(info, source, net, sizes, medians, worst))
    result = summarise(info, net, sizes, medians)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
