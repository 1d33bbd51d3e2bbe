"""Carry out a list of edits: a new graph, index maps, and a model/optimiser rewired to it.

:func:`apply_edits` is pure: it returns a new :class:`~ncg.graph.NCG` and leaves its input
unchanged. Edits are applied by kind, in the order of :data:`~ncg.evolve.edits.EDIT_OPS`
(remove neurons, prune edges, add neurons, add edges). Surviving edges keep their weights and
their relative order (new edges are appended), surviving neurons keep their bias and relative
order, so an empty edit list returns an identical graph.

:func:`rewire` then moves a :class:`~ncg.model.FreeNet` onto the new graph and remaps the
optimiser state (e.g. Adam moments) of surviving edges and neurons; new ones start from zero
(Adam's second moment from the surviving entries' mean, see :func:`remap_optimizer`).

Examples
--------
>>> from ncg import NCG
>>> from ncg.evolve.edits import Edit
>>> g = NCG.complete(3, num_outputs=1, seed=0)
>>> new, maps = apply_edits(g, [Edit("prune_edge", 0, 2)])
>>> new.edge_index.tolist(), maps.edge_map.tolist()
([[0, 1], [1, 2]], [0, 2])
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ncg.errors import EditError
from ncg.evolve.edits import EDIT_OPS, Edit
from ncg.graph import NCG

__all__ = ["EditMaps", "apply_edits", "rewire", "remap_optimizer"]


@dataclass(frozen=True)
class EditMaps:
    """How the new graph's edges and neurons relate to the old ones.

    ``edge_map[e]`` is the old index of new edge ``e`` (``-1`` if added); ``neuron_map[v]`` the
    old index of new neuron ``v`` (``-1`` if added).
    """

    edge_map: Tensor
    neuron_map: Tensor


def _index_of(uid_to_index: dict[int, int], uid: int, edit: Edit) -> int:
    if uid not in uid_to_index:
        raise EditError(f"{edit} names neuron id {uid}, which is not in the graph")
    return uid_to_index[uid]


def _indices_of(neuron_ids: np.ndarray, uids: np.ndarray) -> np.ndarray:
    """Index of each stable id in ``neuron_ids``, ``-1`` where absent (vectorised lookup)."""
    sorter = np.argsort(neuron_ids)
    loc = np.minimum(np.searchsorted(neuron_ids[sorter], uids), max(neuron_ids.size - 1, 0))
    found = neuron_ids[sorter][loc] == uids
    return np.where(found, sorter[loc], -1)


def apply_edits(graph: NCG, edits: list[Edit], unreachable: str = "warn") -> tuple[NCG, EditMaps]:
    """Apply ``edits`` to ``graph`` and return the new graph and the index maps.

    Raises
    ------
    EditError
        An edit names an unknown neuron, removes an output or input node, prunes a missing
        edge, adds an existing edge, adds an edge into an input node, or adds an edge that goes
        backward in the topological order (which could close a cycle).
    """
    by_op: dict[str, list[Edit]] = {op: [] for op in EDIT_OPS}
    for edit in edits:
        by_op[edit.op].append(edit)
    n = graph.num_neurons
    ids = graph.neuron_ids.tolist()
    uid_to_index = {uid: i for i, uid in enumerate(ids)}
    roles = graph.roles

    keep_neuron = torch.ones(n, dtype=torch.bool)
    for edit in by_op["remove_neuron"]:
        v = _index_of(uid_to_index, edit.source, edit)
        if roles[v] != NCG.HIDDEN:
            kind = "output" if roles[v] == NCG.OUTPUT else "input node"
            raise EditError(f"{edit} would remove {kind} {edit.source}; only hidden neurons are removed")
        keep_neuron[v] = False

    src, dst = graph.edge_index
    keep_edge = keep_neuron[src] & keep_neuron[dst]
    prunes = by_op["prune_edge"]
    if prunes:
        keys = (src * n + dst).numpy()
        sorter = np.argsort(keys)
        sorted_keys = keys[sorter]
        ends = np.array([(e.source, e.target) for e in prunes], dtype=np.int64)
        index = _indices_of(graph.neuron_ids.numpy(), ends.ravel()).reshape(-1, 2)
        if (index < 0).any():
            bad = int(np.argmax((index < 0).any(1)))
            missing = ends[bad][index[bad] < 0][0]
            raise EditError(f"{prunes[bad]} names neuron id {missing}, which is not in the graph")
        wanted = index[:, 0] * n + index[:, 1]
        loc = np.minimum(np.searchsorted(sorted_keys, wanted), max(keys.size - 1, 0))
        found = sorted_keys[loc] == wanted if keys.size else np.zeros(wanted.size, dtype=bool)
        if not found.all():
            raise EditError(f"{prunes[int(np.argmin(found))]} prunes an edge that is not in the graph")
        keep_edge[torch.from_numpy(sorter[loc])] = False

    # New numbering: survivors in old index order, then added neurons in edit order.
    survivors = torch.nonzero(keep_neuron).flatten()
    new_index = {int(old): new for new, old in enumerate(survivors.tolist())}
    order = [new_index[v] for v in graph.order.tolist() if keep_neuron[v]]
    new_ids = [ids[v] for v in survivors.tolist()]
    neuron_map = survivors.tolist()
    uid_to_new = {ids[v]: new_index[v] for v in survivors.tolist()}
    for edit in by_op["add_neuron"]:
        if edit.target in uid_to_new or edit.target in uid_to_index:
            raise EditError(f"{edit} adds neuron id {edit.target}, which already exists")
        slot = len(new_ids)
        if edit.source == -1:
            order.insert(0, slot)
        else:
            anchor = uid_to_new.get(edit.source)
            if anchor is None:
                raise EditError(f"{edit} inserts after neuron {edit.source}, which is not in the graph")
            order.insert(order.index(anchor) + 1, slot)
        uid_to_new[edit.target] = slot
        new_ids.append(edit.target)
        neuron_map.append(-1)
    num_new = len(new_ids)
    position = np.empty(num_new, dtype=np.int64)
    position[order] = np.arange(num_new)

    old_to_new = torch.full((n,), -1, dtype=torch.long)
    old_to_new[survivors] = torch.arange(survivors.numel())
    kept = torch.nonzero(keep_edge).flatten()
    adds = by_op["add_edge"]
    add_src, add_dst = [], []
    for edit in adds:
        for uid, column in ((edit.source, add_src), (edit.target, add_dst)):
            if uid not in uid_to_new:
                raise EditError(f"{edit} names neuron id {uid}, which is not in the graph")
            column.append(uid_to_new[uid])
    add_src_np, add_dst_np = np.array(add_src, dtype=np.int64), np.array(add_dst, dtype=np.int64)
    kept_keys = (old_to_new[src[kept]] * num_new + old_to_new[dst[kept]]).numpy()
    add_keys = add_src_np * num_new + add_dst_np
    _, first = np.unique(add_keys, return_index=True)
    repeated = np.ones(add_keys.size, dtype=bool)
    repeated[first] = False
    clash = np.isin(add_keys, kept_keys) | repeated
    if clash.any():
        raise EditError(f"{adds[int(np.argmax(clash))]} adds an edge that already exists")
    into_input = np.isin(add_dst_np, old_to_new[graph.inputs].numpy())
    if into_input.any():
        raise EditError(f"{adds[int(np.argmax(into_input))]} enters an input node; input nodes take no incoming edges")
    backward = position[add_src_np] >= position[add_dst_np]
    if backward.any():
        raise EditError(
            f"{adds[int(np.argmax(backward))]} goes backward in the topological order and could close a "
            "cycle; edges may only be added from earlier to later neurons"
        )
    new_src = torch.cat([old_to_new[src[kept]], torch.from_numpy(add_src_np)])
    new_dst = torch.cat([old_to_new[dst[kept]], torch.from_numpy(add_dst_np)])
    added_weights = [edit.weight for edit in adds]

    bias = graph.bias.new_zeros(num_new)
    bias[: survivors.numel()] = graph.bias[survivors]
    new_graph = NCG(
        torch.stack([new_src, new_dst]),
        num_new,
        old_to_new[graph.outputs],
        weight=torch.cat([graph.weight[kept], torch.tensor(added_weights, dtype=graph.weight.dtype)]),
        bias=bias,
        order=torch.tensor(order, dtype=torch.long),
        neuron_ids=torch.tensor(new_ids, dtype=torch.long),
        unreachable=unreachable,
        inputs=old_to_new[graph.inputs],
    )
    edge_map = torch.cat([kept, torch.full((len(added_weights),), -1, dtype=torch.long)])
    return new_graph, EditMaps(edge_map, torch.tensor(neuron_map, dtype=torch.long))


def _remap_tensor(value, old_shape: torch.Size, index: Tensor | None, fill_with_mean: bool = False):
    if index is None or not isinstance(value, Tensor) or value.shape != old_shape:
        return value
    out = value.new_zeros((index.numel(), *old_shape[1:]))
    kept = index >= 0
    out[kept.to(value.device)] = value[index[kept].to(value.device)]
    if fill_with_mean and kept.any() and not kept.all():
        out[~kept.to(value.device)] = out[kept.to(value.device)].mean(0)
    return out


_SCALE_STATES = ("exp_avg_sq", "max_exp_avg_sq")
"""Optimiser states that estimate a gradient's scale (Adam, AdamW, AMSGrad): new entries take
the mean of the surviving ones instead of 0."""


def remap_optimizer(
    optimizer: torch.optim.Optimizer,
    old_params: dict[str, Tensor],
    new_params: dict[str, Tensor],
    index_maps: dict[str, Tensor],
) -> None:
    """Point ``optimizer`` at ``new_params`` and carry per-parameter state across.

    State tensors shaped like a parameter are re-indexed along dim 0 with ``index_maps[name]``;
    scalar state such as Adam's ``step`` is kept. New rows start at zero, except Adam's second
    moment (``exp_avg_sq``), which starts at the mean of the surviving rows: with a zero second
    moment and the tensor's large shared ``step``, bias correction would make a new entry's first
    updates about ``(1 - beta1) / sqrt(1 - beta2)`` (3.2 for the defaults) times the learning
    rate; from the mean they are at most that and typically below the learning rate.
    """
    name_of = {id(p): name for name, p in old_params.items()}
    for group in optimizer.param_groups:
        group["params"] = [new_params[name_of[id(p)]] if id(p) in name_of else p for p in group["params"]]
    for name, old in old_params.items():
        state = optimizer.state.pop(old, None)
        if state is not None:
            index = index_maps.get(name)
            optimizer.state[new_params[name]] = {
                k: _remap_tensor(v, old.shape, index, fill_with_mean=k in _SCALE_STATES) for k, v in state.items()
            }


def rewire(model, graph: NCG, maps: EditMaps, optimizer: torch.optim.Optimizer | None = None) -> None:
    """Move ``model`` (a FreeNet) onto ``graph`` and remap ``optimizer``'s state.

    Encoder rows and biases follow their neurons, edge weights their edges; Adam moments (or
    SGD momentum) of surviving parameters are kept, those of new edges and neurons start at 0
    (Adam's second moment at the surviving entries' mean, see :func:`remap_optimizer`).
    """
    old_params = dict(model.named_parameters())
    model.set_graph(graph, neuron_map=maps.neuron_map)
    if optimizer is not None:
        remap_optimizer(
            optimizer,
            old_params,
            dict(model.named_parameters()),
            {"weight": maps.edge_map, "bias": maps.neuron_map, "encoder.weight": maps.neuron_map},
        )
