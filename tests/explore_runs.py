"""Run folders for the explorer tests, built in a second without training.

:func:`make_run` writes what ``examples/evolve_mnist.py`` writes and the explorer reads: a 6 x 6
image of input nodes, a round 0 graph, five rounds that prune and add random edges (round 2 also
removes a hidden neuron), the final model, its firing rates and a summary.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ncg import NCG, FreeNet
from ncg.build import sparse_start
from ncg.evolve.coactivation import record_coactivation
from ncg.evolve.edits import Edit
from ncg.evolve.history import History
from ncg.run_folder import RunFolder

IMAGE = (6, 6)
HIDDEN, OUTPUTS, ROUNDS = 30, 4, 5
REMOVED = 40
"""Stable id of the hidden neuron that round 2 removes."""


def _graph(ids: np.ndarray, edges: dict[tuple[int, int], float], inputs: np.ndarray, outputs: np.ndarray) -> NCG:
    """The NCG over stable ``ids`` (sorted: every edge goes up in id) with ``edges`` {(s, t): w}."""
    index = np.full(int(ids.max()) + 1, -1)
    index[ids] = np.arange(ids.size)
    pairs = np.array(sorted(edges), dtype=np.int64).reshape(-1, 2)
    weight = torch.tensor([edges[tuple(p)] for p in pairs.tolist()], dtype=torch.float32)
    return NCG(torch.from_numpy(index[pairs.T]), int(ids.size), torch.from_numpy(index[outputs]), weight=weight,
               bias=torch.linspace(-0.5, 0.5, int(ids.size)), order=torch.arange(int(ids.size)),
               neuron_ids=torch.from_numpy(ids), inputs=torch.from_numpy(index[inputs]), unreachable="ignore")


def evolving_graphs(seed: int = 0) -> list[NCG]:
    """Round 0 and the graphs after each of the :data:`ROUNDS` rounds."""
    rng = np.random.default_rng(seed)
    start = sparse_start(IMAGE[0] * IMAGE[1], HIDDEN, OUTPUTS, fan_in=8, seed=seed)
    ids = start.neuron_ids.numpy()
    inputs, outputs = start.inputs.numpy(), start.outputs.numpy()
    src, dst = start.edge_index.numpy()
    edges = {(int(s), int(t)): float(w) for s, t, w in zip(src, dst, start.weight.tolist())}
    graphs = [_graph(ids, edges, inputs, outputs)]
    for k in range(1, ROUNDS + 1):
        pairs = sorted(edges)
        for p in rng.choice(len(pairs), size=len(pairs) // 5, replace=False):
            del edges[pairs[p]]
        if k == 2:
            ids = ids[ids != REMOVED]
            edges = {p: w for p, w in edges.items() if REMOVED not in p}
        for _ in range(12):
            s, t = sorted(rng.choice(ids, size=2, replace=False).tolist())
            if t not in inputs and s not in outputs:
                edges[(s, t)] = float(rng.normal(0, 0.5))
        graphs.append(_graph(ids, edges, inputs, outputs))
    return graphs


def history_of(graphs: list[NCG]) -> History:
    """A history whose edits are the differences between consecutive graphs."""
    history = History()
    previous, previous_ids = None, None
    for k, graph in enumerate(graphs):
        edges = set(map(tuple, graph.neuron_ids[graph.edge_index].t().tolist()))
        ids = set(graph.neuron_ids.tolist())
        edits = []
        if previous is not None:
            edits = [Edit("remove_neuron", v, -1) for v in sorted(previous_ids - ids)]
            edits += [Edit("prune_edge", s, t) for s, t in sorted(previous - edges) if s in ids and t in ids]
            edits += [Edit("add_edge", s, t, weight=0.1) for s, t in sorted(edges - previous)]
        metrics = {} if k == 0 else {"train_accuracy": 0.5 + 0.05 * k, "val_accuracy": 0.45 + 0.05 * k}
        history.append_graph(graph, edits=edits, metrics=metrics, phase="start" if k == 0 else "evolve")
        previous, previous_ids = edges, ids
    return history


def make_run(folder: Path, seed: int = 0) -> FreeNet:
    """Write a run folder with :data:`ROUNDS` rounds of history into ``folder``; return its model."""
    graphs = evolving_graphs(seed)
    run = RunFolder(folder)
    history = history_of(graphs)
    model = FreeNet(graphs[-1], in_features=IMAGE[0] * IMAGE[1], seed=seed)
    run.write_config(args={"seed": seed}, evolve={}, model=model.config())
    run.write_round(history, model, extra={"image_shape": list(IMAGE)})
    torch.manual_seed(seed)
    run.write_final(model, record_coactivation(model, torch.rand(64, IMAGE[0] * IMAGE[1])))
    run.write_summary({"dataset": "synthetic", "test_accuracy": 0.8125, "edges": graphs[-1].num_edges})
    return model
