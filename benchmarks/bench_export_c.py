"""What the C export of a learned FreeNet costs per call, against MLP 784-512-10 in PyTorch.

The net is exported with :func:`ncg.io.export_c`, compiled into a shared library with the system C
compiler (``cc``, else ``gcc``) once per flag set (``-O3``, and ``-O3 -march=native``: vectors as
wide as this CPU has), checked against the FreeNet's outputs, and called through ctypes. Side by
side in the same run, round-robin after warm-up: MLP 784-512-10 (the accuracy the main job's net
matches) and the FreeNet itself, both under ``torch.inference_mode`` with one torch thread.
Batch 1 (``<name>_forward``) is the mean of a warm burst of calls (``--burst``, after one untimed
call: weights in the caches, as in a serving loop); batch 256 (``<name>_forward_batch``) the mean of
a shorter burst; each reported time is the median over ``--repeats`` such bursts. The ctypes call
(about a microsecond) counts against the C export, as torch's dispatch counts against the MLP.
Real MNIST test images (random ones with ``--tiny``). Target: the C export at batch 1 at most
:data:`TARGET` x the MLP's time.

The net: ``--run DIR`` loads ``DIR/model.pt`` (the main job's run folder, written by
``examples/evolve_mnist.py``); otherwise a sparse start of about the main job's learned size
(784 inputs, 500 hidden neurons, 10 outputs, fan-in 78: 39,780 edges), untrained (the time
follows the edges and neurons, not the weights). The table goes to stdout; the last line is JSON.

    python benchmarks/bench_export_c.py --run runs/mnist-seed0     # the main job's learned net
    python benchmarks/bench_export_c.py                            # a sparse start of ~40k edges
    python benchmarks/bench_export_c.py --tiny                     # smoke test, a few seconds
"""
from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import interleaved_medians, machine  # noqa: E402

from ncg import FreeNet, load_freenet  # noqa: E402
from ncg.build import sparse_start  # noqa: E402
from ncg.datasets import mnist  # noqa: E402
from ncg.io import export_c, summary  # noqa: E402

INPUTS, CLASSES = 784, 10
BATCHES = (1, 256)
FLAG_SETS = {"c_o3": ["-O3"], "c_o3_native": ["-O3", "-march=native"]}
"""Row name: the optimisation flags of one compiled library (besides ``-std=c99 -shared -fPIC``)."""
BASELINE = "mlp512"
TARGET = 0.5
"""The C export at batch 1 may take at most this many times MLP 784-512-10's time in PyTorch."""
NAME = "net"
"""The C prefix of the exported functions."""
FLOATS = ctypes.POINTER(ctypes.c_float)


def compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc")


def compiler_version(cc: str) -> str:
    done = subprocess.run([cc, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else cc


def learned_net(run: Path | None, tiny: bool) -> tuple[FreeNet, str]:
    """The net to export and its description."""
    if run is not None:
        net, _ = load_freenet(run / "model.pt")
        return net.eval(), f"`{run}/model.pt`"
    hidden, fan_in = (16, 8) if tiny else (500, 78)
    graph = sparse_start(INPUTS, hidden, CLASSES, fan_in=fan_in, seed=0)
    return FreeNet(graph, in_features=INPUTS, seed=0).eval(), f"sparse start (784, {hidden}, 10, fan-in {fan_in})"


class CompiledNet:
    """The exported net as a shared library: batch-1 and batch calls on float32 numpy arrays."""

    def __init__(self, library: Path, out_features: int) -> None:
        self.lib = ctypes.CDLL(str(library))
        self.one, self.batch = getattr(self.lib, f"{NAME}_forward"), getattr(self.lib, f"{NAME}_forward_batch")
        self.one.argtypes, self.one.restype = [FLOATS, FLOATS], None
        self.batch.argtypes, self.batch.restype = [FLOATS, FLOATS, ctypes.c_int], None
        self.out_features = out_features

    def call(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        """A call on ``x`` (``[B, in_features]``, float32, C order) that allocates nothing: batch
        1 through ``<name>_forward``, larger batches through ``<name>_forward_batch``."""
        y = np.zeros((x.shape[0], self.out_features), dtype=np.float32)
        xp, yp, batch = x.ctypes.data_as(FLOATS), y.ctypes.data_as(FLOATS), x.shape[0]
        function, arguments = (self.one, (xp, yp)) if batch == 1 else (self.batch, (xp, yp, batch))

        def run() -> np.ndarray:
            function(*arguments)
            return y

        return run


def compile_export(source: Path, cc: str, flags: list[str], library: Path) -> float:
    """Compile ``source`` into ``library``; the seconds it took."""
    start = time.perf_counter()
    command = [cc, "-std=c99", *flags, "-shared", "-fPIC", str(source), "-o", str(library), "-lm"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def torch_call(module: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    def call() -> torch.Tensor:
        with torch.inference_mode():
            return module(x)

    return call


def check_outputs(name: str, got: np.ndarray, expected: np.ndarray) -> None:
    """Stop the benchmark if a compiled library does not compute the FreeNet's outputs."""
    if not np.allclose(got, expected, atol=1e-4, rtol=1e-4):
        raise SystemExit(f"{name}: the compiled export differs from the FreeNet by up to "
                         f"{np.abs(got - expected).max():.3g}")


def samples(tiny: bool) -> torch.Tensor:
    """``[256, 784]`` float32: MNIST test images, or uniform noise with ``--tiny`` (no data needed)."""
    if tiny:
        return torch.rand(max(BATCHES), INPUTS, generator=torch.Generator().manual_seed(0))
    return mnist().test.tensors[0][: max(BATCHES)].reshape(max(BATCHES), -1).float().contiguous()


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.4f}" if seconds < 1e-3 else f"{seconds * 1e3:.3f}"


def render(args: argparse.Namespace, info: dict, context: dict, labels: dict[str, str], times: dict) -> list[str]:
    """The table and the target line."""
    lines = [
        f"Command: `python benchmarks/bench_export_c.py{' ' + ' '.join(args.argv) if args.argv else ''}`. "
        f"{info['cpu']} ({info['isa']}), {info['cores']} cores; {context['compiler']}; torch {info['torch']} with "
        f"1 thread; Python {info['python']}. Net: {context['net']}, {context['edges']:,} edges, "
        f"{context['neurons']:,} neurons ({context['inputs']} inputs), depth {context['depth']}; exported in "
        f"{context['export_seconds']:.2f} s to a {context['c_file_bytes'] / 1e3:,.0f} kB .c file. Per call: medians "
        f"of {args.repeats} round-robin repeats, each the mean of {args.burst} calls at batch 1 and "
        f"{args.batch_burst} at batch 256; ratio = time / MLP 784-512-10's.",
        "",
        "| model | batch 1 ms | vs MLP-512 | batch 256 ms | vs MLP-512 |",
        "|---|---:|---:|---:|---:|",
    ]
    for row, label in labels.items():
        cells = []
        for batch in BATCHES:
            t = times[batch][row]
            cells += [_ms(t), f"{t / times[batch][BASELINE]:.2f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ratios = ", ".join(f"`{' '.join(FLAG_SETS[row])}` **{times[1][row] / times[1][BASELINE]:.2f}**" for row in FLAG_SETS)
    met = all(times[1][row] / times[1][BASELINE] <= TARGET for row in FLAG_SETS)
    lines += ["", f"Target: the C export at batch 1 <= {TARGET}x MLP 784-512-10 in PyTorch: {ratios} "
                  f"({'met' if met else 'missed'})."]
    return lines


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=None, help="run folder of examples/evolve_mnist.py holding model.pt "
                   "(default: a sparse start of the learned net's size)")
    p.add_argument("--tiny", action="store_true", help="smoke test: a 16-neuron net, random inputs, 2 short repeats")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 15, tiny 2)")
    p.add_argument("--burst", type=int, default=None, help="calls per timing at batch 1 (default 1000, tiny 20)")
    p.add_argument("--batch-burst", type=int, default=None, help="calls per timing at batch 256 (default 10, tiny 2)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.repeats = args.repeats or (2 if args.tiny else 15)
    args.burst = args.burst or (20 if args.tiny else 1000)
    args.batch_burst = args.batch_burst or (2 if args.tiny else 10)
    warmup = 1 if args.tiny else 3
    cc = compiler()
    if cc is None:
        raise SystemExit("no C compiler on PATH (cc or gcc): the C export cannot be compiled")
    info = machine()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net, description = learned_net(args.run, args.tiny)
        stats = summary(net)
        torch.manual_seed(0)
        mlp = nn.Sequential(nn.Linear(INPUTS, 512), nn.ReLU(), nn.Linear(512, CLASSES)).eval()
        x = samples(args.tiny)
        with torch.inference_mode():
            expected = net(x).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            start = time.perf_counter()
            source, _ = export_c(net, folder / NAME, name=NAME)
            export_seconds = time.perf_counter() - start
            libraries, compile_seconds = {}, {}
            for row, flags in FLAG_SETS.items():
                compile_seconds[row] = compile_export(source, cc, flags, folder / f"lib{row}.so")
                libraries[row] = CompiledNet(folder / f"lib{row}.so", net.out_features)
            context = {"net": description, "compiler": compiler_version(cc), "edges": stats["edges"],
                       "neurons": net.num_neurons, "inputs": net.in_features, "depth": stats["depth"],
                       "export_seconds": export_seconds, "c_file_bytes": source.stat().st_size}
            labels = {BASELINE: "MLP 784-512-10 in PyTorch (`inference_mode`)",
                      "freenet": "the FreeNet in PyTorch (ncg's kernels)"}
            labels.update({row: f"C export, `{' '.join(flags)}` (compiled in {compile_seconds[row]:.1f} s)"
                           for row, flags in FLAG_SETS.items()})
            times: dict[int, dict[str, float]] = {}
            for batch in BATCHES:
                xb = x[:batch].contiguous()
                xn = xb.numpy()
                calls: dict[str, Callable[[], object]] = {BASELINE: torch_call(mlp, xb), "freenet": torch_call(net, xb)}
                for row, library in libraries.items():
                    calls[row] = library.call(xn)
                    check_outputs(f"{row} at batch {batch}", calls[row](), expected[:batch])
                times[batch] = interleaved_medians(calls, args.repeats, warmup,
                                                   burst=args.burst if batch == 1 else args.batch_burst)
    finally:
        torch.set_num_threads(threads)

    print("\n".join(render(args, info, context, labels, times)))
    result: dict[str, object] = {"cpu": info["cpu"], "compiler": context["compiler"], "edges": context["edges"],
                                 "export_seconds": round(export_seconds, 4), "c_file_bytes": context["c_file_bytes"]}
    for batch in BATCHES:
        for row in labels:
            result[f"{row}_b{batch}_ms"] = round(times[batch][row] * 1e3, 5)
            result[f"{row}_b{batch}_vs_mlp512"] = round(times[batch][row] / times[batch][BASELINE], 4)
    for row in FLAG_SETS:
        result[f"{row}_compile_seconds"] = round(compile_seconds[row], 3)
    result["target_met"] = all(result[f"{row}_b1_vs_mlp512"] <= TARGET for row in FLAG_SETS)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
