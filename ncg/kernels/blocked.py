"""Blocked forward substitution: the DAG evaluator, each block dense or sparse.

Positions are sorted by generation and packed into blocks (:func:`ncg.schedule.build_plan`),
and every block is evaluated one of two ways, chosen per block by the plan (``plan.kinds``):

* **dense**: the block's incoming weights are scattered into a slab ``[end - lo, end - start]``;
  everything it receives from earlier blocks arrives as one GEMM and the neurons inside it are
  resolved by one compiled sweep (:mod:`ncg.kernels.sweep`). Its weight gradient is one GEMM,
  gathered at the edges.
* **sparse**: one pass over the block's incoming edges, stored once per topology as a CSR over
  positions (:mod:`ncg.kernels.sparse`): O(edges x batch) work and no ``N x N`` tensor; its
  weight gradient is computed for the existing edges only.

The backward pass runs the recurrence in reverse with an explicit
:class:`torch.autograd.Function`, so autograd records one node for the whole DAG. Both kinds
*push* gradients to earlier positions, so blocks of either kind compose in any order.
Activations are neuron-major (``[N, B]``): one edge updates one contiguous row. The backward
needs ``h`` only, unless an activation's derivative is no function of it (``gelu``, ``silu``:
:attr:`~ncg.activations.Activation.needs_preactivation`); then ``z`` is kept as well, one more
``[N, B]`` buffer.

Examples
--------
>>> import torch
>>> from ncg.schedule import build_plan
>>> from ncg.kernels.blocked import blocked_forward
>>> u = torch.tensor([[1.0, -1.0], [0.5, 0.5]])
>>> codes = torch.tensor([1, 1], dtype=torch.uint8)
>>> for mode in ("dense", "sparse"):
...     print(blocked_forward(u, torch.tensor([2.0]), build_plan(torch.tensor([[0], [1]]), 2, mode=mode), codes))
tensor([[1.0000, 0.0000],
        [2.5000, 0.5000]])
tensor([[1.0000, 0.0000],
        [2.5000, 0.5000]])
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ncg.activations import needs_preactivation
from ncg.kernels.sparse import csr_backward, csr_forward
from ncg.kernels.sweep import sweep_backward, sweep_forward
from ncg.schedule import Plan

__all__ = ["blocked_forward", "graph_input_forward"]


def _slab(buffer: Tensor, plan: Plan, block: int) -> Tensor:
    """Block ``block``'s ``[end - lo, end - start]`` view of the flat dense buffer."""
    start, end, lo, _ = plan.blocks[block]
    offset = plan.dense_offsets[block]
    return buffer[offset:offset + (end - lo) * (end - start)].view(end - lo, end - start)


def _steps(plan: Plan) -> list[tuple[int, int, int]]:
    """``(block, start, end)`` in evaluation order: each dense block alone, each run of
    consecutive sparse blocks merged into one span (block ``-1``), so one kernel call covers it."""
    steps: list[tuple[int, int, int]] = []
    for k, (start, end, _, _) in enumerate(plan.blocks):
        if plan.kinds[k] == "sparse" and steps and steps[-1][0] == -1:
            steps[-1] = (-1, steps[-1][1], end)
        else:
            steps.append((-1 if plan.kinds[k] == "sparse" else k, start, end))
    return steps


def _sparse_weights(weight: Tensor, plan: Plan) -> Tensor:
    """The edge weights in CSR slot order, gathered only where a sparse block reads them (the
    other slots stay 0): in a mostly dense plan, such as a complete start whose one sparse block
    is the input nodes, that skips a gather of every edge per step."""
    if "sparse" not in plan.kinds:
        return weight.new_zeros(0)
    if plan.sparse_slots is None:
        return weight.index_select(0, plan.csr_edge)
    w_csr = weight.new_zeros(plan.csr_edge.numel())
    if plan.sparse_slots.numel():
        w_csr[plan.sparse_slots] = weight[plan.csr_edge[plan.sparse_slots]]
    return w_csr


def _evaluate(z: Tensor, weight: Tensor, codes: Tensor, plan: Plan) -> tuple[Tensor, Tensor | None, tuple]:
    """Run the plan over ``z`` (``u`` in, the pre-activations out); returns ``h``, ``z`` if the
    backward needs it (else None) and what else the backward needs.

    Where every derivative is a function of ``h``, one buffer: row p holds z[p] until its block
    overwrites it with h[p] = act(z[p]), and ``h`` is ``z``. Otherwise ``h`` is a second buffer
    and ``z`` is kept."""
    keep_z = needs_preactivation(codes)
    h = torch.empty_like(z) if keep_z else z
    dense = weight.new_zeros(plan.dense_cells)
    dense.index_copy_(0, plan.dense_flat, weight if plan.dense_edge is None else weight[plan.dense_edge])
    w_csr = _sparse_weights(weight, plan)
    steps = _steps(plan)
    for k, start, end in steps:
        if k < 0:
            csr_forward(z, h, plan, w_csr, codes, start, end)
            continue
        lo = plan.blocks[k][2]
        slab = _slab(dense, plan, k)
        if lo < start:
            z[start:end].addmm_(slab[: start - lo].t(), h[lo:start])
        sweep_forward(z[start:end], slab[start - lo:], codes[start:end], out=h[start:end])
    return h, z if keep_z else None, (dense, w_csr, steps)


def _propagate(ctx, g: Tensor, need_w: bool) -> Tensor | None:
    """Turn ``g`` (``dL/dh`` in) into ``dL/dz`` in place, row by row in reverse; returns ``dL/dw``."""
    h, z, dense, w_csr, codes = ctx.saved_tensors
    plan, push_from = ctx.plan, ctx.push_from
    dense_grad = torch.empty_like(dense) if need_w else None
    csr_grad = torch.empty_like(w_csr) if need_w else None
    for k, start, end in reversed(ctx.steps):
        if k < 0:
            slots = csr_grad[int(plan.indptr[start]):int(plan.indptr[end])] if need_w else None
            csr_backward(h, g, g, plan, w_csr, codes, start, end, slots, push_from, z)
            continue
        lo = plan.blocks[k][2]
        slab = _slab(dense, plan, k)
        sweep_backward(h[start:end], slab[start - lo:], codes[start:end], g[start:end], out=g[start:end],
                       z=None if z is None else z[start:end])
        pushed = max(lo, push_from)
        if pushed < start:
            g[pushed:start].addmm_(slab[pushed - lo: start - lo], g[start:end])
        if need_w:
            torch.mm(h[lo:end], g[start:end].t(), out=_slab(dense_grad, plan, k))
    if not need_w:
        return None
    from_dense = dense_grad.index_select(0, plan.dense_flat)
    dw = from_dense if plan.dense_edge is None else dense_grad.new_zeros(ctx.num_edges)
    if plan.dense_edge is not None:
        dw[plan.dense_edge] = from_dense
    if plan.sparse_slots is None:
        dw.index_copy_(0, plan.csr_edge, csr_grad)
    elif plan.sparse_slots.numel():
        dw[plan.csr_edge[plan.sparse_slots]] = csr_grad[plan.sparse_slots]
    return dw


def _run(ctx, z: Tensor, weight: Tensor, codes: Tensor, plan: Plan, push_from: int) -> Tensor:
    """:func:`_evaluate`, saving what the backward needs; returns ``h``."""
    h, z, (dense, w_csr, steps) = _evaluate(z, weight, codes, plan)
    ctx.save_for_backward(h, z, dense, w_csr, codes)
    ctx.plan, ctx.steps, ctx.num_edges, ctx.push_from = plan, steps, weight.shape[0], push_from
    return h


class _BlockedDAG(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, weight: Tensor, codes: Tensor, plan: Plan, push_from: int) -> Tensor:
        return _run(ctx, u.contiguous().clone(), weight, codes, plan, push_from)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor):
        # One buffer: row p holds dL/dh[p] until its block turns it into g[p] = dL/dz[p] in place.
        g = grad_h.contiguous().clone()
        dw = _propagate(ctx, g, ctx.needs_input_grad[1])
        return g, dw, None, None, None


class _GraphInputDAG(torch.autograd.Function):
    """The DAG of a network whose inputs are graph nodes, from the features themselves: ``h``
    starts as the biases with the features in the input nodes' rows, so no ``u`` tensor is
    built, copied or differentiated (a whole-network FreeNet's training step)."""

    @staticmethod
    def forward(ctx, x: Tensor, bias: Tensor, weight: Tensor, codes: Tensor, plan: Plan, input_pos: Tensor,
                in_order: bool, push_from: int, rows: Tensor | None) -> Tensor:
        z = bias.new_empty(bias.shape[0], x.shape[0])  # never a view of bias (at batch 1 expand would be)
        lead = input_pos.numel() if in_order else 0  # the inputs are rows 0..F-1: no bias to write there
        z[lead:].copy_(bias[lead:].unsqueeze(1))
        if in_order:
            z[:lead].copy_(x.t())  # a blocked transpose, 3x faster than index_copy_ of x.t()
        else:
            z.index_copy_(0, input_pos, x.t())
        h = _run(ctx, z, weight, codes, plan, push_from)
        ctx.input_pos, ctx.rows, ctx.lead = input_pos, rows, lead
        return h if rows is None else h.index_select(0, rows)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        if ctx.rows is None:
            g = grad.contiguous().clone()
        else:  # only the returned rows carry a gradient: one zeroed buffer, no [N, B] from autograd
            g = grad.new_zeros(ctx.saved_tensors[0].shape)
            g.index_copy_(0, ctx.rows, grad)
        need_x, need_bias, need_w = ctx.needs_input_grad[:3]
        dw = _propagate(ctx, g, need_w)
        dx = g.index_select(0, ctx.input_pos).t() if need_x else None
        dbias = None
        if need_bias:  # an input node's bias is unused: no gradient
            dbias = g.new_zeros(g.shape[0])
            torch.sum(g[ctx.lead:], 1, out=dbias[ctx.lead:])
            dbias[ctx.input_pos] = 0
        return dx, dbias, dw, None, None, None, None, None, None


def blocked_forward(u: Tensor, weight: Tensor, plan: Plan, codes: Tensor, push_from: int = 0) -> Tensor:
    """Evaluate the DAG: ``h = act(z)``, ``z = u + W^T h``, in position order.

    Parameters
    ----------
    u : Tensor
        ``[N, B]`` encoder output plus bias, rows in position order (``plan.perm``).
    weight : Tensor
        ``[E]`` edge weights aligned with ``plan.src_pos`` / ``plan.dst_pos``.
    plan : Plan
        From :func:`ncg.schedule.build_plan`; its ``kinds`` say which blocks are dense.
    codes : Tensor
        uint8 ``[N]`` activation code per position (:data:`ncg.kernels.sweep.ACTIVATION_CODES`).
    push_from : int, default 0
        The backward pushes no gradient into rows below it: set it to the number of leading input
        nodes when nobody reads their gradient (the input needs none). Two thirds of a
        whole-network FreeNet's edges leave its inputs, so this skips most of the push; the rows'
        ``u.grad`` is then zero, and the weight gradients are unchanged.

    Returns
    -------
    Tensor
        ``[N, B]`` activations in position order.
    """
    return _BlockedDAG.apply(u, weight.to(u.dtype), codes, plan, push_from)


def graph_input_forward(
    x: Tensor, bias: Tensor, weight: Tensor, plan: Plan, codes: Tensor, input_pos: Tensor, push_from: int = 0,
    in_order: bool = False, rows: Tensor | None = None,
) -> Tensor:
    """:func:`blocked_forward` for a network whose inputs are graph nodes, from the features.

    Equal to ``blocked_forward(u, ...)`` with ``u = bias`` broadcast over the batch and the rows
    ``input_pos`` replaced by ``x.t()``, without building ``u``: the input nodes' rows start as
    the features (their biases are unused and get no gradient). An all-sparse plan whose inputs
    lead in feature order has a faster path still, one compiled call each way:
    :func:`ncg.kernels.sparse.graph_train_forward`.

    Parameters
    ----------
    x : Tensor
        ``[B, F]`` features.
    bias : Tensor
        ``[N]`` biases in position order.
    weight, plan, codes, push_from
        As in :func:`blocked_forward`.
    input_pos : Tensor
        int64 ``[F]``: the row (position) of each input node.
    in_order : bool, default False
        Promise that ``input_pos`` is ``arange(F)`` (the inputs lead in feature order), so the
        features arrive by one transposing copy.
    rows : Tensor, optional
        int64 distinct positions (the outputs): return only their rows, ``[len(rows), B]``. The
        backward then starts from one zeroed buffer instead of autograd's ``[N, B]`` gradient of
        an indexing and a copy of it.

    Returns
    -------
    Tensor
        ``[N, B]`` activations in position order, or the ``rows`` of them.

    Examples
    --------
    >>> from ncg.schedule import build_plan
    >>> plan = build_plan(torch.tensor([[0], [1]]), 2, mode="sparse")      # input node 0 -> neuron 1
    >>> codes = torch.tensor([0, 1], dtype=torch.uint8)
    >>> graph_input_forward(torch.tensor([[3.0]]), torch.tensor([0.0, 0.5]), torch.tensor([2.0]), plan,
    ...                     codes, torch.tensor([0]))
    tensor([[3.0000],
            [6.5000]])
    """
    dtype = bias.dtype
    return _GraphInputDAG.apply(x.to(dtype), bias, weight.to(dtype), codes, plan, input_pos, in_order, push_from, rows)
