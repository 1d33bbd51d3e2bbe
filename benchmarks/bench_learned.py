"""What the main job's learned network costs, against the MLPs it is compared with.

The net is the one ``examples/evolve_mnist.py`` trains (the whole network as one DAG, pruned from
545k edges to 40k parameters): ``--run DIR`` loads ``DIR/model.pt``; otherwise this script runs the
main job itself (``--no-figures --device cpu`` into a temporary folder), and that same call is the
whole-main-job timing of section 3. Everything below is measured in this process, on the CPU:

1. **Per call**, side by side with MLP 784-512-10 (the accuracy the net matches), MLP 784-50-10
   (about its parameter count) and, where ``ncg.io`` provides them, the net exported as a
   ``torch.export`` program and as an ONNX Runtime session (each checked against the FreeNet's
   outputs first): inference at batch 1, 256 and 10,000 (``torch.inference_mode``) and the
   training step at batch 256 (forward, cross-entropy, backward, a step of ncg's fused Adam,
   ``ncg.train.adam``, under the thread setting ncg's training loop gives it:
   ``ncg.threads.step_threads``, one thread for the learned FreeNet's small step), at one torch
   thread and at the default thread count. Real MNIST samples (test images for inference, a seeded draw of
   training images for the step). Each repeat times every model in turn at each thread count
   (round-robin after warm-up; at batch 1 and 256 the mean of a warm burst of calls, see
   ``BURSTS``); medians. GMAC/s counts multiply-adds per sample: the FreeNet's edges
   (+ the weights of a linear encoder / decoder, if any), an MLP's weights; a step counts 3x the
   forward's.
2. **Under load**: the batch-256 rows again while one other busy process spins on the machine;
   the ratio default threads / one thread (target: at most 1.5).
3. **The whole main job's training** against MLP 784-512-10 trained on exactly the same schedule,
   both after a few warm-up steps (a small FreeNet, the MLP): every ``train_epoch`` call of the
   main job is recorded (data, batch, optimiser, learning rate, seconds) and replayed on the MLP.
   Reported: training only (those calls; the last epoch of a round also feeds the coactivation
   recorder), the rounds (training + validation + recording + edits, the run's ``metrics.json``,
   with its ``seconds_per_step`` where present) and the whole command (data loading, checkpoints,
   test, GraphML).

The tables go to stdout and, with ``--doc PATH``, between the ``bench_learned`` markers of that
page (a section appended if absent); the last line is JSON whose keys name the rows.

    python benchmarks/bench_learned.py --doc docs/benchmarks.md     # full run: trains the main job (minutes)
    python benchmarks/bench_learned.py --run runs/mnist-seed0 --skip-main-job --repeats 3
    python benchmarks/bench_learned.py --tiny --load                # smoke test: a --quick main job, < 1 min
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import importlib.util
import inspect
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))
from bench_forward import training_step  # noqa: E402
from common import busy_process, machine  # noqa: E402

import ncg.train as train_module  # noqa: E402
from ncg import FreeNet, load_freenet  # noqa: E402
from ncg.batches import Batches, as_batches  # noqa: E402
from ncg.build import sparse_start  # noqa: E402
from ncg.cost import macs_per_sample  # noqa: E402
from ncg.experiments.report import write_marked_section  # noqa: E402
from ncg.datasets import mnist  # noqa: E402
from ncg.io import summary as graph_summary  # noqa: E402
from ncg.threads import intra_op_threads, step_threads  # noqa: E402
from ncg.train import adam, train_epoch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MAIN_JOB = ROOT / "examples" / "evolve_mnist.py"
BEGIN, END = "<!-- bench_learned:begin -->", "<!-- bench_learned:end -->"
TITLE = "## Learned networks: cost that follows the edges"
INPUTS, CLASSES = 784, 10
ROWS = {"infer_b1": ("infer", 1), "infer_b256": ("infer", 256), "infer_b10000": ("infer", 10_000),
        "train_b256": ("train", 256)}
"""Row name: (inference or training step, batch)."""
LOAD_ROWS = ("infer_b256", "train_b256")
BASELINE = "mlp512"
LOAD_TARGET = 1.5
"""Under load, default threads may be at most this many times slower than one thread."""
LOAD_KEYS = {"load_default_vs_1t_train": "train step", "load_default_vs_1t_infer_b256": "inference at batch 256"}
TINY_MAIN_JOB = ["--quick", "--neurons", "16"]

Call = Callable[[Tensor], object]


@dataclass
class Model:
    """A candidate: ``infer(threads)`` returns its inference call (None: not available, ``note``
    says why); ``module`` is what the training rows train (None: inference only); an exported form
    of the FreeNet (``exported``) must compute its outputs."""

    name: str
    label: str
    macs: int
    parameters: int | None
    infer: Callable[[int], Call] | None
    module: nn.Module | None = None
    note: str = ""
    exported: bool = False


@dataclass
class Epoch:
    """One ``train_epoch`` call of the main job."""

    phase: str
    x: Tensor | Batches
    y: Tensor | None
    batch_size: int
    optimizer: type
    hyper: dict
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return as_batches(self.x, self.y).num_batches(self.batch_size)


@dataclass
class MainJob:
    """The main job's timings and the MLP's on its schedule."""

    epochs: list[Epoch]
    mlp_seconds: list[float]
    round_seconds: list[float]
    seconds_per_step: list[float | None]
    whole_seconds: float
    summary: dict


# ---------------------------------------------------------------------------- models


def mlp(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(INPUTS, hidden), nn.ReLU(), nn.Linear(hidden, CLASSES))


def loop_step(module: nn.Module, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One training step as ncg's training loop runs it: forward, cross-entropy, backward and a
    step of its Adam (``ncg.train.adam``), under the thread count it sets (``threads="auto"``:
    one thread for a small FreeNet step, torch's setting otherwise)."""
    step, count = training_step(module, x, y, adam), step_threads(module, x.shape[0])

    def run() -> None:
        with intra_op_threads(count):
            step()

    return run


def torch_inference(module: nn.Module) -> Callable[[int], Call]:
    """Threads are set by the harness; the call runs under ``torch.inference_mode``."""

    def call(x: Tensor) -> Tensor:
        with torch.inference_mode():
            return module(x)

    return lambda threads: call


def torch_model(name: str, label: str, module: nn.Module) -> Model:
    parameters = module.num_parameters() if isinstance(module, FreeNet) else \
        sum(p.numel() for p in module.parameters() if p.requires_grad)
    return Model(name, label, macs_per_sample(module), parameters, torch_inference(module), module.eval())


def _export_function(name: str) -> tuple[Callable | None, str]:
    """``ncg.io.<name>`` or the reason it is missing."""
    try:
        return getattr(importlib.import_module("ncg.io"), name), ""
    except (ImportError, AttributeError) as error:
        return None, f"not available ({type(error).__name__}: {error})"


def program_model(net: FreeNet, folder: Path) -> Model:
    """The net as a ``torch.export`` program (``ncg.io.export_program``)."""
    label = "FreeNet as a torch.export program"
    export, note = _export_function("export_program")
    if export is None:
        return Model("program", label, macs_per_sample(net), None, None, note=note)
    path = folder / "freenet.pt2"
    try:
        export(net, path)
        module = torch.export.load(path).module()
    except Exception as error:  # an export that fails is named in its rows; the rest is timed
        return Model("program", label, macs_per_sample(net), None, None, note=f"export failed ({error!r:.200})")
    return Model("program", label, macs_per_sample(net), None, torch_inference(module), exported=True)


def onnx_model(net: FreeNet, folder: Path) -> Model:
    """The net as an ONNX Runtime session (``ncg.io.export_onnx``), one session per thread
    count (``intra_op_num_threads``; torch's setting does not reach it)."""
    label = "FreeNet as an ONNX Runtime session"
    export, note = _export_function("export_onnx")
    try:
        import onnxruntime
    except ImportError as error:
        export, note = None, f"not available ({error})"
    if export is None:
        return Model("onnx", label, macs_per_sample(net), None, None, note=note)
    path = folder / "freenet.onnx"
    try:
        export(net, path)
    except Exception as error:
        return Model("onnx", label, macs_per_sample(net), None, None, note=f"export failed ({error!r:.200})")
    sessions: dict[int, Call] = {}

    def infer(threads: int) -> Call:
        if threads not in sessions:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            sessions[threads] = lambda x: session.run(None, {name: x.numpy()})[0]
        return sessions[threads]

    return Model("onnx", f"{label} (onnxruntime {onnxruntime.__version__})", macs_per_sample(net), None, infer,
                 exported=True)


def candidates(net: FreeNet, folder: Path) -> list[Model]:
    torch.manual_seed(0)
    stats = graph_summary(net)
    return [
        torch_model("freenet", f"learned FreeNet ({stats['edges']:,} edges, depth {stats['depth']})", net),
        torch_model(BASELINE, "MLP 784-512-10 (the accuracy it matches)", mlp(512)),
        torch_model("mlp50", "MLP 784-50-10 (about its parameters)", mlp(50)),
        program_model(net, folder),
        onnx_model(net, folder),
    ]


# ---------------------------------------------------------------------------- timing

BURSTS = {1: 20, 256: 3}
"""Consecutive calls timed together (after one untimed call) per inference batch size: one
call at batch 1 takes tens of microseconds, and a single call after the other models have run
would time a cold cache (MLP 784-512-10's 1.6 MB of weights fetched from memory: 0.4 ms instead
of 0.05 ms here)."""


def interleaved(calls: dict[tuple[str, int], Callable[[], object]], repeats: int, warmup: int, burst: int = 1
                ) -> dict[tuple[str, int], float]:
    """Median seconds of each ``(model, threads)`` call. Each repeat visits the thread counts in
    turn, sets torch's (outside the timed region), makes one untimed call to wake the thread pool,
    then times every model in turn over ``burst`` consecutive calls after one untimed call (their
    mean; ``burst=1``: one call, nothing untimed): a model serving
    small batches runs warm, with its weights in the caches, as it would in a serving loop, while
    drift still hits every model alike."""
    blocks = {threads: [key for key in calls if key[1] == threads] for threads in sorted({t for _, t in calls})}
    before = torch.get_num_threads()
    times: dict[tuple[str, int], list[float]] = {key: [] for key in calls}
    try:
        for threads, block in blocks.items():
            torch.set_num_threads(threads)
            for key in block:
                for _ in range(warmup):
                    calls[key]()
        for _ in range(repeats):
            for threads, block in blocks.items():
                torch.set_num_threads(threads)
                calls[block[0]]()
                for key in block:
                    if burst > 1:
                        calls[key]()
                    start = time.perf_counter()
                    for _ in range(burst):
                        calls[key]()
                    times[key].append((time.perf_counter() - start) / burst)
    finally:
        torch.set_num_threads(before)
    return {key: median(values) for key, values in times.items()}


def mismatch(call: Call, x: Tensor, expected: Tensor) -> str:
    """Why ``call``'s outputs on ``x`` are not the FreeNet's (empty if they are)."""
    try:
        torch.testing.assert_close(torch.as_tensor(call(x)), expected, atol=1e-4, rtol=1e-4)
    except Exception as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0][:150]}"
    return ""


def time_row(models: list[Model], row: str, data: dict[str, Tensor], counts: list[int], repeats: int, warmup: int
             ) -> tuple[dict[tuple[str, int], float], dict[str, str]]:
    """Medians of one row for every available model at every thread count, and the reason each
    model left out of the row is missing (an exported form is checked against the FreeNet first)."""
    kind, batch = ROWS[row]
    notes = {m.name: m.note for m in models if m.note}
    calls: dict[tuple[str, int], Callable[[], object]] = {}
    if kind == "train":
        x, y = data["train_x"][:batch], data["train_y"][:batch]
        for m in models:
            if m.module is None:
                notes.setdefault(m.name, "inference only")
                continue
            step = loop_step(copy.deepcopy(m.module).train(), x, y)
            calls.update({(m.name, threads): step for threads in counts})
        return interleaved(calls, repeats, warmup), notes
    x = data["test_x"][:batch]
    expected = models[0].infer(counts[0])(x)
    for m in models:
        if m.infer is None:
            continue
        per_count = {threads: m.infer(threads) for threads in counts}
        checks = (mismatch(call, x, expected) for call in per_count.values()) if m.exported else ()
        if problem := next((why for why in checks if why), ""):
            notes[m.name] = f"outputs differ at batch {batch}: {problem}"
            continue
        calls.update({(m.name, threads): (lambda call=call: call(x)) for threads, call in per_count.items()})
    return interleaved(calls, repeats, warmup, burst=BURSTS.get(batch, 1)), notes


# ---------------------------------------------------------------------------- the main job


def load_main_job():
    spec = importlib.util.spec_from_file_location("evolve_mnist", MAIN_JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def recorded_epochs() -> Iterator[list[Epoch]]:
    """Every ``train_epoch`` call Free-Evolve makes in the block: its data, batch, optimiser
    settings and seconds."""
    original = train_module.train_epoch
    signature = inspect.signature(original)
    epochs: list[Epoch] = []

    def timed(*args, **kwargs) -> dict[str, float]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        a = bound.arguments
        group = a["optimizer"].param_groups[0]
        hyper = {k: group[k] for k in ("lr", "betas", "eps", "weight_decay", "fused") if k in group}
        epoch = Epoch(a["desc"].rsplit(" epoch", 1)[0], a["x"], a["y"], a["batch_size"], type(a["optimizer"]), hyper)
        start = time.perf_counter()
        result = original(*args, **kwargs)
        epoch.seconds = time.perf_counter() - start
        epochs.append(epoch)
        return result

    train_module.train_epoch = timed
    try:
        yield epochs
    finally:
        train_module.train_epoch = original


def replay_on_mlp(epochs: list[Epoch]) -> list[float]:
    """Seconds of each of ``epochs`` trained on a fresh MLP 784-512-10 with one optimiser of the
    main job's class, its settings set before every epoch (the learning-rate schedule)."""
    torch.manual_seed(0)
    model = mlp(512)
    optimizer = epochs[0].optimizer(model.parameters(), **epochs[0].hyper)
    generator = torch.Generator().manual_seed(0)
    seconds = []
    for epoch in epochs:
        for group in optimizer.param_groups:
            group.update(epoch.hyper)
        start = time.perf_counter()
        train_epoch(model, optimizer, epoch.x, epoch.y, batch_size=epoch.batch_size, generator=generator)
        seconds.append(time.perf_counter() - start)
    return seconds


def warm_up(x: Tensor, y: Tensor) -> None:
    """A few steps of a small whole-network FreeNet and of the MLP, so that one-off costs (loading
    the evaluator's kernels, first allocations) are charged to neither side of the comparison."""
    small = FreeNet(sparse_start(INPUTS, 16, CLASSES, density=1.0, seed=0), in_features=INPUTS, seed=0)
    for model in (small, mlp(512)):
        step = loop_step(model, x, y)
        for _ in range(3):
            step()


def run_main_job(out: Path, extra: list[str]) -> MainJob:
    """The main job into ``out`` (its prints go to stderr), then the MLP on its schedule."""
    module = load_main_job()
    start = time.perf_counter()
    with recorded_epochs() as epochs, contextlib.redirect_stdout(sys.stderr):
        summary = module.main(["--no-figures", "--device", "cpu", "--out", str(out), *extra])
    whole = time.perf_counter() - start
    if not epochs:
        raise RuntimeError("the main job made no train_epoch call through ncg.evolve.loop: update recorded_epochs")
    rounds = [r for r in json.loads((out / "metrics.json").read_text()) if r["round"] > 0]
    return MainJob(epochs, replay_on_mlp(epochs), [r["seconds"] for r in rounds],
                   [r.get("seconds_per_step") for r in rounds], whole, summary)


def phases(job: MainJob) -> list[tuple[str, list[int]]]:
    """``(phase, indices of its epochs)`` in the order they ran."""
    grouped: dict[str, list[int]] = {}
    for i, epoch in enumerate(job.epochs):
        grouped.setdefault(epoch.phase, []).append(i)
    return list(grouped.items())


# ---------------------------------------------------------------------------- report


def _ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1e3:,.3f}" if seconds < 1e-2 else f"{seconds * 1e3:,.1f}"


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:,.2f}"


def gmacs(model: Model, row: str, seconds: float | None) -> float | None:
    kind, batch = ROWS[row]
    return None if seconds is None else model.macs * batch * (3 if kind == "train" else 1) / seconds / 1e9


def per_call_table(models: list[Model], medians: dict[str, dict], notes: dict[str, dict], counts: dict[str, int],
                   rows: list[str], prefix: str = "") -> list[str]:
    n = f"default ({counts['default']}) threads"
    lines = [f"| row | model | MACs / sample | 1 thread ms | vs MLP-512 | GMAC/s | {n} ms | vs MLP-512 "
             "| GMAC/s |" + (f" {n} / 1 thread |" if prefix else ""),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if prefix else "")]
    for row in rows:
        times = medians[prefix + row]
        for m in models:
            cells = []
            for label in ("1t", "default"):
                t, base = times.get((m.name, counts[label])), times.get((BASELINE, counts[label]))
                cells += [_ms(t), _ratio(None if t is None or base is None else t / base), _ratio(gmacs(m, row, t))]
            if prefix:
                one, default = times.get((m.name, counts["1t"])), times.get((m.name, counts["default"]))
                cells.append(_ratio(None if one is None else default / one))
            note = "" if (m.name, counts["1t"]) in times else notes[prefix + row].get(m.name, "")
            label = f"{m.label}: {note}" if note else m.label
            lines.append(f"| {row} | {label} | {m.macs:,} | " + " | ".join(cells) + " |")
    return lines


def main_job_table(job: MainJob) -> list[str]:
    has_metric = any(s is not None for s in job.seconds_per_step)
    lines = ["| phase | epochs | steps | main job training s | s / step"
             + (" | s / step (metrics.json)" if has_metric else "")
             + " | round s (metrics.json) | MLP-512 s | MLP-512 s / step | ratio |",
             "|---|---:|---:|---:|---:|" + ("---:|" if has_metric else "") + "---:|---:|---:|---:|"]
    for k, (phase, indices) in enumerate(phases(job)):
        steps = sum(job.epochs[i].steps for i in indices)
        ours, theirs = sum(job.epochs[i].seconds for i in indices), sum(job.mlp_seconds[i] for i in indices)
        metric = job.seconds_per_step[k] if k < len(job.seconds_per_step) else None
        round_seconds = job.round_seconds[k] if k < len(job.round_seconds) else None
        lines.append(f"| {phase} | {len(indices)} | {steps:,} | {ours:.2f} | {ours / steps * 1e3:.2f} ms"
                     + (f" | {'' if metric is None else f'{metric * 1e3:.2f} ms'}" if has_metric else "")
                     + f" | {'' if round_seconds is None else f'{round_seconds:.2f}'} | {theirs:.2f} "
                     f"| {theirs / steps * 1e3:.2f} ms | {ours / theirs:.2f} |")
    steps = sum(e.steps for e in job.epochs)
    ours, theirs = sum(e.seconds for e in job.epochs), sum(job.mlp_seconds)
    lines.append(f"| **all** | {len(job.epochs)} | {steps:,} | **{ours:.2f}** | {ours / steps * 1e3:.2f} ms"
                 + (" | " if has_metric else "") + f" | {sum(job.round_seconds):.2f} | **{theirs:.2f}** "
                 f"| {theirs / steps * 1e3:.2f} ms | **{ours / theirs:.2f}** |")
    return lines


def render(args: argparse.Namespace, info: dict, models: list[Model], medians: dict, notes: dict,
           counts: dict[str, int], job: MainJob | None, result: dict) -> str:
    net = models[0]
    source = f"`{args.run}/model.pt`" if args.run else "the main job run by this benchmark"
    lines = [
        f"Command: `python benchmarks/bench_learned.py{' ' + ' '.join(args.argv) if args.argv else ''}`. "
        f"{info['cpu']} ({info['isa']}), {info['cores']} cores, torch {info['torch']} with 1 and "
        f"{counts['default']} threads (its default here), Python {info['python']}, OMP_WAIT_POLICY "
        f"{info['omp_wait_policy']}, load average {info['load']:.1f} at the start. Net: {source}, "
        f"{net.parameters:,} parameters, {net.macs:,} MACs per sample. Medians of {args.repeats} interleaved "
        f"repeats after {args.warmup} warm-up calls; real MNIST samples; ratio = time / MLP 784-512-10's at the "
        "same thread count.",
        "",
        "**Per call** (inference under `torch.inference_mode()`; a train step is forward, cross-entropy, "
        "backward, Adam step, and counts 3x the forward's MACs)",
        "",
        *per_call_table(models, medians, notes, counts, list(ROWS)),
    ]
    if any(k.startswith("load_") for k in medians):
        lines += ["", "**Under load** (the same batch-256 rows while one other process spins on a core)", "",
                  *per_call_table(models, medians, notes, counts, list(LOAD_ROWS), prefix="load_")]
    if job is not None:
        lines += ["", "**The whole main job's training** against MLP 784-512-10 on the same schedule (same "
                  f"data, epochs, batch, optimiser and learning rates; {counts['default']} threads). Training = "
                  "the `train_epoch` calls; a round (`metrics.json`) adds validation, recording and the edits.",
                  "", *main_job_table(job), "",
                  f"Whole command (`main()`: data loading, rounds, checkpoints, test, coactivation, GraphML): "
                  f"{job.whole_seconds:.1f} s, {result['main_job_whole_vs_mlp512']:.2f}x the MLP's training; "
                  f"test accuracy {job.summary.get('test_accuracy', float('nan')):.4f}."]
    lines += ["", "**Targets**", ""]
    for key, what in LOAD_KEYS.items():
        value = result.get(key)
        lines.append(f"- under load, FreeNet {what}: default ({counts['default']}) threads / 1 thread <= {LOAD_TARGET}: "
                     + ("not measured in this run" if value is None else
                        f"**{value:.2f}** ({'met' if value <= LOAD_TARGET else 'missed'})"))
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Replace this benchmark's marked section of ``path`` (appended under :data:`TITLE` when absent)."""
    write_marked_section(path, "bench_learned", body, heading=TITLE, new_page="# Benchmarks\n")


def summarise(models: list[Model], medians: dict, counts: dict[str, int], job: MainJob | None) -> dict:
    """The JSON line: the FreeNet's ratios to MLP 784-512-10, the load ratios, the main job's, and
    every median in ms (None where not measured)."""
    result: dict[str, float | None] = {}
    for row, times in medians.items():
        for label, threads in counts.items():
            base = times.get((BASELINE, threads))
            ours = times.get(("freenet", threads))
            result[f"{row}_vs_mlp512_{label}"] = None if ours is None or base is None else ours / base
            for m in models:
                t = times.get((m.name, threads))
                result[f"{m.name}_{row}_ms_{label}"] = None if t is None else t * 1e3
    for key, row in zip(LOAD_KEYS, ("train_b256", "infer_b256")):
        times = medians.get(f"load_{row}")
        result[key] = None if times is None else times[("freenet", counts["default"])] / times[("freenet", 1)]
    train = None if job is None else sum(e.seconds for e in job.epochs)
    mlp_train = None if job is None else sum(job.mlp_seconds)
    result.update({
        "main_job_train_vs_mlp512": None if job is None else train / mlp_train,
        "main_job_whole_vs_mlp512": None if job is None else job.whole_seconds / mlp_train,
        "main_job_train_seconds": train,
        "main_job_rounds_seconds": None if job is None else sum(job.round_seconds),
        "main_job_whole_seconds": None if job is None else job.whole_seconds,
        "mlp512_main_job_schedule_seconds": mlp_train,
    })
    return {k: None if v is None else round(v, 4) for k, v in result.items()}


def mnist_samples(batch: int) -> dict[str, Tensor]:
    """Test images for inference, a seeded draw of ``batch`` training images for the step."""
    data = mnist()
    (train_x, train_y), (test_x, _) = data.train.tensors, data.test.tensors
    pick = torch.randperm(train_x.shape[0], generator=torch.Generator().manual_seed(0))[:batch]
    return {"train_x": train_x[pick], "train_y": train_y[pick], "test_x": test_x}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, default=None, help="run folder of examples/evolve_mnist.py holding model.pt "
                   "(default: train one with the main job's settings)")
    p.add_argument("--skip-main-job", action="store_true", help="no whole-main-job timing (needs --run)")
    p.add_argument("--load", action="store_true", help="the under-load rows (always part of a run without --tiny)")
    p.add_argument("--tiny", action="store_true", help="smoke test: a --quick main job with 16 neurons, 1 repeat")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 15, tiny 1)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per candidate first (default 3, tiny 1)")
    p.add_argument("--doc", type=Path, default=None, help="page whose bench_learned section receives the tables")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.skip_main_job and args.run is None:
        p.error("--skip-main-job needs --run (else the main job is what provides the net)")
    args.repeats = args.repeats or (1 if args.tiny else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.tiny else 3)
    default = torch.get_num_threads()
    counts = {"1t": 1, "default": default}
    info = machine()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = mnist_samples(ROWS["train_b256"][1])
        warm_up(data["train_x"], data["train_y"])
        job = None if args.skip_main_job else run_main_job(folder / "run", TINY_MAIN_JOB if args.tiny else [])
        net, _ = load_freenet((args.run or folder / "run") / "model.pt")
        models = candidates(net, folder)
        medians, notes = {}, {}
        for row in ROWS:
            medians[row], notes[row] = time_row(models, row, data, sorted(set(counts.values())), args.repeats,
                                                args.warmup)
        if args.load or not args.tiny:
            with busy_process():
                for row in LOAD_ROWS:
                    medians[f"load_{row}"], notes[f"load_{row}"] = time_row(
                        models, row, data, sorted(set(counts.values())), args.repeats, args.warmup)

    result = summarise(models, medians, counts, job)
    body = render(args, info, models, medians, notes, counts, job, result)
    print(body)
    if args.doc is not None:
        write_section(args.doc, body)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
