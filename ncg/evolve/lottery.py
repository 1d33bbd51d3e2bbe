"""Iterative magnitude pruning with weight rewinding (lottery tickets) on a FreeNet.

Frankle & Carbin (2019), with the rewinding of Frankle et al. (2019): train the network, prune
the smallest-magnitude edges, rewind the surviving weights (edges, biases, encoder, decoder) to
their values after ``rewind_epochs`` epochs, and train again; ``cycles`` times, with a fraction
per cycle chosen so that the last cycle ends at ``target_edges``. Pruning uses
:func:`~ncg.evolve.operators.prune_edges` (each neuron keeps its best outgoing edge), so the
result is a valid FreeNet with exactly ``target_edges`` edges whenever the protections allow.

Examples
--------
>>> import torch
>>> from ncg import NCG, FreeNet
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> net = FreeNet(NCG.complete(10, num_outputs=2, seed=0), in_features=4, seed=0)
>>> x, y = torch.randn(128, 4), torch.randint(0, 2, (128,))
>>> result = iterative_magnitude_pruning(net, (x, y), target_edges=20, cycles=2, epochs=[(2, 1e-2)])
>>> net.edge_index.shape[1], result["epochs"]
(20, 4)
"""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import Tensor

from ncg.errors import NCGError
from ncg.evolve.apply import apply_edits
from ncg.evolve.operators import prune_edges
from ncg.graph import NCG
from ncg.tasks import Task
from ncg.train import adam, fit

__all__ = ["iterative_magnitude_pruning", "stages_after", "stages_before"]


def stages_before(stages: Sequence[tuple[int, float]], done: int) -> list[tuple[int, float]]:
    """The ``(epochs, lr)`` stages of the first ``done`` epochs.

    Examples
    --------
    >>> stages_before([(1, 1e-3), (3, 2e-4)], 2)
    [(1, 0.001), (1, 0.0002)]
    """
    first = []
    for count, lr in stages:
        take = min(done, count)
        done -= take
        if take:
            first.append((take, lr))
    return first


def stages_after(stages: Sequence[tuple[int, float]], done: int) -> list[tuple[int, float]]:
    """The ``(epochs, lr)`` stages that remain after the first ``done`` epochs.

    Examples
    --------
    >>> stages_after([(8, 1e-3), (3, 2e-4)], 9)
    [(2, 0.0002)]
    """
    remaining = []
    for count, lr in stages:
        skip = min(done, count)
        done -= skip
        if count - skip:
            remaining.append((count - skip, lr))
    return remaining


def iterative_magnitude_pruning(
    model,
    train: tuple[Tensor, Tensor],
    val: tuple[Tensor, Tensor] | None = None,
    target_edges: int = 0,
    cycles: int = 2,
    epochs: Sequence[tuple[int, float]] = ((8, 1e-3), (3, 2e-4)),
    rewind_epochs: int = 1,
    batch_size: int = 256,
    seed: int = 0,
    task: str | Task = "classification",
) -> dict:
    """Prune ``model`` (a FreeNet, edited in place) to ``target_edges`` edges in ``cycles``
    train-prune-rewind cycles, then train the ticket once more.

    Every training run follows the stages ``epochs`` (``(count, lr)`` pairs, Adam); retraining
    after a rewind replays the stages after ``rewind_epochs``. The total is
    ``T + cycles * (T - rewind_epochs)`` epochs for a schedule of ``T`` epochs.

    Returns
    -------
    dict
        The last training's metrics, ``epochs`` (total), and ``segments``: ``(epochs, edges)``
        for each training run, to count its cost.
    """
    total = sum(count for count, _ in epochs)
    if cycles < 1:
        raise NCGError(f"cycles must be >= 1, got {cycles}")
    if not 0 <= rewind_epochs < total:
        raise NCGError(f"rewind_epochs must be in [0, {total}) for a {total}-epoch schedule, got {rewind_epochs}")
    if not 0 <= target_edges <= model.edge_index.shape[1]:
        raise NCGError(f"target_edges must be in [0, {model.edge_index.shape[1]}], got {target_edges}")
    # The dense run is one run of the whole schedule (one optimiser, one shuffling), paused
    # after ``rewind_epochs`` to take the weights the tickets rewind to.
    optimizer = adam(model.parameters())
    generator = torch.Generator().manual_seed(seed)
    fit(model, train, None, stages_before(epochs, rewind_epochs), batch_size, task=task, optimizer=optimizer,
        generator=generator)
    rewind = copy.deepcopy(model.state_dict())
    rewind_weight = model.weight.detach().clone()
    later = stages_after(epochs, rewind_epochs)
    metrics = fit(model, train, val, later, batch_size, task=task, optimizer=optimizer, generator=generator)
    segments = [(total, int(model.edge_index.shape[1]))]
    for cycle in range(cycles):
        graph = model.graph
        keep = (target_edges / graph.num_edges) ** (1.0 / (cycles - cycle)) if graph.num_edges else 1.0
        count = graph.num_edges - max(target_edges, round(keep * graph.num_edges))
        edits = prune_edges(graph, graph.weight.abs().numpy(), tau=None, max_edits=count)
        pruned, maps = apply_edits(graph, edits, unreachable="ignore")
        rewind_weight = rewind_weight[maps.edge_map]
        ticket = NCG(pruned.edge_index, pruned.num_neurons, pruned.outputs, weight=rewind_weight,
                     bias=pruned.bias, order=pruned.order, neuron_ids=pruned.neuron_ids, validate=False,
                     inputs=pruned.inputs, **pruned.constraint)
        model.set_graph(ticket)
        with torch.no_grad():
            model.bias.copy_(rewind["bias"])  # edges alone were pruned: the same neurons hold biases
            if model.encoder is not None:
                model.encoder.weight.copy_(rewind["encoder.weight"])
            for name, value in model.decoder.state_dict().items():
                value.copy_(rewind[f"decoder.{name}"])
        metrics = fit(model, train, val, later, batch_size, seed + 2 + cycle, task)
        segments.append((total - rewind_epochs, int(model.edge_index.shape[1])))
    return {**metrics, "epochs": sum(e for e, _ in segments), "segments": segments}
