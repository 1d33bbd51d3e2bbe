"""The learned graph of one Feynman cell: GraphML and a table of its neurons.

:func:`export_graph` trains the FreeNet of one (formula, size, seed) cell again with the
benchmark's budget (:func:`ncg.experiments.feynman.fit`, bit for bit the sweep's run), writes it
as GraphML (:func:`ncg.io.write_graphml`; ``ncg-viz topology GRAPH.graphml`` draws it), and :func:`neuron_table` lists what each hidden neuron reads and how much it adds to the output:
the weights from the input nodes, the summed ``|weight|`` from earlier neurons, its edge to the
output and its *share*: ``|w_out| * std(h)`` over the test inputs, divided by the sum over the
neurons. The network sees standardised inputs and predicts the standardised target, so the
weights are in those units.

Examples
--------
>>> import tempfile
>>> from ncg.experiments.feynman import FitBudget
>>> paths = export_graph(tempfile.mkdtemp(), "I.12.1", 50, 0, budget=FitBudget.quick())
>>> sorted(paths)
['graphml', 'neurons', 'weights']
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ncg.errors import NCGError
from ncg.experiments.feynman import FitBudget, _splits, fit
from ncg.experiments.feynman_formulas import get_formula
from ncg.model import FreeNet

__all__ = ["neuron_table", "neuron_markdown", "export_graph"]


def neuron_table(model: FreeNet, x: torch.Tensor) -> list[dict]:
    """One dict per hidden neuron of a FreeNet with input nodes and one output neuron.

    Keys: ``neuron`` (its id), ``inputs`` (the weight from each input node, 0 where no edge),
    ``from_neurons`` (sum of ``|weight|`` of its edges from hidden neurons), ``fan_in`` (edges
    from hidden neurons), ``to_output`` (its edge into the output, 0 if none), ``share`` (see
    the module text), sorted by ``share``, largest first.

    Examples
    --------
    >>> from ncg.experiments.feynman import build_model
    >>> net = build_model("freenet", 2, 50, seed=0)
    >>> rows = neuron_table(net, torch.randn(64, 2, dtype=torch.float64))
    >>> len(rows), len(rows[0]["inputs"]), round(sum(r["share"] for r in rows), 6)
    (7, 2, 1.0)
    """
    graph = model.graph
    if not graph.num_inputs or graph.num_outputs != 1:
        raise NCGError(f"model must be a FreeNet with input nodes and one output, got {graph!r}")
    src, dst = graph.edge_index.numpy()
    weight = graph.weight.numpy()
    inputs = graph.inputs.numpy()
    output = int(graph.outputs[0])
    hidden = [v for v in range(graph.num_neurons) if v not in set(inputs.tolist()) and v != output]
    with torch.no_grad():
        h = model.neuron_activations(x).numpy()
    rows = []
    for v in hidden:
        into = dst == v
        from_inputs = {int(s): float(w) for s, w in zip(src[into], weight[into]) if s in inputs}
        from_hidden = [float(w) for s, w in zip(src[into], weight[into]) if s not in inputs]
        out_edge = weight[(src == v) & (dst == output)]
        to_output = float(out_edge[0]) if out_edge.size else 0.0
        rows.append({"neuron": v, "inputs": [from_inputs.get(int(i), 0.0) for i in inputs],
                     "from_neurons": float(np.abs(from_hidden).sum()), "fan_in": len(from_hidden),
                     "to_output": to_output, "share": abs(to_output) * float(h[:, v].std())})
    total = sum(r["share"] for r in rows) or 1.0
    for r in rows:
        r["share"] /= total
    return sorted(rows, key=lambda r: -r["share"])


def neuron_markdown(rows: list[dict], variables: tuple[str, ...]) -> str:
    """:func:`neuron_table` as Markdown.

    Examples
    --------
    >>> print(neuron_markdown([{"neuron": 3, "inputs": [0.5, -0.25], "from_neurons": 0.0, "fan_in": 0,
    ...                         "to_output": 1.0, "share": 1.0}], ("x", "y")).splitlines()[2])
    | 3 | +0.50 | -0.25 | 0.00 (0) | +1.00 | 100% |
    """
    head = "| neuron | " + " | ".join(f"w from {v}" for v in variables) + " | sum |w| from neurons (edges) | " \
           "w to output | share |"
    lines = [head, "|---|" + "---|" * (len(variables) + 3)]
    for r in rows:
        weights = " | ".join(f"{w:+.2f}" for w in r["inputs"])
        lines.append(f"| {r['neuron']} | {weights} | {r['from_neurons']:.2f} ({r['fan_in']}) | "
                     f"{r['to_output']:+.2f} | {100 * r['share']:.0f}% |")
    return "\n".join(lines)


def export_graph(out_dir: str | Path, formula: str, size: int, seed: int, method: str = "freenet",
                 budget: FitBudget | None = None) -> dict[str, Path]:
    """Train the ``method`` FreeNet of the cell (``formula``, ``size``, ``seed``) and write
    ``graph-<formula>-<method>-<size>-s<seed>.graphml`` (with its ``.weights.npz`` side file)
    and ``.md`` (the test nRMSE and :func:`neuron_table`) into ``out_dir``; returns their paths.
    ``ncg-viz topology GRAPH.graphml`` draws the graph's topology figure."""
    from ncg.io import write_graphml

    if method not in ("freenet", "freenet-evolve"):
        raise NCGError(f"method must be 'freenet' or 'freenet-evolve', got {method!r}")
    budget = FitBudget() if budget is None else budget
    spec = get_formula(formula)
    result = fit(method, spec, size, seed, budget)
    model = result["model"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"graph-{formula}-{method}-{size}-s{seed}"
    paths = {kind: out / f"{stem}.{kind}" for kind in ("graphml", "md")}
    files = write_graphml(model, paths["graphml"])
    _, _, test, _ = _splits(spec, budget, seed)
    title = (f"{formula}: {spec.expression}, {method} ({result['parameters']} parameters), "
             f"test nRMSE {result['test_nrmse']:.1e}")
    table = neuron_markdown(neuron_table(model, test.x), spec.variables)
    paths["md"].write_text(f"{title}\n\n{table}\n")
    return {"graphml": files[0], "weights": files[1], "neurons": paths["md"]}
