"""Carry out a round's edits: a new graph, index maps, and a model/optimiser rewired to it.

:func:`apply_edits` is pure: it returns a new :class:`~ncg.graph.NCG` and leaves its input
unchanged. Edits (an :class:`~ncg.evolve.edits.EditSet`, or :class:`~ncg.evolve.edits.Edit` tuples) are
applied by kind, in the order of :data:`~ncg.evolve.edits.EDIT_OPS`
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

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ncg.arrays import index_in, is_member
from ncg.errors import EditError
from ncg.evolve.edits import Edit, EditSet
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


def _lookup(find: Callable[[np.ndarray], np.ndarray], uids: np.ndarray, edits: EditSet) -> np.ndarray:
    """Indices of ``uids`` (a column of ``edits``) by ``find`` (:func:`ncg.arrays.index_in` of
    the neuron ids); an :class:`EditError` naming the first edit whose id is not there."""
    index = find(uids)
    if (index < 0).any():
        k = int(np.argmax(index < 0))
        raise EditError(f"{edits[k]} names neuron id {int(uids[k])}, which is not in the graph")
    return index


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _insert_neurons(added: EditSet, order: np.ndarray, new_ids: np.ndarray,
                    layer: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The order with each ``add_neuron`` edit's neuron (numbered from ``len(new_ids)`` on)
    inserted right after its anchor (``source``; ``-1``: at the front), in edit order; and, on
    a layered graph (``layer`` of the survivors given), the layers extended with each new
    neuron in the layer after its anchor's."""
    layer_list = None if layer is None else layer.tolist()
    order_list = order.tolist()
    uid_to_new = {}
    survivor_anchor = index_in(new_ids)(added.source)
    for k in range(len(added)):
        target = int(added.target[k])
        if target in uid_to_new:
            raise EditError(f"{added[k]} adds neuron id {target}, which already exists")
        slot = new_ids.size + k
        if added.source[k] == -1:
            if layer_list is not None:
                raise EditError(f"{added[k]} inserts at the front of a layered graph; insert after a neuron, "
                                "whose next layer the new one joins")
            order_list.insert(0, slot)
        else:
            anchor = uid_to_new.get(int(added.source[k]), int(survivor_anchor[k]))
            if anchor < 0:
                raise EditError(f"{added[k]} inserts after neuron {int(added.source[k])}, which is not in the graph")
            order_list.insert(order_list.index(anchor) + 1, slot)
            if layer_list is not None:
                layer_list.append(layer_list[anchor] + 1)
        uid_to_new[target] = slot
    return np.array(order_list, dtype=np.int64), None if layer_list is None else np.array(layer_list, dtype=np.int64)


def apply_edits(graph: NCG, edits: EditSet | Iterable[Edit], unreachable: str = "warn") -> tuple[NCG, EditMaps]:
    """Apply ``edits`` to ``graph`` and return the new graph and the index maps.

    Every kind is applied with array operations (sorted-key lookups), so the cost is
    O((E + K) log(E + K)) for ``K`` edits; only ``add_neuron`` edits, which are few, are
    inserted one at a time.

    Parameters
    ----------
    graph : NCG
    edits : EditSet or iterable of Edit
        The round's edits (converted with :meth:`EditSet.from_edits`).
    unreachable : {"warn", "ignore", "raise"}
        What the new graph does about neurons without a path to an output (see :class:`NCG`).

    Raises
    ------
    EditError
        An edit names an unknown neuron, removes an output or input node, prunes a missing
        edge, adds an existing edge, adds an edge into an input node, adds an edge that goes
        backward in the topological order (which could close a cycle) or that the graph's
        topology constraint forbids, or adds a neuron a layered graph has no layer for.

    Notes
    -----
    On a graph with a topology constraint (:mod:`ncg.layers`) a new neuron joins the layer
    after its anchor's (the neuron it is inserted after).
    """
    edits = EditSet.from_edits(edits)
    n = graph.num_neurons
    ids = graph.neuron_ids.numpy()
    find_old = index_in(ids)

    keep_neuron = np.ones(n, dtype=bool)
    removed = edits.select(edits.mask("remove_neuron"))
    if len(removed):
        v = _lookup(find_old, removed.source, removed)
        roles = graph.roles.numpy()[v]
        if (roles != NCG.HIDDEN).any():
            k = _first(roles != NCG.HIDDEN)
            kind = "output" if roles[k] == NCG.OUTPUT else "input node"
            raise EditError(f"{removed[k]} would remove {kind} {int(removed.source[k])}; only hidden neurons are removed")
        keep_neuron[v] = False

    src, dst = graph.edge_index.numpy()
    keep_edge = keep_neuron[src] & keep_neuron[dst]
    prunes = edits.select(edits.mask("prune_edge"))
    if len(prunes):
        wanted = _lookup(find_old, prunes.source, prunes) * n + _lookup(find_old, prunes.target, prunes)
        edge = index_in(src.astype(np.int64) * n + dst)(wanted)
        if (edge < 0).any():
            raise EditError(f"{prunes[_first(edge < 0)]} prunes an edge that is not in the graph")
        keep_edge[edge] = False

    # New numbering: survivors in old index order, then added neurons in edit order.
    survivors = np.flatnonzero(keep_neuron)
    old_to_new = np.full(n, -1, dtype=np.int64)
    old_to_new[survivors] = np.arange(survivors.size)
    order = graph.order.numpy()
    order = old_to_new[order[keep_neuron[order]]]
    layer = None if graph.layer is None else graph.layer.numpy()[survivors]
    added = edits.select(edits.mask("add_neuron"))
    if len(added):
        clash = find_old(added.target) >= 0
        if clash.any():
            raise EditError(f"{added[_first(clash)]} adds neuron id {int(added.target[_first(clash)])}, which already exists")
        order, layer = _insert_neurons(added, order, ids[survivors], layer)
    new_ids = np.concatenate([ids[survivors], added.target])
    num_new = new_ids.size
    position = np.empty(num_new, dtype=np.int64)
    position[order] = np.arange(num_new)

    kept = np.flatnonzero(keep_edge)
    adds = edits.select(edits.mask("add_edge"))
    find_new = index_in(new_ids)
    add_src, add_dst = _lookup(find_new, adds.source, adds), _lookup(find_new, adds.target, adds)
    kept_src, kept_dst = old_to_new[src[kept]], old_to_new[dst[kept]]
    add_keys = add_src * num_new + add_dst
    _, first = np.unique(add_keys, return_index=True)
    repeated = np.ones(add_keys.size, dtype=bool)
    repeated[first] = False
    clash = is_member(add_keys, kept_src * num_new + kept_dst) | repeated
    if clash.any():
        raise EditError(f"{adds[_first(clash)]} adds an edge that already exists")
    inputs = old_to_new[graph.inputs.numpy()]
    into_input = is_member(add_dst, inputs)
    if into_input.any():
        raise EditError(f"{adds[_first(into_input)]} enters an input node; input nodes take no incoming edges")
    backward = position[add_src] >= position[add_dst]
    if backward.any():
        raise EditError(
            f"{adds[_first(backward)]} goes backward in the topological order and could close a "
            "cycle; edges may only be added from earlier to later neurons"
        )
    constraint = {"layer": None, "allowed_layers": None}
    if layer is not None:
        constraint = {"layer": torch.from_numpy(layer), "allowed_layers": graph.allowed_layers}
        if (layer >= graph.allowed_layers.shape[0]).any():
            k = _first(layer[survivors.size:] >= graph.allowed_layers.shape[0])
            raise EditError(f"{added[k]} would put a neuron after the last layer of the topology constraint")
        forbidden = ~graph.allowed_layers.numpy()[layer[add_src], layer[add_dst]]
        if forbidden.any():
            k = _first(forbidden)
            raise EditError(f"{adds[k]} joins layer {layer[add_src[k]]} to layer {layer[add_dst[k]]}, which the "
                            "graph's topology constraint (allowed_layers) forbids")

    bias = graph.bias.new_zeros(num_new)
    bias[: survivors.size] = graph.bias[torch.from_numpy(survivors)]
    kept_t = torch.from_numpy(kept)
    new_graph = NCG(
        torch.from_numpy(np.stack([np.concatenate([kept_src, add_src]), np.concatenate([kept_dst, add_dst])])),
        num_new,
        torch.from_numpy(old_to_new[graph.outputs.numpy()]),
        weight=torch.cat([graph.weight[kept_t], torch.from_numpy(adds.weight).to(graph.weight.dtype)]),
        bias=bias,
        order=torch.from_numpy(order),
        neuron_ids=torch.from_numpy(new_ids),
        unreachable=unreachable,
        inputs=torch.from_numpy(inputs),
        **constraint,
    )
    edge_map = torch.from_numpy(np.concatenate([kept, np.full(len(adds), -1, dtype=np.int64)]))
    neuron_map = torch.from_numpy(np.concatenate([survivors, np.full(len(added), -1, dtype=np.int64)]))
    return new_graph, EditMaps(edge_map, neuron_map)


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
    (Adam's second moment at the surviving entries' mean, see :func:`remap_optimizer`). The
    parameter ``bias`` holds the non-input neurons alone (:attr:`FreeNet.bias_neurons`), so its
    entries are remapped through those neurons.
    """
    old_params = dict(model.named_parameters())
    old_slot = torch.full((model.num_neurons,), -1, dtype=torch.long)
    old_slot[model.bias_neurons.cpu()] = torch.arange(model.bias.numel())
    model.set_graph(graph, neuron_map=maps.neuron_map)
    if optimizer is not None:
        source = maps.neuron_map[model.bias_neurons.cpu()]
        bias_map = torch.where(source >= 0, old_slot[source.clamp(min=0)], -1)
        remap_optimizer(
            optimizer,
            old_params,
            dict(model.named_parameters()),
            {"weight": maps.edge_map, "bias": bias_map, "encoder.weight": maps.neuron_map},
        )
