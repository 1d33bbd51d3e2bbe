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
Activations are neuron-major (``[N, B]``): one edge updates one contiguous row.

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

from ncg.kernels.sparse import csr_backward, csr_forward
from ncg.kernels.sweep import sweep_backward, sweep_forward
from ncg.schedule import Plan

__all__ = ["blocked_forward"]


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


class _BlockedDAG(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, weight: Tensor, codes: Tensor, plan: Plan) -> Tensor:
        # One buffer: row p holds z[p] until its block overwrites it with h[p] = act(z[p]); the
        # backward needs h alone (every activation's derivative is a function of its value).
        h = u.contiguous().clone()
        dense = weight.new_zeros(plan.dense_cells)
        dense.index_copy_(0, plan.dense_flat, weight if plan.dense_edge is None else weight[plan.dense_edge])
        w_csr = weight.index_select(0, plan.csr_edge) if "sparse" in plan.kinds else weight.new_zeros(0)
        steps = _steps(plan)
        for k, start, end in steps:
            if k < 0:
                csr_forward(h, h, plan, w_csr, codes, start, end)
                continue
            lo = plan.blocks[k][2]
            slab = _slab(dense, plan, k)
            if lo < start:
                h[start:end].addmm_(slab[: start - lo].t(), h[lo:start])
            sweep_forward(h[start:end], slab[start - lo:], codes[start:end], out=h[start:end])
        ctx.save_for_backward(h, dense, w_csr, codes)
        ctx.plan, ctx.steps, ctx.num_edges = plan, steps, weight.shape[0]
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor):
        h, dense, w_csr, codes = ctx.saved_tensors
        plan = ctx.plan
        # One buffer: row p holds dL/dh[p] until its block turns it into g[p] = dL/dz[p] in place.
        g = grad_h.contiguous().clone()
        need_w = ctx.needs_input_grad[1]
        dense_grad = torch.empty_like(dense) if need_w else None
        csr_grad = torch.empty_like(w_csr) if need_w else None
        for k, start, end in reversed(ctx.steps):
            if k < 0:
                slots = csr_grad[int(plan.indptr[start]):int(plan.indptr[end])] if need_w else None
                csr_backward(h, g, g, plan, w_csr, codes, start, end, slots)
                continue
            lo = plan.blocks[k][2]
            slab = _slab(dense, plan, k)
            sweep_backward(h[start:end], slab[start - lo:], codes[start:end], g[start:end], out=g[start:end])
            if lo < start:
                g[lo:start].addmm_(slab[: start - lo], g[start:end])
            if need_w:
                torch.mm(h[lo:end], g[start:end].t(), out=_slab(dense_grad, plan, k))
        dw = None
        if need_w:
            from_dense = dense_grad.index_select(0, plan.dense_flat)
            dw = from_dense if plan.dense_edge is None else dense_grad.new_zeros(ctx.num_edges)
            if plan.dense_edge is not None:
                dw[plan.dense_edge] = from_dense
            if plan.sparse_slots is None:
                dw.index_copy_(0, plan.csr_edge, csr_grad)
            elif plan.sparse_slots.numel():
                dw[plan.csr_edge[plan.sparse_slots]] = csr_grad[plan.sparse_slots]
        return g, dw, None, None


def blocked_forward(u: Tensor, weight: Tensor, plan: Plan, codes: Tensor) -> Tensor:
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

    Returns
    -------
    Tensor
        ``[N, B]`` activations in position order.
    """
    return _BlockedDAG.apply(u, weight.to(u.dtype), codes, plan)
