"""How the FreeNet evaluator scales, against MLPs, its own dense path and the obvious alternatives.

One run, every comparison timed side by side (round-robin, warm-up, median), on the CPU:

1. complete DAGs of N = 512 and 2048 neurons against a parameter-matched MLP (one hidden layer);
2. random DAGs keeping 1% and 10% of the complete DAG's edges at N = 4096 (dense linear encoder)
   against an MLP with the same total number of weights, against the dense evaluation of the same
   graph (``evaluator="dense"``), and against what a user would write otherwise: one PyG
   ``MessagePassing`` call per generation, one ``torch.sparse`` product per generation, and
   neat-python's ``FeedForwardNetwork`` (pure Python, one sample at a time: inference only);
3. bounded-depth sparse DAGs whose 784 inputs are graph nodes, 100k neurons / 1M edges and 1M
   neurons / 10M edges: training-step time and peak memory, each in a fresh process.

A step is forward + backward + Adam update with cross-entropy on 10 classes and 784 random
inputs. The tables go to stdout and, between the ``bench_scale`` markers, to docs/benchmarks.md;
the last line is JSON whose keys name the rows.

    python benchmarks/bench_scale.py               # full run (a few minutes), rewrites the doc
    python benchmarks/bench_scale.py --quick       # fewer repeats, no 1M row, doc untouched
    python benchmarks/bench_scale.py --row 100k    # one scale row in this process (JSON line)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

sys.path.insert(0, str(Path(__file__).parent))
from bench_forward import count_parameters, training_step  # noqa: E402
from common import machine  # noqa: E402
from common import interleaved_medians  # noqa: E402

from ncg import NCG, FreeNet  # noqa: E402
from ncg.build import layered_start  # noqa: E402
from ncg.experiments.report import write_marked_section  # noqa: E402
from ncg.kernels.blocked import blocked_forward  # noqa: E402
from ncg.kernels.sweep import ACTIVATION_CODES  # noqa: E402

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

INPUTS, CLASSES = 784, 10
DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench_scale:begin -->", "<!-- bench_scale:end -->"
SCALE_ROWS = {  # name: (hidden neurons, batch); layered_start(784, hidden, 10, depth=8, fan_in=10)
    "100k": (100_000, 256),
    "1m": (1_000_000, 128),
}
TARGETS = {  # JSON key: (bound, "max" or "min", what it means)
    "complete512_vs_mlp": (1.5, "max", "complete DAG N = 512: train step <= 1.5x the parameter-matched MLP"),
    "complete2048_vs_mlp": (1.5, "max", "complete DAG N = 2048: train step <= 1.5x the parameter-matched MLP"),
    "sparse1_speedup_vs_dense": (10.0, "min", "1% DAG, N = 4096: graph evaluation >= 10x faster than dense"),
    "sparse1_vs_equal_weight_mlp": (2.0, "max", "1% DAG, N = 4096: train step <= 2x the equal-weight MLP"),
    "100k_peak_gib": (2.0, "max", "100k neurons / 1M edges: peak RSS of a training run < 2 GiB"),
    "1m_peak_gib": (8.0, "max", "1M neurons / 10M edges: peak RSS of a training run < 8 GiB"),
}


# ---------------------------------------------------------------------------- baselines


def mlp_with_parameters(target: int) -> nn.Sequential:
    """One-hidden-layer MLP 784 -> width -> 10 whose parameter count is closest to ``target``."""
    width = max(1, round((target - CLASSES) / (INPUTS + 1 + CLASSES)))
    return nn.Sequential(nn.Linear(INPUTS, width), nn.ReLU(), nn.Linear(width, CLASSES))


class _GenerationEvaluator(nn.Module):
    """Common part of the per-generation alternatives: a copy of a FreeNet's parameters (dense
    encoder, biases, edge weights) and its graph cut into generations, computed once per
    topology as any user would. ``forward`` evaluates generation by generation, each neuron's
    pre-activation being its encoder row plus bias plus ``_incoming(g, h, w)``."""

    def __init__(self, net: FreeNet) -> None:
        super().__init__()
        if net.encoder is None or (net.activation, net.output_activation) != ("relu", "identity"):
            raise ValueError("the alternatives evaluate FreeNets with a linear encoder, ReLU hidden and identity "
                             "output neurons")
        plan, codes = net.plan()
        self.encoder_weight = nn.Parameter(net.encoder.weight.detach()[plan.perm].clone())
        self.bias = nn.Parameter(net.bias.detach()[plan.perm].clone())
        # Edges in CSR order: sorted by target position, then source position.
        self.weight = nn.Parameter(net.weight.detach()[plan.csr_edge].clone())
        self.register_buffer("src", plan.csr_src.long())
        self.register_buffer("dst", plan.dst_pos[plan.csr_edge])
        self.register_buffer("output_rows", plan.position[net.outputs])
        ptr = plan.generation_ptr.tolist()
        slots = plan.indptr[plan.generation_ptr].tolist()
        identity = codes == ACTIVATION_CODES["identity"]
        # (first row, end row, first edge, end edge, rows with the identity or None) per generation
        self.generations = [
            (a, b, slots[g], slots[g + 1], torch.nonzero(identity[a:b]).flatten() if identity[a:b].any() else None)
            for g, (a, b) in enumerate(zip(ptr, ptr[1:]))
        ]

    def _incoming(self, g: int, h: Tensor, w: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        u = torch.addmm(self.bias.unsqueeze(1), self.encoder_weight, x.t())  # [N, B], position order
        h = torch.zeros_like(u)
        for g, (a, b, e0, e1, identity) in enumerate(self.generations):
            z = u[a:b] + self._incoming(g, h, self.weight) if e1 > e0 else u[a:b]
            out = torch.relu(z)
            if identity is not None:
                out = out.index_copy(0, identity, z[identity])
            h[a:b] = out
        return h[self.output_rows].t()


class WeightedSum(MessagePassing):
    """``out_j = sum_{i -> j} w_ij x_i``: the message-passing layer a PyG user writes."""

    def __init__(self) -> None:
        super().__init__(aggr="add")

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor, size: tuple[int, int]) -> Tensor:
        return self.propagate(edge_index, x=(x, None), edge_weight=edge_weight, size=size)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j


class PyGGenerations(_GenerationEvaluator):
    """One ``MessagePassing`` call per generation: gather the sources, scale, scatter-add into the
    generation's neurons (node features are the batch columns: ``[N, B]``)."""

    def __init__(self, net: FreeNet) -> None:
        super().__init__(net)
        self.conv = WeightedSum()
        self.edge_indices = [
            torch.stack([self.src[e0:e1], self.dst[e0:e1] - a]) for a, _, e0, e1, _ in self.generations
        ]

    def _incoming(self, g: int, h: Tensor, w: Tensor) -> Tensor:
        a, b, e0, e1, _ = self.generations[g]
        return self.conv(h[:a], self.edge_indices[g], w[e0:e1], size=(a, b - a))


class TorchSparseGenerations(_GenerationEvaluator):
    """One ``torch.sparse.mm`` per generation: a CSR matrix ``[generation, earlier neurons]`` of
    the edges into the generation (rebuilt each call from the weight vector, so it is trained)
    times the earlier activations."""

    def __init__(self, net: FreeNet) -> None:
        super().__init__(net)
        self.structure = []
        for a, b, e0, e1, _ in self.generations:
            rows = self.dst[e0:e1] - a
            crow = torch.zeros(b - a + 1, dtype=torch.long)
            crow[1:] = torch.bincount(rows, minlength=b - a).cumsum(0)
            self.structure.append((crow, self.src[e0:e1].clone()))

    def _incoming(self, g: int, h: Tensor, w: Tensor) -> Tensor:
        a, b, e0, e1, _ = self.generations[g]
        crow, col = self.structure[g]
        matrix = torch.sparse_csr_tensor(crow, col, w[e0:e1], (b - a, a), check_invariants=False)
        # A copy: sparse.mm saves its dense operand for the weight gradient, and the later
        # generations write into h in place.
        return torch.sparse.mm(matrix, h[:a].clone())


def neat_network(net: FreeNet):
    """The FreeNet's DAG as a ``neat.nn.FeedForwardNetwork``: input key ``-1 - p`` carries the
    encoder output of position ``p``; node ``p`` sums it and its incoming edges, adds its bias and
    applies ReLU (identity for outputs), in generation order."""
    from neat.activations import identity_activation, relu_activation
    from neat.aggregations import sum_aggregation
    from neat.nn import FeedForwardNetwork

    plan, codes = net.plan()
    identity = (codes == ACTIVATION_CODES["identity"]).tolist()
    bias = net.bias.detach()[plan.perm].tolist()
    weight = net.weight.detach()[plan.csr_edge].tolist()
    src, indptr = plan.csr_src.tolist(), plan.indptr.tolist()
    node_evals = []
    for p in range(net.num_neurons):
        links = [(-1 - p, 1.0)] + [(src[e], weight[e]) for e in range(indptr[p], indptr[p + 1])]
        activation = identity_activation if identity[p] else relu_activation
        node_evals.append((p, activation, sum_aggregation, bias[p], 1.0, links))
    inputs = [-1 - p for p in range(net.num_neurons)]
    return FeedForwardNetwork(inputs, plan.position[net.outputs].tolist(), node_evals)


def block_summary(net: FreeNet) -> str:
    """``"83 sparse"`` or ``"3 dense, 40 sparse"``: the plan's blocks by kind."""
    kinds = net.plan()[0].kinds
    return ", ".join(f"{kinds.count(k)} {k}" for k in ("dense", "sparse") if k in kinds)


def encoder_outputs(net: FreeNet, x: Tensor) -> Tensor:
    """``[B, N]`` encoder output (no bias) in position order."""
    plan, _ = net.plan()
    return x @ net.encoder.weight.detach()[plan.perm].t()


# ---------------------------------------------------------------------------- measurements


def forward_fn(model: nn.Module, x: Tensor):
    """A closure running one inference pass."""

    def run() -> None:
        with torch.no_grad():
            model(x)
    return run


def graph_evaluation_fn(net: FreeNet, x: Tensor):
    """Forward + backward of the DAG evaluator alone (no encoder, loss or optimiser): the part
    that ``evaluator="auto"`` and ``"dense"`` do differently."""
    plan, codes = net.plan()
    with torch.no_grad():
        u = torch.addmm(net.bias[plan.perm].unsqueeze(1), net.encoder.weight[plan.perm], x.t())
    grad = torch.randn_like(u)

    def run() -> None:
        u_leaf = u.detach().requires_grad_()
        blocked_forward(u_leaf, net.weight, plan, codes).backward(grad)
        net.weight.grad = None
    return run


def complete_rows(sizes: list[int], x: Tensor, y: Tensor, repeats: int) -> tuple[list[dict], dict]:
    rows, result = [], {}
    for n in sizes:
        net = FreeNet(NCG.complete(n, num_outputs=CLASSES, seed=0), in_features=INPUTS, seed=0)
        mlp = mlp_with_parameters(net.num_parameters())
        steps = interleaved_medians({"ncg": training_step(net, x, y), "mlp": training_step(mlp, x, y)}, repeats)
        forwards = interleaved_medians({"ncg": forward_fn(net, x), "mlp": forward_fn(mlp, x)}, repeats)
        for name, model, label in (("ncg", net, f"FreeNet, complete DAG N = {n}"),
                                   ("mlp", mlp, f"MLP 784-{mlp[0].out_features}-10 (parameter-matched)")):
            rows.append({"model": label, "parameters": count_parameters(model), "step": steps[name],
                         "step_ratio": steps[name] / steps["mlp"], "forward": forwards[name],
                         "forward_ratio": forwards[name] / forwards["mlp"]})
        result[f"complete{n}_vs_mlp"] = steps["ncg"] / steps["mlp"]
    return rows, result


def verify(alternative: nn.Module, net: FreeNet, x: Tensor) -> None:
    """The alternative computes the FreeNet's outputs (and, trained, its edge gradients)."""
    torch.testing.assert_close(alternative(x), net(x), atol=1e-4, rtol=1e-4)
    loss = alternative(x).square().sum()
    loss.backward()
    net.zero_grad()
    net(x).square().sum().backward()
    plan, _ = net.plan()
    expected = net.weight.grad[plan.csr_edge]
    error = (alternative.weight.grad - expected).norm() / expected.norm()
    if not error < 1e-3:  # float32 sums in another order: compare the whole gradient, not each entry
        raise AssertionError(f"{type(alternative).__name__}: edge gradient differs by {error:.2e} (relative norm)")
    alternative.zero_grad(set_to_none=True)
    net.zero_grad(set_to_none=True)


def neat_seconds(net: FreeNet, x: Tensor, samples: int) -> float:
    """Per-sample seconds of neat-python's ``activate`` over the first ``samples`` rows of ``x``,
    after checking its outputs against the FreeNet's; ``nan`` if neat-python is missing."""
    try:
        network = neat_network(net)
    except ImportError:
        return float("nan")
    inputs = encoder_outputs(net, x[:samples]).tolist()
    expected = net(x[:samples]).detach()
    start = time.perf_counter()
    outputs = [network.activate(row) for row in inputs]
    seconds = (time.perf_counter() - start) / samples
    torch.testing.assert_close(torch.tensor(outputs, dtype=expected.dtype), expected, atol=1e-4, rtol=1e-4)
    return seconds


def sparse_rows(n: int, densities: list[float], x: Tensor, y: Tensor, repeats: int, neat_samples: int
                ) -> tuple[list[dict], dict]:
    rows, result = [], {}
    for density in densities:
        tag = f"{density:.0%}"
        graph = NCG.random_dag(n, density=density, num_outputs=CLASSES, seed=0)
        auto = FreeNet(graph, in_features=INPUTS, seed=0)
        dense = FreeNet(graph, in_features=INPUTS, seed=0, evaluator="dense")
        mlp = mlp_with_parameters(auto.num_parameters())
        pyg, sparse = PyGGenerations(auto), TorchSparseGenerations(auto)
        for alternative in (pyg, sparse):
            verify(alternative, auto, x[:32])
        models = {"ncg": auto, "dense": dense, "mlp": mlp, "pyg": pyg, "sparse": sparse}
        steps = interleaved_medians({k: training_step(m, x, y) for k, m in models.items()}, repeats, warmup=1)
        forwards = interleaved_medians({k: forward_fn(m, x) for k, m in models.items()}, repeats, warmup=1)
        evaluation = interleaved_medians({k: graph_evaluation_fn(models[k], x) for k in ("ncg", "dense")}, repeats)
        neat_forward = neat_seconds(auto, x, neat_samples) * x.shape[0]
        labels = {
            "ncg": f"FreeNet, evaluator='auto' ({graph.num_edges:,} edges; blocks: {block_summary(auto)})",
            "dense": "FreeNet, evaluator='dense' (same graph)",
            "mlp": f"MLP 784-{mlp[0].out_features}-10 (equal weights)",
            "pyg": "PyG MessagePassing per generation",
            "sparse": "torch.sparse CSR mm per generation",
        }
        for k, model in models.items():
            rows.append({"graph": tag, "model": labels[k], "parameters": count_parameters(model),
                         "step": steps[k], "step_ratio": steps[k] / steps["ncg"],
                         "forward": forwards[k], "forward_ratio": forwards[k] / forwards["ncg"],
                         "evaluation": evaluation.get(k)})
        neat_label = (f"neat-python FeedForwardNetwork (inference; {neat_samples} samples, time per sample "
                      f"x {x.shape[0]})" if neat_forward == neat_forward else
                      "neat-python: not installed (`pip install -e '.[bench]'`)")
        rows.append({"graph": tag, "model": neat_label,
                     "parameters": None, "step": None, "step_ratio": None, "forward": neat_forward,
                     "forward_ratio": neat_forward / forwards["ncg"], "evaluation": None})
        key = f"sparse{round(density * 100)}"
        result[f"{key}_speedup_vs_dense"] = evaluation["dense"] / evaluation["ncg"]
        result[f"{key}_step_speedup_vs_dense"] = steps["dense"] / steps["ncg"]
        result[f"{key}_vs_equal_weight_mlp"] = steps["ncg"] / steps["mlp"]
        for k in ("pyg", "sparse"):
            result[f"{key}_{k}_step_vs_ncg"] = steps[k] / steps["ncg"]
        result[f"{key}_neat_forward_vs_ncg"] = neat_forward / forwards["ncg"]
    return rows, result


def _high_water_gib() -> float:
    """Peak resident set size of this process since its start or the last :func:`_reset_high_water`.

    ``VmHWM`` belongs to the process's own address space; ``ru_maxrss`` (the fallback where
    ``/proc`` is missing) also counts the launching process's RSS, inherited at fork.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _reset_high_water() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def scale_row(hidden: int, batch: int, repeats: int) -> dict:
    """Build the bounded-depth sparse DAG, train on random data; time and memory of the steps."""
    torch.manual_seed(0)
    start = time.perf_counter()
    graph = layered_start(INPUTS, hidden, CLASSES, depth=8, fan_in=10, seed=0)
    net = FreeNet(graph, in_features=INPUTS, seed=0)
    net.plan()
    build = time.perf_counter() - start
    del graph
    x, y = torch.rand(batch, INPUTS), torch.randint(0, CLASSES, (batch,))
    build_peak = _high_water_gib()
    windowed = _reset_high_water()
    seconds = interleaved_medians({"step": training_step(net, x, y)}, repeats=repeats, warmup=1)["step"]
    step_peak = _high_water_gib()
    return {"neurons": net.num_neurons, "edges": int(net.edge_index.shape[1]), "batch": batch,
            "parameters": net.num_parameters(), "blocks": block_summary(net), "build_seconds": build,
            "step_seconds": seconds, "peak_gib": max(build_peak, step_peak), "build_peak_gib": build_peak,
            "step_peak_gib": step_peak if windowed else None}


def scale_rows(names: list[str], repeats: int, threads: int) -> list[dict]:
    """Each row in a fresh process, so that its peak RSS is its own."""
    rows = []
    for name in names:
        command = [sys.executable, __file__, "--row", name, "--repeats", str(repeats), "--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"scale row {name} failed:\n{done.stderr[-3000:]}")
        rows.append({"row": name, **json.loads(done.stdout.strip().splitlines()[-1])})
    return rows


# ---------------------------------------------------------------------------- report


def _ms(seconds: float | None) -> str:
    return "" if seconds is None or seconds != seconds else f"{seconds * 1e3:,.1f}"


def _ratio(value: float | None) -> str:
    return "" if value is None or value != value else f"{value:,.2f}"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def render(args, info: dict, complete: list[dict], sparse: list[dict], scale: list[dict], result: dict) -> str:
    lines = [
        f"Command: `python benchmarks/bench_scale.py{' ' + ' '.join(args.argv) if args.argv else ''}`. "
        f"{info['cpu']} ({info['isa']}), {info['cores']} cores, torch threads: {info['threads']}, "
        f"torch {info['torch']}, Python {info['python']}, sweep backend `{info['backend']}`, "
        f"OMP_WAIT_POLICY {info['omp_wait_policy']}, load average {info['load']:.1f} at the start. "
        f"Batch {args.batch}; medians of {args.repeats} interleaved repeats after warm-up "
        f"(scale rows: {args.scale_repeats}).",
        "",
        "**Complete DAGs against a parameter-matched MLP** (ratio: time / the MLP's)",
        "",
        "| model | parameters | train step ms | ratio | forward ms | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in complete:
        lines.append(f"| {r['model']} | {_count(r['parameters'])} | {_ms(r['step'])} | {_ratio(r['step_ratio'])} "
                     f"| {_ms(r['forward'])} | {_ratio(r['forward_ratio'])} |")
    lines += [
        "",
        f"**Random DAGs at N = {args.sparse_n}** (ratio: time / the FreeNet auto evaluator's; graph evaluation = "
        "the DAG evaluator's forward + backward alone, without encoder, loss and optimiser)",
        "",
        "| graph | model | parameters | train step ms | ratio | forward ms | ratio | graph evaluation ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sparse:
        lines.append(f"| {r['graph']} | {r['model']} | {_count(r['parameters'])} | {_ms(r['step'])} "
                     f"| {_ratio(r['step_ratio'])} | {_ms(r['forward'])} | {_ratio(r['forward_ratio'])} "
                     f"| {_ms(r['evaluation'])} |")
    if scale:
        lines += [
            "",
            "**Bounded-depth sparse DAGs, inputs as graph nodes** (`layered_start(784, H, 10, depth=8, fan_in=10)`, "
            "each row in a fresh process; peak RSS = the process's high-water RSS, imports and build included)",
            "",
            "| row | neurons | edges | blocks | batch | build s | train step s | peak RSS GiB | peak during the steps GiB |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in scale:
            step_peak = "" if r["step_peak_gib"] is None else f"{r['step_peak_gib']:.2f}"
            lines.append(f"| {r['row']} | {r['neurons']:,} | {r['edges']:,} | {r['blocks']} | {r['batch']} "
                         f"| {r['build_seconds']:.1f} "
                         f"| {r['step_seconds']:.3f} | {r['peak_gib']:.2f} | {step_peak} |")
    lines += ["", "**Targets**", ""]
    for key, (bound, kind, text) in TARGETS.items():
        value = result.get(key)
        if value is None:
            lines.append(f"- {text}: not measured in this run")
            continue
        met = value <= bound if kind == "max" else value >= bound
        lines.append(f"- {text}: **{value:.2f}** ({'met' if met else 'missed'})")
    return "\n".join(lines)


def write_section(path: Path, body: str) -> None:
    """Replace this benchmark's marked section of ``path`` (appended, with its markers, when absent)."""
    write_marked_section(path, "bench_scale", body, new_page="# Benchmarks\n")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, no 1M row, doc untouched unless --doc")
    p.add_argument("--tiny", action="store_true", help="N = 32/64 graphs, no scale rows: a smoke test")
    p.add_argument("--skip-scale", action="store_true", help="no 100k / 1M rows")
    p.add_argument("--row", choices=sorted(SCALE_ROWS), help="only this scale row, in this process")
    p.add_argument("--batch", type=int, default=None,
                   help="batch of the in-process rows (default 256); with --row, overrides the row's batch")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per candidate (default 9, quick 3)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--doc", type=Path, default=None, help="page to write the tables to (default: docs/benchmarks.md "
                   "on a full run, none with --quick or --tiny)")
    p.add_argument("--no-doc", action="store_true")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    quick = args.quick or args.tiny
    args.repeats = args.repeats or (3 if quick else 9)
    if args.row:
        hidden, batch = SCALE_ROWS[args.row]
        row = scale_row(hidden, args.batch or batch, args.repeats)
        print(json.dumps(row))
        return row

    torch.manual_seed(0)
    args.batch = args.batch or 256
    info = machine()
    x, y = torch.randn(args.batch, INPUTS), torch.randint(0, CLASSES, (args.batch,))
    args.sparse_n = 64 if args.tiny else 4096
    complete, result = complete_rows([32, 64] if args.tiny else [512, 2048], x, y, args.repeats)
    sparse, sparse_result = sparse_rows(args.sparse_n, [0.01, 0.1], x, y, args.repeats,
                                        neat_samples=4 if quick else 16)
    result.update(sparse_result)
    names = [] if args.tiny or args.skip_scale else ["100k"] if quick else ["100k", "1m"]
    args.scale_repeats = max(2, args.repeats // 3)
    scale = scale_rows(names, args.scale_repeats, args.threads)
    for r in scale:
        result[f"{r['row']}_peak_gib"] = r["peak_gib"]
        result[f"{r['row']}_step_seconds"] = r["step_seconds"]
    result = {k: (None if v != v else round(v, 3)) for k, v in result.items()}
    for key in ("100k_peak_gib", "1m_peak_gib", "1m_step_seconds"):
        result.setdefault(key, None)

    body = render(args, info, complete, sparse, scale, result)
    print(body)
    doc = args.doc or (None if quick else DOC)
    if doc is not None and not args.no_doc:
        write_section(doc, body)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
