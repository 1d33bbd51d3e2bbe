"""Blocked forward substitution: the default DAG evaluator.

Positions are sorted by generation and packed into blocks (:func:`ncg.schedule.build_plan`). For
each block, everything it receives from earlier blocks arrives as one GEMM, and the neurons inside
it are resolved by one compiled sweep (:mod:`ncg.kernels.sweep`). The backward pass runs the same
recurrence in reverse with an explicit :class:`torch.autograd.Function`, so autograd records one
node for the whole DAG instead of one per neuron; the edge-weight gradient is one GEMM per block.

Activations are neuron-major (``[N, B]``): one edge updates one contiguous row.

Examples
--------
>>> import torch
>>> from ncg.schedule import build_plan
>>> from ncg.kernels.blocked import blocked_forward
>>> plan = build_plan(torch.tensor([[0], [1]]), 2)
>>> u = torch.tensor([[1.0, -1.0], [0.5, 0.5]])
>>> blocked_forward(u, torch.tensor([2.0]), plan, torch.tensor([1, 1], dtype=torch.uint8))
tensor([[1.0000, 0.0000],
        [2.5000, 0.5000]])
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ncg.kernels.sweep import sweep_backward, sweep_forward
from ncg.schedule import Plan

__all__ = ["blocked_forward", "dense_weight"]


def dense_weight(weight: Tensor, plan: Plan, num_neurons: int) -> Tensor:
    """Scatter edge weights into a dense ``[N, N]`` matrix in position order (differentiable).

    Examples
    --------
    >>> import torch
    >>> from ncg.schedule import build_plan
    >>> dense_weight(torch.tensor([3.0]), build_plan(torch.tensor([[1], [0]]), 2), 2)
    tensor([[0., 3.],
            [0., 0.]])
    """
    dense = weight.new_zeros(num_neurons, num_neurons)
    return dense.index_put((plan.src_pos, plan.dst_pos), weight)


class _BlockedDAG(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, w: Tensor, codes: Tensor, blocks: tuple) -> Tensor:
        z = u.contiguous().clone()
        h = torch.empty_like(z)
        for start, end, lo, _ in blocks:
            if lo < start:
                z[start:end].addmm_(w[lo:start, start:end].t(), h[lo:start])
            sweep_forward(z[start:end], w[start:end, start:end], codes[start:end], out=h[start:end])
        ctx.save_for_backward(z, h, w, codes)
        ctx.blocks = blocks
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h: Tensor):
        z, h, w, codes = ctx.saved_tensors
        dh = grad_h.contiguous().clone()
        g = torch.empty_like(z)
        need_w = ctx.needs_input_grad[1]
        dw = torch.zeros_like(w) if need_w else None
        for start, end, lo, hi in reversed(ctx.blocks):
            if hi > end:
                dh[start:end].addmm_(w[start:end, end:hi], g[end:hi])
            sweep_backward(
                z[start:end], h[start:end], w[start:end, start:end], codes[start:end], dh[start:end],
                out=g[start:end],
            )
            if need_w:
                dw[lo:end, start:end] = h[lo:end] @ g[start:end].t()
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
        From :func:`ncg.schedule.build_plan`.
    codes : Tensor
        uint8 ``[N]`` activation code per position (:data:`ncg.kernels.sweep.ACTIVATION_CODES`).

    Returns
    -------
    Tensor
        ``[N, B]`` activations in position order.
    """
    w = dense_weight(weight.to(u.dtype), plan, u.shape[0])
    return _BlockedDAG.apply(u, w, codes, plan.blocks)
