"""Export a FreeNet as a ``torch.export`` program, and the layout the other exports share.

:func:`to_module` turns a :class:`~ncg.model.FreeNet` into a plain ``torch.nn.Module`` whose
forward uses only standard torch ops (its edges, weights, biases and evaluation order are
buffers), which :func:`export_program` saves with ``torch.export`` (a ``.pt2`` file, with a
dynamic batch dimension, that runs without ncg). :mod:`ncg.io.onnx_export` lays the same function
out for onnxruntime, :mod:`ncg.io.export_c` as C.

Design
------
Both files lay the non-input neurons out in topological generations of the graph among them (input
nodes carry the features and are no part of it), hidden neurons before outputs inside a
generation, and hold per edge one flat index (int32; int64 only for very large graphs) into
weight tables built at run time by one scatter, and one weight: never a dense matrix over all
possible edges in the file. They differ past that, because ``torch.export`` and onnxruntime
reward different shapes.

:func:`to_module` (the ``torch.export`` program) keeps activations ``[batch, neurons]`` and
computes

* ``z = bias + x @ W_in``: with the graph encoder ``W_in`` (``[in_features, M]``) is scattered
  from the input edges (two thirds of the edges leave the inputs); a dense encoder's own weight
  is stored as it is;
* per generation ``g`` (neurons ``[s, s + k)``): ``h_g = act(z[:, s:s+k] + h[:, :s] @ W_g)``,
  where the slab ``W_g`` (``[s, k]``) is a slice of one buffer scattered from the hidden edges,
  and ``h = cat(h, h_g)``;
* the outputs ``h[:, outputs]``, then the decoder.

A ``.pt2`` file holds about 4.4 KB of graph per generation past the 8 bytes of an edge, and
rebuilds the slabs (``4 (F M + M^2 / 2)`` bytes for ``F`` inputs and ``M`` neurons) on every call.

The ONNX layout is :mod:`ncg.io.onnx_export`'s.

Examples
--------
>>> import torch
>>> from ncg import FreeNet
>>> from ncg.build import sparse_start
>>> net = FreeNet(sparse_start(num_inputs=6, num_hidden=5, num_outputs=2, fan_in=3, seed=0), in_features=6)
>>> module = to_module(net)
>>> x = torch.randn(4, 6)
>>> torch.allclose(module(x), net(x), atol=1e-6)
True
"""
from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ncg.activations import ACTIVATIONS
from ncg.io._common import check_net, check_path
from ncg.model import FreeNet
from ncg.schedule import topological_generations

__all__ = ["FreeNetModule", "to_module", "export_program"]

Activation = Callable[[Tensor], Tensor]

_ACTIVATIONS: dict[str, Activation] = {name: a.module() for name, a in ACTIVATIONS.items()}
"""Each activation's ``torch.nn`` module (standard ops only; identity returns its input as it is)."""

_EXAMPLE_BATCH = 2
"""Batch of the example input given to the exporters (0 and 1 would be specialised)."""


def _activate(z: Tensor, size: int, hidden: int, act: Activation, output_act: Activation, dim: int = 1) -> Tensor:
    """The first ``hidden`` of the ``size`` neurons along ``dim`` of ``z`` are hidden, the rest outputs."""
    if hidden == size:
        return act(z)
    if hidden == 0:
        return output_act(z)
    zh, zo = z.split([hidden, size - hidden], dim)
    return torch.cat([act(zh), output_act(zo)], dim)


def _index_dtype(bound: int) -> torch.dtype:
    """int32 when every index is below ``bound`` fits, else int64."""
    return torch.int32 if bound <= torch.iinfo(torch.int32).max else torch.int64


class FreeNetModule(nn.Module):
    """A FreeNet's function as a plain module: standard torch ops over buffers.

    Build it with :func:`to_module`. Buffers: ``bias`` (``[M]``, the non-input neurons in
    evaluation order); ``input_index`` / ``input_weight`` (graph encoder: flat index
    ``feature * M + slot`` and weight of each input edge) or ``encoder_weight``
    (``[in_features, M]``); ``hidden_index`` / ``hidden_weight`` (each edge between neurons:
    its flat index into the concatenated generation slabs, and its weight); ``output_slot``
    (``[num_outputs]``); ``decoder_weight`` / ``decoder_bias`` for a linear decoder.

    Attributes
    ----------
    blocks : tuple of (size, hidden)
        One per generation, in order: its number of neurons (consecutive slots), the first
        ``hidden`` of them hidden, the rest outputs.
    slab_sizes : list of int
        ``start * size`` for each generation after the first: the length of its slab
        ``[start, size]`` (``start`` is the number of slots before it) in the scattered
        ``hidden_weight``.
    """

    def __init__(self, net: FreeNet, blocks: tuple[tuple[int, int], ...], tables: dict[str, Tensor]) -> None:
        super().__init__()
        self.in_features, self.out_features = net.in_features, net.out_features
        self.activation, self.output_activation = net.activation, net.output_activation
        self.blocks = blocks
        self.num_slots = sum(size for size, _ in blocks)
        starts = itertools.accumulate(size for size, _ in blocks)
        self.slab_sizes = [start * size for start, (size, _) in zip(starts, blocks[1:])]
        for name, value in tables.items():
            self.register_buffer(name, value)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, in_features]`` (or ``[B, ...]``, flattened) to ``[B, out_features]``."""
        x = x.flatten(1).to(self.bias.dtype)
        if hasattr(self, "encoder_weight"):
            encoder = self.encoder_weight
        else:
            encoder = self.input_weight.new_zeros(1).expand(self.in_features * self.num_slots)
            encoder = encoder.scatter(0, self.input_index, self.input_weight).view(self.in_features, self.num_slots)
        z = torch.addmm(self.bias, x, encoder).split([size for size, _ in self.blocks], 1)
        act, output_act = _ACTIVATIONS[self.activation], _ACTIVATIONS[self.output_activation]
        h = _activate(z[0], *self.blocks[0], act, output_act)
        if self.slab_sizes:
            slabs = self.hidden_weight.new_zeros(1).expand(sum(self.slab_sizes))
            slabs = slabs.scatter(0, self.hidden_index, self.hidden_weight).split(self.slab_sizes)
            for zg, slab, (size, hidden) in zip(z[1:], slabs, self.blocks[1:]):
                zg = torch.addmm(zg, h, slab.view(-1, size))
                h = torch.cat([h, _activate(zg, size, hidden, act, output_act)], 1)
        y = h.index_select(1, self.output_slot)
        if hasattr(self, "decoder_weight"):
            y = torch.addmm(self.decoder_bias, y, self.decoder_weight.t())
        return y

    def extra_repr(self) -> str:
        edges = self.hidden_weight.numel() + (self.input_weight.numel() if hasattr(self, "input_weight") else 0)
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, neurons={self.num_slots}, "
            f"edges={edges}, generations={len(self.blocks)}"
        )


class _Layout(NamedTuple):
    """A FreeNet's non-input neurons in evaluation order ("slots") and its edges in slot terms.

    Slots follow the topological generations of the graph among the non-input neurons (input
    nodes carry the features and are no part of it), hidden neurons before outputs inside a
    generation, then the stored order. Edges keep the net's edge order.
    """

    sizes: list[int]
    """Neurons per generation (consecutive slots)."""
    hidden: list[int]
    """Hidden neurons per generation: its first slots; the rest are outputs."""
    generation: Tensor
    """``[M]``: each slot's generation."""
    bias: Tensor
    """``[M]``: each slot's bias."""
    input_edges: tuple[Tensor, Tensor, Tensor]
    """Feature, target slot and weight of each edge leaving an input node (graph encoder)."""
    hidden_edges: tuple[Tensor, Tensor, Tensor]
    """Source slot, target slot and weight of each edge between neurons."""
    encoder_weight: Tensor | None
    """``[M, in_features]``: a dense encoder's weight in slot order, else ``None``."""
    output_slot: Tensor
    """``[num_outputs]``: the output neurons' slots, in output order."""

    @property
    def num_slots(self) -> int:
        return len(self.generation)


def _layout(net: FreeNet) -> _Layout:
    """``net``'s slots and edges (on the CPU, detached, in its dtype)."""
    edge_index = net.edge_index.detach().cpu()
    weight, bias = net.weight.detach().cpu(), net.neuron_bias().detach().cpu()
    n = net.num_neurons
    is_input = torch.zeros(n, dtype=torch.bool)
    is_input[net.inputs.cpu()] = True
    is_output = torch.zeros(n, dtype=torch.bool)
    is_output[net.outputs.cpu()] = True
    src, dst = edge_index
    from_input = is_input[src]
    neuron_ids = torch.nonzero(~is_input).flatten()
    m = int(neuron_ids.numel())
    local = torch.full((n,), -1, dtype=torch.long)
    local[neuron_ids] = torch.arange(m)
    generation = topological_generations(torch.stack([local[src[~from_input]], local[dst[~from_input]]]), m)
    key = (generation * 2 + is_output[neuron_ids].long()) * n + net.order_position()[neuron_ids]
    order = torch.argsort(key)
    neurons = neuron_ids[order]
    slot = torch.full((n,), -1, dtype=torch.long)
    slot[neurons] = torch.arange(m)
    sizes = torch.bincount(generation, minlength=1).tolist()
    feature = torch.full((n,), -1, dtype=torch.long)
    encoder = None
    if net.encoder is None:  # the graph encoder: input node i carries feature i
        feature[net.inputs.cpu()] = torch.arange(net.in_features)
    else:
        encoder = net.encoder.weight.detach().cpu()[neurons].to(weight.dtype).clone()
    return _Layout(
        sizes=sizes,
        hidden=torch.bincount(generation[~is_output[neuron_ids]], minlength=len(sizes)).tolist(),
        generation=generation[order],
        bias=bias[neurons].clone(),
        input_edges=(feature[src[from_input]], slot[dst[from_input]], weight[from_input].clone()),
        hidden_edges=(slot[src[~from_input]], slot[dst[~from_input]], weight[~from_input].clone()),
        encoder_weight=encoder,
        output_slot=slot[net.outputs.cpu()],
    )


def _decoder_tables(net: FreeNet) -> dict[str, Tensor]:
    """``decoder_weight`` and ``decoder_bias`` of a linear decoder, in the net's dtype; else none."""
    if not isinstance(net.decoder, nn.Linear):
        return {}
    dtype = net.weight.dtype
    return {"decoder_weight": net.decoder.weight.detach().cpu().to(dtype).clone(),
            "decoder_bias": net.decoder.bias.detach().cpu().to(dtype).clone()}


def to_module(net: FreeNet) -> FreeNetModule:
    """A plain PyTorch module that computes exactly ``net(x)``, with no ncg code at run time.

    Parameters
    ----------
    net : FreeNet
        Any encoder (``graph``, ``linear`` or ``random``), decoder and activations. Its current
        weights are copied: later training of ``net`` does not change the module.

    Returns
    -------
    FreeNetModule
        In eval mode, without gradients, on the CPU, with ``net``'s dtype; its forward maps
        ``[B, in_features]`` (or ``[B, ...]``) to ``[B, out_features]``. See the module
        docstring for the layout and its cost.

    Raises
    ------
    NCGError
        ``net`` is not a FreeNet.

    Examples
    --------
    >>> import torch
    >>> from ncg import NCG, FreeNet
    >>> net = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=3, out_features=4, activation="tanh")
    >>> module = to_module(net)
    >>> module
    FreeNetModule(in_features=3, out_features=4, neurons=6, edges=15, generations=6)
    >>> x = torch.randn(5, 3)
    >>> torch.allclose(module(x), net(x), atol=1e-6)
    True
    """
    layout = _layout(check_net(net))
    size = torch.tensor(layout.sizes)
    start = torch.cumsum(size, 0) - size
    offset = torch.cumsum(start * size, 0) - start * size  # where each generation's slab begins
    src, dst, weight = layout.hidden_edges
    g = layout.generation[dst]
    tables = {"bias": layout.bias}
    flat = offset[g] + src * size[g] + dst - start[g]
    tables["hidden_index"] = flat.to(_index_dtype(int((start * size).sum())))
    tables["hidden_weight"] = weight
    if layout.encoder_weight is None:
        feature, slot, weight = layout.input_edges
        flat = feature * layout.num_slots + slot
        tables["input_index"] = flat.to(_index_dtype(net.in_features * layout.num_slots))
        tables["input_weight"] = weight
    else:
        tables["encoder_weight"] = layout.encoder_weight.t().contiguous()
    tables["output_slot"] = layout.output_slot
    tables.update(_decoder_tables(net))
    blocks = tuple(zip(layout.sizes, layout.hidden))
    return FreeNetModule(net, blocks, tables).eval().requires_grad_(False)


def _example_input(net: FreeNet) -> Tensor:
    return torch.zeros(_EXAMPLE_BATCH, net.in_features, dtype=net.weight.dtype)


def export_program(net: FreeNet, path: str | os.PathLike) -> Path:
    """Save ``net`` as a ``torch.export`` program (``.pt2``) with a dynamic batch dimension.

    Load and run it without ncg: ``torch.export.load(path).module()(x)`` with ``x``
    ``[B, in_features]``.

    Parameters
    ----------
    net : FreeNet
    path : str or os.PathLike
        The file to write; must end in ``.pt2``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NCGError
        ``net`` is not a FreeNet, or ``path`` does not end in ``.pt2``.

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> from ncg import NCG, FreeNet
    >>> net = FreeNet(NCG.complete(4, num_outputs=2, seed=0), in_features=3)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     program = torch.export.load(export_program(net, Path(folder) / "net.pt2")).module()
    >>> x = torch.randn(7, 3)
    >>> torch.allclose(program(x), net(x), atol=1e-6)
    True
    """
    net = check_net(net)
    path = check_path(path, ".pt2")
    batch = torch.export.Dim("batch")
    program = torch.export.export(to_module(net), (_example_input(net),), dynamic_shapes=({0: batch},))
    torch.export.save(program, path)
    return path
