"""Topology rules as composable scores: a prune score, a grow score (and, in
:class:`~ncg.evolve.loop.EditBudget`, a schedule).

A rule reads a :class:`ScoreContext` (the graph after the round's neuron removals, the recorded
coactivation, the model and the training data) and returns scores; the operators of
:mod:`ncg.evolve.operators` turn scores into edits. Methods are combinations, e.g.

=================  ==================  ===============  ==========================
method             prune score          grow score       schedule (``EditBudget``)
=================  ==================  ===============  ==========================
Free-Evolve        ``coactivation``     ``coactivation`` shrinking, tau-thresholded
magnitude pruning  ``magnitude``        ``coactivation`` shrinking (the same loop)
SET                ``magnitude``        ``random``       constant edges (``regrow``)
RigL               ``magnitude``        ``gradient``     constant, cosine-decaying
=================  ==================  ===============  ==========================

Prune scores: low means "drop". Only ``coactivation`` is thresholded by ``tau`` (edges whose
neurons fire together less than ``tau``); the others rank edges within the budget. Grow scores
return candidate pairs ``(sources, targets, scores)`` in neuron indices, high means "add". Each
rule's entry (:class:`PruneRule`, :class:`GrowRule`) also declares whether it reads a
coactivation recording (``needs_coactivation``), so the loop records one only for such rules.

Examples
--------
>>> import torch
>>> from ncg import NCG, FreeNet
>>> net = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=3, seed=0)
>>> ctx = ScoreContext(net.graph, None, net, (torch.randn(32, 3), torch.randint(0, 2, (32,))))
>>> PRUNE_SCORES["magnitude"].score(ctx).shape
(15,)
>>> sorted(GROW_SCORES)
['coactivation', 'coactive_gradient', 'gradient', 'none', 'random']
>>> sorted(name for name, rule in GROW_SCORES.items() if rule.needs_coactivation)
['coactivation', 'coactive_gradient']
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from ncg.batches import Batches, Data, as_batches
from ncg.distributed import all_reduce
from ncg.errors import NCGError
from ncg.evolve.coactivation import Coactivation
from ncg.evolve.operators import coactivation_scores, coactive_pairs, forward_non_edges
from ncg.graph import NCG
from ncg.kernels.sparse import pair_dots
from ncg.tasks import Task, get_task

__all__ = [
    "ScoreContext",
    "PruneRule",
    "GrowRule",
    "PRUNE_SCORES",
    "GROW_SCORES",
    "saliency_scores",
    "edge_gradients",
    "neuron_quota",
]

DENSE_GRADIENT_MAX_NEURONS = 4096
"""Up to this many neurons the grow gradient of every pair is one ``[N, N]`` product per batch."""

STATE_ELEMENTS = 1 << 27
"""The most elements of one ``[N, batch]`` state tensor (512 MiB in float32) that gradient
scoring holds: at a million neurons it scores 128 samples at a time."""


@dataclass
class ScoreContext:
    """What a rule may read when one round's edits are proposed.

    Attributes
    ----------
    graph : NCG
        The graph being edited (after the round's neuron removals).
    coactivation : Coactivation or None
        Firing statistics recorded on ``graph``'s neurons (``None`` if the round recorded none).
    model : FreeNet
        The model (its graph may still include the removed neurons: rules that need the model
        map through ``neuron_map``).
    train : tensors, Dataset or DataLoader
        Training data (:mod:`ncg.batches`); gradient rules use its first ``samples`` samples.
    task : Task
    tau : float
    measure : str
    samples : int
    rng : numpy Generator
    neuron_map : ndarray, optional
        For each neuron of ``graph``, its index in ``model`` (identity if ``None``).
    """

    graph: NCG
    coactivation: Coactivation | None
    model: nn.Module
    train: Data
    task: Task = field(default_factory=lambda: get_task("classification"))
    tau: float = 0.25
    measure: str = "phi"
    samples: int = 10_000
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    neuron_map: np.ndarray | None = None
    edge_map: np.ndarray | None = None

    def require_coactivation(self, rule: str) -> Coactivation:
        if self.coactivation is None:
            raise NCGError(f"the {rule!r} rule needs a coactivation recording; this round recorded none")
        return self.coactivation

    def model_neurons(self, neurons: np.ndarray) -> np.ndarray:
        """Indices in ``model`` of ``graph``'s neurons ``neurons``."""
        return neurons if self.neuron_map is None else self.neuron_map[neurons]

    def gradient_samples(self) -> Batches:
        """This rank's slice of the first ``samples`` training samples (all of them in one
        process), streamed; gradient rules sum their gradients over the ranks' slices."""
        return as_batches(self.train, argument="training data").first(self.samples).local()


def _summed_loss(task: Task, output: Tensor, target: Tensor) -> Tensor:
    loss = task.loss(output, target)
    return loss * output.shape[0] if task.loss_is_mean else loss


def saliency_scores(
    model: nn.Module, x: Tensor | Data, y: Tensor | None = None, batch_size: int = 1024,
    task: str | Task = "classification", across_ranks: bool = False,
) -> np.ndarray:
    """``|w * dL/dw|`` of every edge, with the gradient of ``task``'s loss summed over ``(x, y)``
    (and, with ``across_ranks``, over every data-parallel rank's ``(x, y)``: a collective call).
    ``x`` may also be the whole data: ``(x, y)``, a Dataset or a DataLoader (:mod:`ncg.batches`)."""
    task = get_task(task)
    model.zero_grad(set_to_none=True)
    device = model.weight.device
    for xb, yb in as_batches(x, y, "saliency data").in_order(batch_size):
        _summed_loss(task, model(xb.to(device)), yb.to(device)).backward()
    grad = model.weight.grad if model.weight.grad is not None else torch.zeros_like(model.weight)
    if across_ranks:
        grad = all_reduce(grad, kind="statistics")
    scores = (model.weight.detach() * grad).abs().cpu().numpy()
    model.zero_grad(set_to_none=True)
    return scores


def edge_gradients(
    model: nn.Module,
    x: Tensor | Data,
    y: Tensor | None,
    sources: np.ndarray,
    targets: np.ndarray,
    task: str | Task = "classification",
    batch_size: int = 1024,
    across_ranks: bool = False,
) -> np.ndarray:
    """``dL/dw`` of the (possibly missing) edges ``sources[k] -> targets[k]`` at weight 0.

    With ``z = u + W^T h``, an edge ``i -> j`` of weight ``w`` adds ``w h_i`` to ``z_j``, so
    ``dL/dw = sum_b h_i(b) dL/dz_j(b)``; ``dL/dz`` is read from the external input ``u``
    (:meth:`~ncg.model.FreeNet.forward_states`). ``x`` may also be the whole data (``y`` then
    ``None``): ``(x, y)``, a Dataset or a DataLoader (:mod:`ncg.batches`, which keeps its own
    batches). The loss is summed over ``(x, y)`` (and, with ``across_ranks``, over every
    data-parallel rank's ``(x, y)``: a collective call). Up to
    :data:`DENSE_GRADIENT_MAX_NEURONS` neurons, all pairs come from one ``h G^T`` product per
    batch over the rows the candidates read (of at most ``batch_size`` samples, fewer where ``N x batch`` would pass
    :data:`STATE_ELEMENTS`); above, from dot products of the candidates' rows only (:func:`ncg.kernels.sparse.pair_dots`).

    Examples
    --------
    >>> import numpy as np, torch
    >>> from ncg import NCG, FreeNet
    >>> net = FreeNet(NCG.complete(4, num_outputs=2, seed=0), in_features=3, seed=0)
    >>> edge_gradients(net, torch.randn(8, 3), torch.randint(0, 2, (8,)), np.array([0]), np.array([3])).shape
    (1,)
    """
    task = get_task(task)
    device = next(model.parameters()).device
    position = model.plan()[0].position.cpu().numpy()
    src_pos = torch.from_numpy(position[sources]).to(device)
    dst_pos = torch.from_numpy(position[targets]).to(device)
    dense = model.num_neurons <= DENSE_GRADIENT_MAX_NEURONS
    if dense:  # the product over the rows candidates read only: no input node is a target
        src_rows, src_pos = torch.unique(src_pos, return_inverse=True)
        dst_rows, dst_pos = torch.unique(dst_pos, return_inverse=True)
    total = torch.zeros(len(sources), dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    batch_size = max(1, min(batch_size, STATE_ELEMENTS // max(1, model.num_neurons)))
    for xb, yb in as_batches(x, y, "gradient data").in_order(batch_size):
        output, u, h = model.forward_states(xb.to(device))
        yb = yb.to(device)
        u.retain_grad()
        model.zero_grad(set_to_none=True)
        _summed_loss(task, output, yb).backward()
        h, g = h.detach(), u.grad
        if dense:
            total += (h[src_rows] @ g[dst_rows].t())[src_pos, dst_pos].double()
        else:
            total += pair_dots(h, g, src_pos, dst_pos).double()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    if across_ranks:
        total = all_reduce(total, kind="statistics")
    return total.cpu().numpy()


class PruneRule(NamedTuple):
    """A prune score ``score(ctx) -> [E]`` (low = drop first); ``thresholded`` rules drop only
    edges scored below ``tau``, the others rank every edge within the budget;
    ``needs_coactivation`` rules read ``ctx.coactivation`` (the loop records it for them)."""

    score: Callable[[ScoreContext], np.ndarray]
    thresholded: bool = False
    needs_coactivation: bool = False


def _coactivation_prune(ctx: ScoreContext) -> np.ndarray:
    return coactivation_scores(ctx.graph, ctx.require_coactivation("coactivation"), ctx.measure)


def _magnitude_prune(ctx: ScoreContext) -> np.ndarray:
    return ctx.graph.weight.abs().numpy()


def _saliency_prune(ctx: ScoreContext) -> np.ndarray:
    scores = saliency_scores(ctx.model, ctx.gradient_samples(), task=ctx.task, across_ranks=True)
    return scores if ctx.edge_map is None else scores[ctx.edge_map]


def _coactivation_magnitude_prune(ctx: ScoreContext) -> np.ndarray:
    phi = coactivation_scores(ctx.graph, ctx.require_coactivation("coactivation_magnitude"), "phi")
    return ctx.graph.weight.abs().numpy() * (1.0 + phi) / 2.0


def _incoming_rms(graph: NCG) -> np.ndarray:
    """Per edge, the root mean square of the weights into its target neuron."""
    weight, dst = graph.weight.numpy().astype(np.float64), graph.edge_index[1].numpy()
    count = np.bincount(dst, minlength=graph.num_neurons)
    mean_square = np.bincount(dst, weights=weight * weight, minlength=graph.num_neurons) / np.maximum(count, 1)
    return np.sqrt(mean_square)[dst]


def _normalized_magnitude_prune(ctx: ScoreContext) -> np.ndarray:
    rms = _incoming_rms(ctx.graph)
    return ctx.graph.weight.abs().numpy() / np.where(rms > 0, rms, 1.0)


def neuron_quota(graph: NCG) -> np.ndarray:
    """Per non-input neuron, its share of the edges in the spirit of ERK: a layer of ``n_in``
    inputs and ``n_out`` outputs keeps density ``(n_in + n_out) / (n_in n_out)``, so a neuron of
    fan-in ``d_in`` and fan-out ``d_out`` (an output's decoder counts as one) keeps about
    ``(d_in + d_out) / d_out`` of its incoming edges, capped at ``d_in`` (0 without any).

    Examples
    --------
    >>> from ncg import NCG
    >>> neuron_quota(NCG.complete(4, num_outputs=1, seed=0)).tolist()
    [0.0, 1.0, 2.0, 3.0]
    """
    src, dst = graph.edge_index.numpy()
    fan_in = np.bincount(dst, minlength=graph.num_neurons).astype(np.float64)
    fan_out = np.bincount(src, minlength=graph.num_neurons).astype(np.float64)
    fan_out[graph.outputs.numpy()] += 1.0
    return np.minimum(fan_in, (fan_in + fan_out) / np.maximum(fan_out, 1.0))


def _quota_prune(ctx: ScoreContext) -> np.ndarray:
    """``quota_j / (rank + 1)``: an edge's rank by ``|w|`` among its target's incoming edges
    (0 the largest) against the target's :func:`neuron_quota`, so one global threshold keeps
    about the same multiple of every neuron's quota; ties go to the larger normalised weight."""
    graph = ctx.graph
    dst = graph.edge_index[1].numpy()
    magnitude = graph.weight.abs().numpy()
    order = np.lexsort((-magnitude, dst))
    first = np.searchsorted(dst[order], dst[order], side="left")
    rank = np.empty(dst.size, dtype=np.float64)
    rank[order] = np.arange(dst.size) - first
    normalized = _normalized_magnitude_prune(ctx)
    return neuron_quota(graph)[dst] / (rank + 1.0) * (1.0 + 1e-6 * normalized / (1.0 + normalized))


PRUNE_SCORES: dict[str, PruneRule] = {
    "coactivation": PruneRule(_coactivation_prune, thresholded=True, needs_coactivation=True),
    "magnitude": PruneRule(_magnitude_prune),
    "saliency": PruneRule(_saliency_prune),
    "coactivation_magnitude": PruneRule(_coactivation_magnitude_prune, needs_coactivation=True),
    "normalized_magnitude": PruneRule(_normalized_magnitude_prune),
    "quota": PruneRule(_quota_prune),
}
"""Prune rules by name: Free-Evolve's Hebbian ``coactivation`` (tau-thresholded), the
baselines ``magnitude`` (``|w|``) and ``saliency`` (``|w dL/dw|``), and
``coactivation_magnitude``: ``|w| (1 + phi) / 2``, a weight discounted by how little its two
neurons fire together (an edge between anti-correlated neurons goes first);
``normalized_magnitude``: ``|w|`` over the root mean square of the weights into the same neuron,
so that one global threshold compares every neuron's edges on its own scale (a complete DAG gives
neuron ``j`` a fan-in of ``F + j`` and weights of scale ``1 / sqrt(F + j)``); ``quota``: each
neuron keeps its ERK-like share of the edges (:func:`neuron_quota`), its largest first."""

Candidates = tuple[np.ndarray, np.ndarray, np.ndarray]


class GrowRule(NamedTuple):
    """A grow score ``score(ctx) -> (sources, targets, scores)``: candidate pairs in neuron
    indices, high = add first; ``needs_coactivation`` rules read ``ctx.coactivation`` (the loop
    records it for them)."""

    score: Callable[[ScoreContext], Candidates]
    needs_coactivation: bool = False


def _coactivation_grow(ctx: ScoreContext) -> Candidates:
    return coactive_pairs(ctx.graph, ctx.require_coactivation("coactivation"), ctx.tau, ctx.measure)


def _random_grow(ctx: ScoreContext) -> Candidates:
    src, dst = forward_non_edges(ctx.graph, rng=ctx.rng)
    return src, dst, ctx.rng.random(src.size)


def _gradient_scores(ctx: ScoreContext, src: np.ndarray, dst: np.ndarray) -> Candidates:
    grad = edge_gradients(
        ctx.model, ctx.gradient_samples(), None, ctx.model_neurons(src), ctx.model_neurons(dst), task=ctx.task,
        across_ranks=True,
    )
    return src, dst, np.abs(grad)


def _gradient_grow(ctx: ScoreContext) -> Candidates:
    return _gradient_scores(ctx, *forward_non_edges(ctx.graph, rng=ctx.rng))


def _coactive_gradient_grow(ctx: ScoreContext) -> Candidates:
    src, dst, _ = coactive_pairs(ctx.graph, ctx.require_coactivation("coactive_gradient"), ctx.tau, ctx.measure)
    return _gradient_scores(ctx, src, dst)


def _no_grow(ctx: ScoreContext) -> Candidates:
    empty = np.zeros(0, dtype=np.int64)
    return empty, empty, np.zeros(0)


GROW_SCORES: dict[str, GrowRule] = {
    "coactivation": GrowRule(_coactivation_grow, needs_coactivation=True),
    "random": GrowRule(_random_grow),
    "gradient": GrowRule(_gradient_grow),
    "coactive_gradient": GrowRule(_coactive_gradient_grow, needs_coactivation=True),
    "none": GrowRule(_no_grow),
}
"""Grow rules by name, each scoring ``ctx -> (sources, targets, scores)`` over forward non-edges:
Hebbian ``coactivation`` (pairs firing together above ``tau``, Free-Evolve), ``random``
(SET), ``gradient`` (``|dL/dw|`` at weight 0, RigL), ``coactive_gradient`` (RigL's gradient
restricted to the pairs that fire together above ``tau``), ``none``."""
