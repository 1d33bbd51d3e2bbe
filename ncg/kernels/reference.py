"""The slow, obviously-correct evaluator: one neuron at a time in topological order.

It exists to check the fast evaluators against (tests compare them on random graphs) and to
document the semantics: ``h_p = act_p(u_p + sum_{q -> p} w_qp * h_q)``.

Examples
--------
>>> import torch
>>> from ncg.schedule import build_plan
>>> from ncg.kernels.reference import reference_forward
>>> plan = build_plan(torch.tensor([[0], [1]]), 2)
>>> u = torch.tensor([[1.0, -1.0], [0.5, 0.5]])
>>> reference_forward(u, torch.tensor([2.0]), plan, torch.tensor([1, 1], dtype=torch.uint8))
tensor([[1.0000, 0.0000],
        [2.5000, 0.5000]])
"""
from __future__ import annotations

import torch
from torch import Tensor

from ncg.activations import BY_CODE
from ncg.schedule import Plan

__all__ = ["reference_forward"]


def reference_forward(u: Tensor, weight: Tensor, plan: Plan, codes: Tensor, push_from: int = 0) -> Tensor:
    """Per-neuron evaluation with the same contract as :func:`ncg.kernels.blocked.blocked_forward`
    (``push_from`` is accepted and ignored: autograd computes every gradient)."""
    rows: list[Tensor] = []
    for p in range(u.shape[0]):
        incoming = torch.nonzero(plan.dst_pos == p).flatten()
        z = u[p]
        for e in incoming.tolist():
            z = z + weight[e] * rows[int(plan.src_pos[e])]
        rows.append(BY_CODE[int(codes[p])].fn(z))
    return torch.stack(rows) if rows else u.clone()
