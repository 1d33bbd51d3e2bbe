"""Export a FreeNet as an ONNX file for onnxruntime.

:func:`to_onnx_module` lays a :class:`~ncg.model.FreeNet` out as a plain ``torch.nn.Module``
shaped for onnxruntime, and :func:`export_onnx` saves it as an ONNX file with a dynamic batch
dimension that runs without ncg. The file holds per edge one flat index into weight tables
built when the session loads, and one weight, as the ``.pt2`` program of :mod:`ncg.io.export`
does (the layout both share).

Design
------
:func:`to_onnx_module` (what :func:`export_onnx` writes) keeps activations ``[neurons, batch]``,
so that picking neurons is a ``Gather`` of whole rows, and reads only what each generation needs:

* the input block: a dense block ``[slots, features]`` over the busiest input features and the
  busiest neurons, sized by a cost model (a cell of the block costs 1, an input edge left out
  :data:`_GATHER_COST`), and every other input edge gathered per neuron: neurons in buckets of
  similar fan-in (padded to the widest, at most :data:`_BUCKET_AREA` edges a bucket), each
  bucket one ``Gather`` of ``[neurons, fan_in, batch]`` and one batched ``MatMul`` by its
  weights ``[neurons, 1, fan_in]``; then ``z = bias + dense rows + bucket rows``;
* per generation ``g``: ``h_g = act(z_g + W_g @ inputs_g)`` (one ``Gemm``, fused with a relu)
  where ``inputs_g`` is the rows its edges read: the older ones gathered from a *state* (the
  activations of all generations up to its last refresh, refreshed by one ``Concat`` every
  :data:`_REFRESH` generations, so that copying stays O(M) per refresh instead of per
  generation), then the activations of the recent generations it reads, concatenated; ``W_g``
  (``[k, columns]``) has a column per row read, not per earlier neuron;
* the outputs: a ``Gather`` of their rows, transposed, then the decoder.

The TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, constant folding off, so
the scatters stay in the graph: folding would store the dense tables) writes that module; then
the nodes that read initializers only (the scatter, its splits) stay in the main graph, where
onnxruntime folds them once, when it loads the file, and all the others become the body of an
ONNX ``Loop`` over :data:`_CHUNK` rows of the batch at a time, whose state then stays in the
caches. Below :data:`_SMALL_BATCH` rows the file runs the slab layout of
:func:`~ncg.io.export.to_module` instead, exported the same way into the same file and chosen by
an ONNX ``If`` on the batch: its fewer, larger kernels win at small batches. It needs only the
``onnx`` package. torch deprecates the TorchScript exporter; :func:`export_onnx` silences that
warning.

Measured with ``python benchmarks/bench_onnx.py --run DIR`` on the main job's learned net
(39,478 edges: 26,477 from 689 used input features into 507 neurons, 13,001 among them, 110
generations; one thread, AMD EPYC with AVX-512, onnxruntime 1.32) against MLP 784-512-10
exported the same way, in three runs: 1.34-1.52x its time at batch 256 (2.52-2.85 against
1.89-1.93 ms), 1.08-1.26x at batch 10,000, 8.5x at batch 1 (0.26 against 0.03 ms, the slab
layout; the gathering layout alone took 0.62). The slab layout alone (the benchmark's ``slab``
row) took 2.71-2.91x and 3.29-3.51x at 256 and 10,000. The file holds 23.3 bytes per edge, both
layouts (the slab form alone 9.6).

The loop's body runs about 420 kernels (a Gather, a Concat and a fused Gemm per generation; the
buckets), about 1.5 us each at batch 1: at batch 256 that overhead is a third of the MLP's time.
The input block alone (a dense ``96 x 507`` block holding 10,086 of the input edges, the other
16,391 gathered in 21 buckets of 17,209 padded slots) takes 0.67x, the generations the rest.
That is about the floor of this layout in onnxruntime's standard operators, which offer no
sparse product by a stored matrix (``com.microsoft.SparseToDenseMatMul`` takes its sparse operand
only as a graph input: onnxruntime makes sparse initializers and constants dense when it loads a
file) and no update in place (``ScatterND`` copies its whole input: a state updated that way took
2.5x the MLP at batch 256).

Examples
--------
>>> import torch
>>> from ncg import FreeNet
>>> from ncg.build import sparse_start
>>> net = FreeNet(sparse_start(num_inputs=6, num_hidden=5, num_outputs=2, fan_in=3, seed=0), in_features=6)
>>> module = to_onnx_module(net)
>>> x = torch.randn(4, 6)
>>> torch.allclose(module(x), net(x), atol=1e-6)
True
"""
from __future__ import annotations

import importlib.util
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from ncg.errors import NCGError
from ncg.io._common import check_net, check_path
from ncg.io.export import (_ACTIVATIONS, _activate, _decoder_tables, _example_input, _index_dtype, _Layout, _layout,
                           to_module)
from ncg.model import FreeNet

if TYPE_CHECKING:
    import onnx

__all__ = ["OnnxFreeNetModule", "to_onnx_module", "export_onnx"]


_REFRESH = 12
"""Generations between two refreshes of the gathered state of :class:`OnnxFreeNetModule` (8, 12
and 16 timed alike on the main job's net)."""

_GATHER_COST = 8.0
"""What an input edge left out of the dense input block costs, in cells of the block: the
trade-off that sizes the block (3 to 24 timed on the main job's net; 5 to 12 alike)."""

_BUCKET_GROWTH = 1.25
"""A bucket of neurons gathering their input edges spans fan-ins up to this factor (plus one)."""

_BUCKET_AREA = 1024
"""At most this many padded edges per bucket (unless one neuron has more), so that a bucket's
gathered rows stay in the caches: 1.30x the MLP's time at batch 1,024 against 1.40x with 4,096."""

_SMALL_BATCH = 32
"""Below this many rows the file runs the slab layout of :func:`~ncg.io.export.to_module`
instead (an ONNX ``If``): its fewer, larger kernels win there. Measured on the main job's net
against this layout: 0.20 against 0.61 ms at batch 1, 0.48 against 0.69 at 16, 0.79 against 0.77
at 32, 1.36 against 0.96 at 64."""

_CHUNK = 512
"""Rows of the batch per iteration of the ONNX ``Loop``: batch 10,000 in one piece took 1.9-2.3x
the MLP's time, in chunks of 256 to 1,024 rows 1.15-1.25x."""


class _Step(NamedTuple):
    """One generation after the first in :class:`OnnxFreeNetModule`."""

    size: int
    """Its neurons (consecutive slots)."""
    hidden: int
    """The first ``hidden`` of them are hidden, the rest outputs."""
    refresh: bool
    """The gathered state takes in the generations since its last refresh before this one."""
    gathered: int
    """Sources read from the gathered state (the first columns of its slab)."""
    recent: tuple[int, ...]
    """Earlier generations since the last refresh read whole (the next columns, in turn)."""
    columns: int
    """Columns of its slab ``[size, columns]``: ``gathered`` plus the recent generations' sizes."""


class _Plan(NamedTuple):
    """The shapes :class:`OnnxFreeNetModule` unrolls its forward over."""

    first: tuple[int, int]
    """``(size, hidden)`` of the first generation."""
    steps: tuple[_Step, ...]
    """The other generations, in order."""
    dense_shape: tuple[int, int]
    """The dense input block ``[slots, features]``; ``(0, 0)``: none."""
    buckets: tuple[tuple[int, int], ...]
    """``(neurons, fan_in)`` of each bucket of gathered input edges: weights ``[neurons, 1, fan_in]``."""
    output_generations: tuple[int, ...]
    """The generations holding outputs, in order: ``output_rows`` indexes their activations."""


class OnnxFreeNetModule(nn.Module):
    """A FreeNet's function laid out for ONNX Runtime: activations ``[neurons, batch]``.

    Build it with :func:`to_onnx_module`; the module docstring gives the design. Buffers:
    ``bias`` (``[M]``, slot order); ``pool_index`` / ``pool_weight`` (each edge's flat position
    in the pool of run-time weights, and its weight); ``dense_features`` (the dense input
    block's columns); ``bucket_features`` (each bucket's padded input features, flat);
    ``input_rows`` (``[1 or 2, M]``: each slot's rows in the input table, summed); ``sources``
    (the gathered sources of all steps, flat); ``output_rows``; or ``encoder_weight``
    (``[M, in_features]``) for a dense encoder; ``decoder_weight`` / ``decoder_bias``.

    Attributes
    ----------
    plan : _Plan
        The generations, the dense input block and the buckets the forward unrolls over.
    sizes : list of int
        Neurons per generation.
    pieces : list of int
        Lengths of the pool's pieces: the dense input block, the buckets, one slab per step.
    """

    def __init__(self, net: FreeNet, plan: _Plan, tables: dict[str, Tensor]) -> None:
        super().__init__()
        self.in_features, self.out_features = net.in_features, net.out_features
        self.activation, self.output_activation = net.activation, net.output_activation
        self.plan = plan
        self.sizes = [plan.first[0]] + [step.size for step in plan.steps]
        rows, columns = plan.dense_shape
        self.pieces = ([rows * columns] if rows else []) + [n * f for n, f in plan.buckets] + [
            step.size * step.columns for step in plan.steps]
        for name, value in tables.items():
            self.register_buffer(name, value)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, in_features]`` (or ``[B, ...]``, flattened) to ``[B, out_features]``."""
        xt = x.flatten(1).to(self.bias.dtype).t()
        pieces = iter(self._pool())
        z = self._input_block(xt, pieces).split(self.sizes)
        act, output_act = _ACTIVATIONS[self.activation], _ACTIVATIONS[self.output_activation]
        h = [_activate(z[0], *self.plan.first, act, output_act, dim=0)]
        sources = iter(self.sources.split([step.gathered for step in self.plan.steps if step.gathered]))
        state, since = None, 0
        for g, (step, zg) in enumerate(zip(self.plan.steps, z[1:]), 1):
            if step.refresh:
                state = torch.cat(([] if state is None else [state]) + h[since:g])
                since = g
            parts = [h[j] for j in step.recent]
            if step.gathered:
                parts.insert(0, state.index_select(0, next(sources)))
            inputs = parts[0] if len(parts) == 1 else torch.cat(parts)
            zg = torch.addmm(zg, next(pieces).view(step.size, step.columns), inputs)
            h.append(_activate(zg, step.size, step.hidden, act, output_act, dim=0))
        outputs = [h[g] for g in self.plan.output_generations]
        y = (outputs[0] if len(outputs) == 1 else torch.cat(outputs)).index_select(0, self.output_rows).t()
        if hasattr(self, "decoder_weight"):
            y = torch.addmm(self.decoder_bias, y, self.decoder_weight.t())
        return y

    def _pool(self) -> tuple[Tensor, ...]:
        """The run-time weights: one scatter of the edges' weights into zeros, split in pieces."""
        if not self.pieces:
            return ()
        pool = self.pool_weight.new_zeros(1).expand(sum(self.pieces))
        return pool.scatter(0, self.pool_index, self.pool_weight).split(self.pieces)

    def _input_block(self, xt: Tensor, pieces: Iterator[Tensor]) -> Tensor:
        """``z = bias + input contributions``, ``[M, B]``."""
        bias = self.bias.unsqueeze(1)
        if hasattr(self, "encoder_weight"):
            return torch.addmm(bias, self.encoder_weight, xt)
        rows = []
        if self.plan.dense_shape[0]:
            block = next(pieces).view(self.plan.dense_shape)
            rows.append(block @ xt.index_select(0, self.dense_features))
        features = self.bucket_features.split([n * f for n, f in self.plan.buckets])
        for (n, f), feature in zip(self.plan.buckets, features):
            gathered = xt.index_select(0, feature).view(n, f, -1)
            rows.append(torch.matmul(next(pieces).view(n, 1, f), gathered).view(n, -1))
        rows.append(torch.zeros_like(xt[:1]))
        table = torch.cat(rows)
        z = table.index_select(0, self.input_rows[0]) + bias
        if self.plan.dense_shape[0]:
            z = z + table.index_select(0, self.input_rows[1])
        return z

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, neurons={sum(self.sizes)}, "
            f"edges={self.pool_weight.numel()}, generations={len(self.sizes)}, "
            f"dense_input_block={self.plan.dense_shape}, buckets={len(self.plan.buckets)}"
        )


def _dense_block(feature: Tensor, slot: Tensor, num_features: int, num_slots: int, cost: float
                 ) -> tuple[Tensor, Tensor]:
    """The features and slots (sorted) of the dense input block: the busiest features times the
    busiest slots, sized to minimise ``features * slots + cost * (edges left out)`` over a grid of
    at most 64 x 64 sizes. Both empty where no block beats gathering every edge."""
    edges = feature.numel()
    if edges == 0:
        return feature[:0], slot[:0]
    rank_f = torch.argsort(torch.argsort(-torch.bincount(feature, minlength=num_features), stable=True))
    rank_s = torch.argsort(torch.argsort(-torch.bincount(slot, minlength=num_slots), stable=True))
    step_f, step_s = -(-num_features // 64), -(-num_slots // 64)
    cells_f, cells_s = -(-num_features // step_f), -(-num_slots // step_s)
    cell = (rank_f[feature] // step_f) * cells_s + rank_s[slot] // step_s
    inside = torch.bincount(cell, minlength=cells_f * cells_s).view(cells_f, cells_s).cumsum(0).cumsum(1)
    count_f = torch.clamp(torch.arange(1, cells_f + 1) * step_f, max=num_features)
    count_s = torch.clamp(torch.arange(1, cells_s + 1) * step_s, max=num_slots)
    total = (count_f[:, None] * count_s[None, :]).double() + cost * (edges - inside).double()
    best = int(torch.argmin(total))
    if total.flatten()[best] >= cost * edges:
        return feature[:0], slot[:0]
    a, b = count_f[best // cells_s], count_s[best % cells_s]
    return torch.nonzero(rank_f < a).flatten(), torch.nonzero(rank_s < b).flatten()


def _buckets(fan_in: Tensor) -> list[Tensor]:
    """The slots with edges, by fan-in, grouped so that a bucket's widest is at most
    :data:`_BUCKET_GROWTH` times its narrowest plus one."""
    order = torch.argsort(fan_in, stable=True)
    order = order[fan_in[order] > 0].tolist()
    buckets: list[list[int]] = []
    for slot in order:
        fan = int(fan_in[slot])
        too_wide = bool(buckets) and fan > _BUCKET_GROWTH * int(fan_in[buckets[-1][0]]) + 1
        if not buckets or too_wide or (len(buckets[-1]) + 1) * fan > _BUCKET_AREA:
            buckets.append([])
        buckets[-1].append(slot)
    return [torch.tensor(bucket) for bucket in buckets]


def _input_plan(layout: _Layout, num_features: int, cost: float
                ) -> tuple[tuple[int, int], tuple[tuple[int, int], ...], dict[str, Tensor], Tensor, int]:
    """The graph encoder's input block: a dense block of the busiest features and slots, the
    other input edges gathered per slot, in buckets of similar fan-in.

    Returns the dense block's shape ``(slots, features)`` (``(0, 0)``: none), the buckets'
    ``(neurons, fan_in)``, the tables (``dense_features``, ``bucket_features``, ``input_rows``),
    each input edge's position in the pool and the length of the pool's input part.
    """
    feature, slot, _ = layout.input_edges
    m = layout.num_slots
    dense_features, dense_slots = _dense_block(feature, slot, num_features, m, cost)
    in_block = torch.isin(feature, dense_features) & torch.isin(slot, dense_slots)
    position = torch.empty_like(feature)
    position[in_block] = (torch.searchsorted(dense_slots, slot[in_block]) * dense_features.numel()
                          + torch.searchsorted(dense_features, feature[in_block]))
    dense_size = dense_slots.numel() * dense_features.numel()
    # the other edges: slot s in bucket b, row i, column j (its rank among the slot's edges)
    rest = torch.nonzero(~in_block).flatten()
    rest = rest[torch.argsort(slot[rest], stable=True)]
    fan_in = torch.bincount(slot[rest], minlength=m)
    first_edge = torch.cumsum(fan_in, 0) - fan_in
    rank = torch.arange(rest.numel()) - first_edge[slot[rest]]
    buckets = _buckets(fan_in)
    widths = torch.tensor([int(fan_in[b].max()) for b in buckets], dtype=torch.long)
    sizes = torch.tensor([b.numel() for b in buckets], dtype=torch.long)
    starts = torch.cumsum(sizes * widths, 0) - sizes * widths
    bucket_of, row_of = torch.zeros(m, dtype=torch.long), torch.zeros(m, dtype=torch.long)
    for i, b in enumerate(buckets):
        bucket_of[b], row_of[b] = i, torch.arange(b.numel())
    local = starts[bucket_of[slot[rest]]] + row_of[slot[rest]] * widths[bucket_of[slot[rest]]] + rank
    position[rest] = dense_size + local
    bucket_features = torch.zeros(int((sizes * widths).sum()), dtype=torch.long)
    bucket_features[local] = feature[rest]
    # rows of the input table [dense block rows; bucket rows; a zero row]
    zero_row = dense_slots.numel() + int(sizes.sum())
    rows = torch.full((2, m), zero_row, dtype=torch.long)
    rows[1, dense_slots] = torch.arange(dense_slots.numel())
    ordered = torch.cat(buckets) if buckets else torch.zeros(0, dtype=torch.long)
    rows[0, ordered] = dense_slots.numel() + torch.arange(ordered.numel())
    index = _index_dtype(max(num_features, zero_row + 1))
    tables = {"bucket_features": bucket_features.to(index), "input_rows": rows[: 2 if dense_size else 1].to(index)}
    if dense_size:
        tables["dense_features"] = dense_features.to(index)
    shape = (dense_slots.numel(), dense_features.numel()) if dense_size else (0, 0)
    return shape, tuple(zip(sizes.tolist(), widths.tolist())), tables, position, dense_size + bucket_features.numel()


def _hidden_plan(layout: _Layout, refresh: int) -> tuple[tuple[_Step, ...], Tensor, Tensor]:
    """The steps of the generations after the first, all their gathered sources (flat), and each
    hidden edge's position in the pool's part of the slabs."""
    src, dst, _ = layout.hidden_edges
    size = torch.tensor(layout.sizes)
    start = torch.cumsum(size, 0) - size
    generation = layout.generation
    steps, sources = [], []
    position = torch.empty_like(src)
    offset, since = 0, 0
    by_generation = torch.argsort(generation[dst], stable=True)
    counts = torch.bincount(generation[dst], minlength=len(layout.sizes)).tolist()
    for g, edges in enumerate(by_generation.split(counts)[1:], 1):
        fresh = g - since >= refresh
        since = g if fresh else since
        s, d = src[edges], dst[edges]
        old = s < start[since]
        gathered = torch.unique(s[old])
        recent = torch.unique(generation[s[~old]])
        column = torch.empty_like(s)
        column[old] = torch.searchsorted(gathered, s[old])
        first_column = torch.zeros(len(layout.sizes), dtype=torch.long)
        first_column[recent] = gathered.numel() + torch.cumsum(size[recent], 0) - size[recent]
        column[~old] = first_column[generation[s[~old]]] + s[~old] - start[generation[s[~old]]]
        columns = gathered.numel() + int(size[recent].sum())
        position[edges] = offset + (d - start[g]) * columns + column
        offset += layout.sizes[g] * columns
        steps.append(_Step(layout.sizes[g], layout.hidden[g], fresh, gathered.numel(), tuple(recent.tolist()), columns))
        sources.append(gathered)
    return tuple(steps), torch.cat(sources) if sources else torch.zeros(0, dtype=torch.long), position


def to_onnx_module(net: FreeNet, refresh: int = _REFRESH) -> OnnxFreeNetModule:
    """The module :func:`export_onnx` writes: ``net(x)`` laid out for onnxruntime (activations
    ``[neurons, batch]``, each generation reading only the rows its edges need, the input edges
    in a dense block and gathered buckets; the module docstring gives the design).

    Parameters
    ----------
    net : FreeNet
    refresh : int
        Generations between two refreshes of the gathered state.

    Returns
    -------
    OnnxFreeNetModule
        In eval mode, without gradients, on the CPU, with ``net``'s dtype.

    Raises
    ------
    NCGError
        ``net`` is not a FreeNet, or ``refresh`` is not a positive int.

    Examples
    --------
    >>> import torch
    >>> from ncg import FreeNet
    >>> from ncg.build import sparse_start
    >>> net = FreeNet(sparse_start(8, 12, 2, fan_in=3, seed=0), in_features=8, activation="tanh")
    >>> module = to_onnx_module(net)
    >>> module
    OnnxFreeNetModule(in_features=8, out_features=2, neurons=14, edges=45, generations=7,
                      dense_input_block=(12, 7), buckets=0)
    >>> x = torch.randn(5, 8)
    >>> torch.allclose(module(x), net(x), atol=1e-6)
    True
    """
    net = check_net(net)
    if not isinstance(refresh, int) or isinstance(refresh, bool) or refresh < 1:
        raise NCGError(f"refresh must be a positive int, got {refresh!r}")
    layout = _layout(net)
    steps, sources, hidden_position = _hidden_plan(layout, refresh)
    tables = {"bias": layout.bias}
    dense_shape, buckets = (0, 0), ()
    if layout.encoder_weight is None:
        dense_shape, buckets, input_tables, input_position, input_size = _input_plan(
            layout, net.in_features, _GATHER_COST)
        tables.update(input_tables)
        position = torch.cat([input_position, input_size + hidden_position])
        weight = torch.cat([layout.input_edges[2], layout.hidden_edges[2]])
    else:
        tables["encoder_weight"] = layout.encoder_weight
        input_size, position, weight = 0, hidden_position, layout.hidden_edges[2]
    pool = input_size + sum(step.size * step.columns for step in steps)
    tables["pool_index"], tables["pool_weight"] = position.to(_index_dtype(pool)), weight
    tables["sources"] = sources.to(_index_dtype(layout.num_slots))
    output_generations = torch.unique(layout.generation[layout.output_slot])
    held = torch.cat([torch.nonzero(layout.generation == g).flatten() for g in output_generations])
    where = torch.full((layout.num_slots,), -1, dtype=torch.long)
    where[held] = torch.arange(held.numel())
    tables["output_rows"] = where[layout.output_slot].to(_index_dtype(layout.num_slots))
    tables.update(_decoder_tables(net))
    plan = _Plan((layout.sizes[0], layout.hidden[0]), steps, dense_shape, buckets,
                 tuple(output_generations.tolist()))
    return OnnxFreeNetModule(net, plan, tables).eval().requires_grad_(False)


def _outer_and_body(graph: onnx.GraphProto) -> tuple[list[onnx.NodeProto], list[onnx.NodeProto]]:
    """The nodes that read only initializers (the run-time weights and tables: onnxruntime folds
    them once, when it loads the file) and the others, each in topological order."""
    known = {tensor.name for tensor in graph.initializer}
    outer, body = [], []
    for node in graph.node:  # topological order
        if all(name in known for name in node.input if name):
            outer.append(node)
            known.update(node.output)
        else:
            body.append(node)
    return outer, body


def _prefixed(model: onnx.ModelProto, prefix: str) -> onnx.GraphProto:
    """``model``'s graph with every name but ``x`` and ``y`` prefixed, so that two exported graphs
    can share one file."""
    graph = model.graph

    def rename(name: str) -> str:
        return name if name in ("", "x", "y") else prefix + name

    for node in graph.node:
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
        node.name = rename(node.name)
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    return graph


def _constant(name: str, values: list, dims: list[int] | None = None, kind: int | None = None) -> onnx.NodeProto:
    from onnx import TensorProto, helper

    tensor = helper.make_tensor(name, TensorProto.INT64 if kind is None else kind,
                                [len(values)] if dims is None else dims, values)
    return helper.make_node("Constant", [], [name], value=tensor)


def _node(op: str, inputs: list[str], output: str, **attributes) -> onnx.NodeProto:
    from onnx import helper

    return helper.make_node(op, inputs, [output], **attributes)


def _loop_over_batch(body: list[onnx.NodeProto], chunk: int, width: int, dtype: int, output: str
                     ) -> list[onnx.NodeProto]:
    """Nodes running ``body`` (input ``x``, output ``y``, batch first) in an ONNX ``Loop`` over
    ``chunk`` rows of ``x`` at a time, the last chunk shorter, into ``output``: the chunks'
    outputs in turn. ``body`` may read any name of the enclosing graph."""
    from onnx import TensorProto, helper

    for node in body:
        node.input[:] = ["loop_x" if name == "x" else name for name in node.input]
        node.output[:] = ["loop_y" if name == "y" else name for name in node.output]
    head = [  # x[i * chunk : (i + 1) * chunk]
        _node("Reshape", ["loop_i", "loop_one"], "loop_i1"),
        _node("Mul", ["loop_i1", "loop_chunk"], "loop_begin"),
        _node("Add", ["loop_begin", "loop_chunk"], "loop_end"),
        _node("Slice", ["x", "loop_begin", "loop_end", "loop_axis"], "loop_x"),
    ]
    tail = [_node("Concat", ["loop_done", "loop_y"], "loop_done_out", axis=0),
            _node("Identity", ["loop_cond"], "loop_cond_out")]
    loop_body = helper.make_graph(
        head + body + tail, "chunk",
        [helper.make_tensor_value_info("loop_i", TensorProto.INT64, []),
         helper.make_tensor_value_info("loop_cond", TensorProto.BOOL, []),
         helper.make_tensor_value_info("loop_done", dtype, [None, width])],
        [helper.make_tensor_value_info("loop_cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("loop_done_out", dtype, [None, width])],
    )
    return [  # ceil(batch / chunk) iterations, each appending its rows of y
        _constant("loop_axis", [0]),
        _constant("loop_one", [1]),
        _constant("loop_chunk", [chunk]),
        _constant("loop_chunk_less_one", [chunk - 1]),
        _constant("loop_scalar", [], dims=[0]),
        _constant("loop_true", [True], dims=[], kind=TensorProto.BOOL),
        _constant("loop_none", [], dims=[0, width], kind=dtype),
        _node("Shape", ["x"], "loop_shape"),
        _node("Gather", ["loop_shape", "loop_axis"], "loop_batch"),
        _node("Add", ["loop_batch", "loop_chunk_less_one"], "loop_rounded"),
        _node("Div", ["loop_rounded", "loop_chunk"], "loop_count_1"),
        _node("Reshape", ["loop_count_1", "loop_scalar"], "loop_count"),
        _node("Loop", ["loop_count", "loop_true", "loop_none"], output, body=loop_body),
    ]


def _by_batch(large: onnx.ModelProto, small: onnx.ModelProto, chunk: int, small_batch: int) -> onnx.ModelProto:
    """One model that runs ``small`` below ``small_batch`` rows and ``large`` in a ``Loop`` over
    ``chunk`` rows from there (an ONNX ``If`` on the batch); both read ``x`` and write ``y``,
    and their initializer-only nodes stay in the main graph."""
    from onnx import helper

    small_graph = _prefixed(small, "slab/")
    large_outer, large_body = _outer_and_body(large.graph)
    small_outer, small_body = _outer_and_body(small_graph)
    output = large.graph.output[0].type.tensor_type
    dtype, width = output.elem_type, output.shape.dim[1].dim_value

    def branch(name: str, nodes: list[onnx.NodeProto], result: str) -> onnx.GraphProto:
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(result, dtype, [None, width])])

    for node in small_body:
        node.output[:] = ["small_y" if name == "y" else name for name in node.output]
    choose = [
        _constant("batch_axis", [0]),
        _constant("batch_small", [small_batch]),
        _node("Shape", ["x"], "batch_shape"),
        _node("Gather", ["batch_shape", "batch_axis"], "batch_size"),
        _node("Less", ["batch_size", "batch_small"], "batch_is_small_1"),
        _node("Squeeze", ["batch_is_small_1"], "batch_is_small"),
        helper.make_node("If", ["batch_is_small"], ["y"],
                         then_branch=branch("small", small_body, "small_y"),
                         else_branch=branch("large", _loop_over_batch(large_body, chunk, width, dtype, "large_y"),
                                            "large_y")),
    ]
    main = helper.make_graph(large_outer + small_outer + choose, large.graph.name, large.graph.input,
                             large.graph.output,
                             initializer=list(large.graph.initializer) + list(small_graph.initializer))
    result = helper.make_model(main, opset_imports=large.opset_import, producer_name=large.producer_name)
    result.ir_version = large.ir_version
    return result


def _exported(module: nn.Module, example: Tensor, opset_version: int) -> onnx.ModelProto:
    """``module`` through the TorchScript exporter (``x`` to ``y``, dynamic batch, no constant
    folding, so that the scatters stay in the graph)."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the deprecated TorchScript exporter, chosen on purpose
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\._internal\.torchscript_exporter")
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=opset_version,
            do_constant_folding=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    _restore_aliased_buffers(model.graph, dict(module.named_buffers()))
    return model


def _restore_aliased_buffers(graph: onnx.GraphProto, buffers: dict[str, Tensor]) -> None:
    """Undo the exporter's merging of equal initializers where it merged buffers of different
    dtypes: two empty buffers (a net without hidden edges: no index, no weight) are equal, and
    the exporter writes the second as an ``Identity`` of the first, which onnxruntime then
    refuses as a type clash. Each such buffer becomes its own initializer again."""
    from onnx import numpy_helper

    initializers = {tensor.name for tensor in graph.initializer}
    for node in list(graph.node):
        name = node.output[0] if node.op_type == "Identity" else None
        if name in buffers and node.input[0] in initializers:
            graph.node.remove(node)
            graph.initializer.append(numpy_helper.from_array(buffers[name].numpy(), name))


def export_onnx(net: FreeNet, path: str | os.PathLike, opset_version: int = 17) -> Path:
    """Save ``net`` as an ONNX model with a dynamic batch dimension (needs the ``onnx`` package).

    The graph's input is ``x`` (``[batch, in_features]``, the net's float dtype), its output
    ``y`` (``[batch, out_features]``); run it with
    ``onnxruntime.InferenceSession(path).run(None, {"x": x})[0]``. The file computes
    :func:`to_onnx_module` inside a ``Loop`` over chunks of the batch (the module docstring
    gives the design and its cost).

    Parameters
    ----------
    net : FreeNet
    path : str or os.PathLike
        The file to write; must end in ``.onnx``.
    opset_version : int, default 17
        ONNX opset; at least 11 (``ScatterElements``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NCGError
        ``net`` is not a FreeNet, ``path`` does not end in ``.onnx``, or ``opset_version`` is
        not an int >= 11.
    ModuleNotFoundError
        The ``onnx`` package is not installed (``pip install "ncg[export]"``).

    Examples
    --------
    >>> export_onnx(None, "net.onnx")
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: net must be a FreeNet, got NoneType
    """
    net = check_net(net)
    path = check_path(path, ".onnx")
    if not isinstance(opset_version, int) or opset_version < 11:
        raise NCGError(f"opset_version must be an int >= 11, got {opset_version!r}")
    if importlib.util.find_spec("onnx") is None:
        raise ModuleNotFoundError('export_onnx needs the onnx package: pip install "ncg[export]"')
    import onnx

    large = _exported(to_onnx_module(net), _example_input(net), opset_version)
    small = _exported(to_module(net), _example_input(net), opset_version)
    onnx.save(_by_batch(large, small, _CHUNK, _SMALL_BATCH), str(path))
    return path
