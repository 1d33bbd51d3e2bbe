"""Sparse rows of the DAG evaluator: a pass over incoming edges stored as a CSR over positions.

For rows ``start:end`` of the neuron-major activations (``[N, B]``, position order), with the
incoming edges of position ``p`` in the CSR slots ``plan.indptr[p]:plan.indptr[p + 1]``
(sources ``plan.csr_src``, weights ``w_csr``):

* forward: ``z[p] += sum_e w[e] h[src[e]]``, then ``h[p] = act_p(z[p])``, for ``p`` ascending;
* backward: ``g[p] = dh[p] act_p'(z[p])`` (from ``h[p]``, or from ``z[p]`` where the activation
  needs it), then ``dh[src[e]] += w[e] g[p]``, for ``p``
  descending (pushed, so the rows after ``end`` must already have pushed theirs);
* weight gradient: ``dw[e] = <h[src[e]], g[p]>`` for the existing edges only, in the same pass
  as the backward.

All three are O(edges x batch) in time and allocate nothing of size ``N x N``. Two backends do
the same: the compiled CPU kernel of :mod:`ncg.kernels.sweep` (float32/float64 CPU tensors, batch
columns spread over torch's threads), and plain PyTorch vectorised over each generation (any
device; positions of one generation share no edges), used elsewhere and when
``NCG_DISABLE_CPP=1`` is set.

A whole network whose plan is all sparse also runs in one compiled call: :func:`csr_infer`
without autograd, :func:`graph_train_forward` (forward and backward) with it.

Examples
--------
>>> import torch
>>> from ncg.schedule import build_plan
>>> from ncg.kernels.sparse import csr_forward
>>> plan = build_plan(torch.tensor([[0], [1]]), 2, mode="sparse")
>>> z, h = torch.tensor([[1.0, -1.0], [0.5, 0.5]]), torch.empty(2, 2)
>>> csr_forward(z, h, plan, torch.tensor([2.0]), torch.tensor([1, 1], dtype=torch.uint8), 0, 2)
>>> h
tensor([[1.0000, 0.0000],
        [2.5000, 0.5000]])
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from ncg.activations import ACTIVATIONS
from ncg.kernels.sweep import _ACTIVATION_NAMES, _call, _cpp_for, activation_fn
from ncg.schedule import Plan

__all__ = ["csr_forward", "csr_backward", "csr_infer", "pair_dots", "graph_train_forward"]

_CHUNK_ELEMENTS = 1 << 24
"""The PyTorch backend gathers at most this many ``edges x batch`` elements at once."""


def _generations(plan: Plan, start: int, end: int) -> list[tuple[int, int]]:
    """The generation ranges of positions inside ``start:end`` (each clipped to it)."""
    ptr = plan.generation_ptr.tolist()
    return [(max(a, start), min(b, end)) for a, b in zip(ptr, ptr[1:]) if a < end and b > start]


def _by_code(codes: Tensor, a: int, b: int):
    """``(rows, name)`` for each activation present in positions ``a:b`` (rows relative to ``a``)."""
    block = codes[a:b].long()
    for code in torch.unique(block).tolist():
        yield torch.nonzero(block == code).flatten(), _ACTIVATION_NAMES[code]


def _slots(plan: Plan, a: int, b: int) -> tuple[int, int, Tensor]:
    """First and last CSR slot of positions ``a:b`` and each slot's target position."""
    first, last = int(plan.indptr[a]), int(plan.indptr[b])
    counts = plan.indptr[a + 1:b + 1] - plan.indptr[a:b]
    return first, last, torch.repeat_interleave(torch.arange(a, b, device=counts.device), counts)


def _chunks(first: int, last: int, batch: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, batch))
    for lo in range(first, last, step):
        yield lo, min(last, lo + step)


def csr_forward(z: Tensor, h: Tensor, plan: Plan, w_csr: Tensor, codes: Tensor, start: int, end: int) -> None:
    """Forward over rows ``start:end``: ``z`` updated in place, ``h`` written there.

    ``z``, ``h``: contiguous ``[N, B]``, ``h`` may be ``z`` itself (each row's ``z`` is final
    before its ``h`` overwrites it); ``w_csr``: ``[E]`` weights in slot order
    (``weight[plan.csr_edge]``); ``codes``: uint8 ``[N]``.
    """
    ext = _cpp_for((z, h, w_csr), None)
    if ext is not None:
        return _call(ext.csr_sweep_forward, z, h, plan.indptr, plan.csr_src, w_csr.contiguous(), codes, start, end)
    for a, b in _generations(plan, start, end):
        first, last, dst = _slots(plan, a, b)
        for lo, hi in _chunks(first, last, z.shape[1]):
            src = plan.csr_src[lo:hi].long()
            z.index_add_(0, dst[lo - first:hi - first], w_csr[lo:hi, None] * h[src])
        for rows, name in _by_code(codes, a, b):
            h[a + rows] = activation_fn(name)(z[a + rows])
    return None


def csr_backward(
    h: Tensor, dh: Tensor, g: Tensor, plan: Plan, w_csr: Tensor, codes: Tensor, start: int, end: int,
    dw: Tensor | None = None, push_from: int = 0, z: Tensor | None = None,
) -> None:
    """Backward over rows ``start:end``: ``g`` written there, ``dh`` of their sources updated in
    place (``dh[start:end]`` must already hold every contribution from later rows).

    ``g`` may be ``dh`` itself: each row of ``dh`` is read before its ``g`` is written. With
    ``dw`` (``[plan.indptr[end] - plan.indptr[start]]``), ``dL/dw`` of the CSR slots of those
    rows, ``<h[src[e]], g[p]>``, is written there: the compiled kernel computes it in the same
    pass, while it loads each source row for the push. Rows below ``push_from`` (input nodes
    whose gradient nobody reads) receive nothing: their ``dh`` is left as it was. ``z``
    (``[N, B]``, the pre-activations) is required when an activation of those rows
    ``needs_preactivation``, unused otherwise.
    """
    ext = _cpp_for((h, dh, g, w_csr), None)
    if ext is not None:
        return _call(ext.csr_sweep_backward, h, dh, g, plan.indptr, plan.csr_src, w_csr.contiguous(), codes,
                     start, end, dw, push_from, z)
    for a, b in reversed(_generations(plan, start, end)):
        for rows, name in _by_code(codes, a, b):
            r = a + rows
            g[r] = dh[r] * ACTIVATIONS[name].derivative_at(h[r], None if z is None else z[r])
        first, last, dst = _slots(plan, a, b)
        for lo, hi in _chunks(first, last, h.shape[1]):
            src = plan.csr_src[lo:hi].long()
            pushed = src >= push_from
            targets = dst[lo - first:hi - first][pushed]
            dh.index_add_(0, src[pushed], w_csr[lo:hi][pushed, None] * g[targets])
    if dw is not None:
        _weight_grad(h, g, plan, start, end, dw)
    return None


def _weight_grad(h: Tensor, g: Tensor, plan: Plan, start: int, end: int, out: Tensor) -> None:
    """``out[e - indptr[start]] = <h[src[e]], g[dst[e]]>`` for the CSR slots of rows ``start:end``."""
    first, last, dst = _slots(plan, start, end)
    out.copy_(pair_dots(h, g, plan.csr_src[first:last].long(), dst))


def pair_dots(a: Tensor, b: Tensor, rows_a: Tensor, rows_b: Tensor) -> Tensor:
    """``out[k] = <a[rows_a[k]], b[rows_b[k]]>``: dot products of chosen row pairs of two ``[N, B]``
    matrices (a sampled dense-dense product), without gathering the rows.

    The gradients of candidate edges at weight 0 are such products (``h`` of the sources with
    ``dL/dz`` of the targets). The compiled kernel spreads the pairs over torch's threads;
    elsewhere chunks of at most ``2**24`` gathered elements are multiplied in PyTorch.

    Examples
    --------
    >>> import torch
    >>> a, b = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> pair_dots(a, b, torch.tensor([0, 1]), torch.tensor([1, 0]))
    tensor([2., 3.])
    """
    ext = _cpp_for((a, b), None)
    if ext is not None:
        return _call(ext.pair_dots, a.contiguous(), b.contiguous(), rows_a.long().contiguous(),
                     rows_b.long().contiguous())
    out = a.new_empty(rows_a.numel())
    for lo, hi in _chunks(0, rows_a.numel(), a.shape[1]):
        out[lo:hi] = (a[rows_a[lo:hi]] * b[rows_b[lo:hi]]).sum(1)
    return out


def csr_infer(
    x: Tensor, plan: Plan, bias: Tensor, w_csr: Tensor, codes: Tensor, input_pos: Tensor, out_pos: Tensor,
    check: bool = True,
) -> Tensor | None:
    """Whole-network inference of an all-sparse plan in one compiled call, or None where the
    compiled kernel does not run (another device or dtype, ``NCG_DISABLE_CPP=1``, a failed build).

    ``x``: ``[B, F]`` features (batch-major, as a model receives them); ``bias``: ``[N]`` in position
    order; ``w_csr``: weights in slot order; ``input_pos`` / ``out_pos``: int64 rows of the input
    nodes (feature ``f`` enters row ``input_pos[f]``, its bias is ignored) and of the outputs.
    Returns ``[B, K]``: ``h`` of the output rows. Each tile of the batch is evaluated in a
    thread-private ``[N, tile]`` scratch that stays in the caches, so no ``[N, B]`` tensor and no
    autograd state exist. ``check`` validates the CSR structure, O(E): a plan from
    :func:`~ncg.schedule.build_plan` needs it once.

    Examples
    --------
    >>> import torch
    >>> from ncg.schedule import build_plan
    >>> plan = build_plan(torch.tensor([[0], [1]]), 2, mode="sparse")      # input node 0 -> neuron 1
    >>> out = csr_infer(torch.tensor([[3.0]]), plan, torch.tensor([0.0, 0.5]), torch.tensor([2.0]),
    ...                 torch.tensor([0, 1], dtype=torch.uint8), torch.tensor([0]), torch.tensor([1]))
    >>> out is None or out.tolist() == [[6.5]]
    True
    """
    ext = _cpp_for((x, bias, w_csr), None)
    if ext is None or x.requires_grad:
        return None
    return _call(ext.csr_infer, x, input_pos, bias.contiguous(), plan.indptr, plan.csr_src, w_csr.contiguous(),
                 codes, out_pos, check)


class _TrainGraph(torch.autograd.Function):
    """:func:`graph_train_forward`'s autograd node: one compiled call forward, one backward."""

    @staticmethod
    def forward(ctx, x: Tensor, bias: Tensor, weight: Tensor, ext, plan: Plan, codes: Tensor, bias_pos: Tensor,
                out_pos: Tensor, check: bool, states: bool) -> Tensor | tuple[Tensor, Tensor]:
        h, out, w_slot = _call(ext.graph_forward, x, bias, bias_pos, weight, plan.csr_edge, plan.indptr,
                               plan.csr_src, codes, out_pos, check)
        ctx.save_for_backward(h, w_slot)
        ctx.ext, ctx.plan, ctx.codes, ctx.bias_pos, ctx.out_pos = ext, plan, codes, bias_pos, out_pos
        ctx.features = x.shape[1]
        if not states:
            return out
        ctx.mark_non_differentiable(h)
        ctx.set_materialize_grads(False)  # no [N, B] of zeros for h's gradient
        return out, h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor | None, grad_h: None = None):
        h, w_slot = ctx.saved_tensors
        plan = ctx.plan
        if grad_out is None:  # only h, which carries no gradient, was used
            grad_out = h.new_zeros(ctx.out_pos.numel(), h.shape[1])
        dweight, dbias = ctx.ext.graph_backward(h, grad_out, w_slot, ctx.bias_pos, plan.csr_edge, plan.indptr,
                                                plan.csr_src, ctx.codes, ctx.out_pos, ctx.features,
                                                ctx.needs_input_grad[2], ctx.needs_input_grad[1])
        return None, dbias, dweight, None, None, None, None, None, None, None


def graph_train_forward(
    x: Tensor, bias: Tensor, weight: Tensor, plan: Plan, codes: Tensor, bias_pos: Tensor, out_pos: Tensor,
    check: bool = True, states: bool = False,
) -> Tensor | tuple[Tensor, Tensor] | None:
    """The output rows of an all-sparse plan whose ``F`` input nodes are its rows ``0..F-1`` in
    feature order, differentiable in ``bias`` and ``weight``, in one compiled call each way; or
    None where the compiled kernel does not run (another device or dtype, ``NCG_DISABLE_CPP=1``,
    a failed build).

    The forward transposes ``x`` into the input rows, writes the biases, gathers the weights into
    slot order and sweeps rows ``F..N-1``; the backward starts from the output rows' gradient,
    sweeps back to row ``F`` (nothing is pushed into the input rows: ``x`` gets no gradient) and
    returns the weight gradient in edge order and the bias gradient. No Python runs per block
    and no ``[N, B]`` buffer is filled that carries no information (the training step of a
    pruned whole-network FreeNet, :func:`~ncg.kernels.blocked.graph_input_forward` otherwise).

    Parameters
    ----------
    x : Tensor
        ``[B, F]`` features, the dtype of ``bias`` and ``weight``; it receives no gradient.
    bias : Tensor
        ``[N - F]``: the bias of each non-input node, in the order of ``bias_pos``.
    weight : Tensor
        ``[E]`` edge weights aligned with ``plan.src_pos`` / ``plan.dst_pos``.
    plan : Plan
        An all-sparse plan (:func:`~ncg.schedule.build_plan`) whose rows ``0..F-1`` have no
        incoming edges.
    codes : Tensor
        uint8 ``[N]`` activation codes; none of rows ``F..`` may need the pre-activation.
    bias_pos, out_pos : Tensor
        int64: the row of each bias (a permutation of ``F..N-1``) and of each output.
    check : bool, default True
        Validate the plan's structure and the index tensors, O(E): once per plan is enough.
    states : bool, default False
        Also return every row's ``h`` (``[N, B]``, position order, no gradient): what an
        activation hook records, at no extra pass.

    Returns
    -------
    Tensor or (Tensor, Tensor) or None
        ``[len(out_pos), B]``: ``h`` of the output rows; with ``states``, also all of ``h``.

    Examples
    --------
    >>> import torch
    >>> from ncg.schedule import build_plan
    >>> plan = build_plan(torch.tensor([[0], [1]]), 2, mode="sparse")      # input node 0 -> neuron 1
    >>> codes = torch.tensor([0, 1], dtype=torch.uint8)
    >>> w = torch.tensor([2.0], requires_grad=True)
    >>> out = graph_train_forward(torch.tensor([[3.0]]), torch.tensor([0.5]), w, plan, codes,
    ...                           torch.tensor([1]), torch.tensor([1]))
    >>> out is None or (out.tolist() == [[6.5]] and out.sum().backward() is None and w.grad.tolist() == [3.0])
    True
    """
    ext = _cpp_for((x, bias.detach(), weight.detach()), None)
    if ext is None:
        return None
    return _TrainGraph.apply(x, bias, weight, ext, plan, codes, bias_pos, out_pos, check, states)
