"""Coactivation statistics: which neurons fire together, streamed over data.

A neuron *fires* on a sample when its activation exceeds a threshold that depends on its
activation function (:data:`FIRING_THRESHOLDS`, each record's ``firing_threshold`` in
:data:`ncg.activations.ACTIVATIONS`: 0.5 for sigmoid, 0 for the others), or a single ``threshold`` given by the
caller. The recorder streams batches under ``torch.no_grad()`` and keeps, for a set of
*tracked pairs* ``i -> j`` (``i`` before ``j`` in the topological order), the number of samples on
which both fire, plus each neuron's firing count. Nothing of size ``samples x neurons`` is kept.

Tracked pairs:

* up to ``dense_max_neurons`` neurons: every forward pair, accumulated by one GEMM per batch
  (``F^T F``; memory ``O(N^2)``, fastest for small graphs);
* above it: the existing edges (to score pruning) plus ``candidates_per_neuron`` sampled
  non-edges per target neuron (to score augmentation), accumulated by a chunked gather-dot,
  memory ``O(E + k N)``.

Measures (:data:`MEASURES`), from the rates ``p_i``, ``p_j`` and ``p_ij``:

* ``"joint"``: ``P(i and j fire) = p_ij`` in ``[0, 1]``;
* ``"phi"``: the phi coefficient (Pearson correlation of the two firing indicators),
  ``(p_ij - p_i p_j) / sqrt(p_i (1 - p_i) p_j (1 - p_j))`` in ``[-1, 1]``; 0 where a neuron
  always or never fires.

Examples
--------
>>> import torch
>>> from ncg import NCG, FreeNet
>>> from ncg.evolve.coactivation import record_coactivation
>>> net = FreeNet(NCG.complete(5, num_outputs=1, seed=0), in_features=3, seed=0)
>>> co = record_coactivation(net, torch.randn(64, 3), batch_size=32)
>>> co.num_samples, co.num_pairs, co.matrix("phi").shape
(64, 10, (5, 5))
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ncg.activations import ACTIVATIONS, firing_thresholds
from ncg.arrays import is_member
from ncg.batches import Data, as_batches
from ncg.bounded import read_npz
from ncg.distributed import all_reduce, world
from ncg.errors import NCGError, NonFiniteError
from ncg.threads import Threads, thread_scope

__all__ = [
    "Coactivation",
    "CoactivationRecorder",
    "MEASURES",
    "FIRING_THRESHOLDS",
    "firing_thresholds",
    "record_coactivation",
]

FIRING_THRESHOLDS: dict[str, float] = {name: a.firing_threshold for name, a in ACTIVATIONS.items()}
"""Default firing threshold per activation: a neuron fires when its activation is above it (a view
of :data:`ncg.activations.ACTIVATIONS`; :func:`firing_thresholds` gives them per neuron)."""


def _joint(p_ij: np.ndarray, p_i: np.ndarray, p_j: np.ndarray) -> np.ndarray:
    return p_ij


def _phi(p_ij: np.ndarray, p_i: np.ndarray, p_j: np.ndarray) -> np.ndarray:
    denom = np.sqrt(p_i * (1 - p_i) * p_j * (1 - p_j))
    out = np.zeros_like(p_ij)
    ok = denom > 1e-12
    out[ok] = (p_ij[ok] - p_i[ok] * p_j[ok]) / denom[ok]
    return np.clip(out, -1.0, 1.0)


MEASURES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "joint": _joint,
    "phi": _phi,
}
"""Coactivation measures by name: ``(p_ij, p_i, p_j) -> score``."""


_SAVED = ("num_neurons", "num_samples", "firing_rate", "src", "dst", "joint")
"""The arrays of a saved :class:`Coactivation`, in the constructor's order."""


@dataclass
class Coactivation:
    """Firing statistics over ``num_samples`` samples, indexed by current neuron index.

    Attributes
    ----------
    num_neurons, num_samples : int
    firing_rate : ndarray ``[N]``
        ``p_i``: fraction of samples on which neuron ``i`` fired.
    src, dst : ndarray ``[P]``
        The tracked pairs ``src -> dst``.
    joint : ndarray ``[P]``
        ``p_ij`` for each tracked pair.
    """

    num_neurons: int
    num_samples: int
    firing_rate: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    joint: np.ndarray

    @property
    def num_pairs(self) -> int:
        """Number of tracked pairs ``P``."""
        return int(self.src.size)

    def score(self, measure: str = "phi") -> np.ndarray:
        """The measure on every tracked pair, aligned with :attr:`src` / :attr:`dst`."""
        if measure not in MEASURES:
            raise NCGError(f"measure must be one of {sorted(MEASURES)}, got {measure!r}")
        p = self.firing_rate
        return MEASURES[measure](self.joint, p[self.src], p[self.dst])

    def matrix(self, measure: str = "joint") -> sp.csr_matrix:
        """The measure as a sparse ``[N, N]`` matrix (entry ``[i, j]`` for tracked ``i -> j``)."""
        n = self.num_neurons
        return sp.csr_matrix((self.score(measure), (self.src, self.dst)), shape=(n, n))

    def pair_index(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Index of each ``(src, dst)`` among the tracked pairs, ``-1`` where untracked."""
        keys = self.src.astype(np.int64) * self.num_neurons + self.dst
        query = np.asarray(src, dtype=np.int64) * self.num_neurons + np.asarray(dst)
        out = np.full(query.shape, -1, dtype=np.int64)
        if keys.size == 0:
            return out
        order = np.argsort(keys)
        sorted_keys = keys[order]
        found = np.minimum(np.searchsorted(sorted_keys, query), keys.size - 1)
        match = sorted_keys[found] == query
        out[match] = order[found[match]]
        return out

    def remap(self, neuron_map: np.ndarray) -> Coactivation:
        """The statistics renumbered for a graph whose neuron ``v`` was neuron ``neuron_map[v]``.

        Pairs touching a neuron that is gone are dropped; new neurons (``-1``) have rate 0.

        Examples
        --------
        >>> import numpy as np
        >>> co = Coactivation(3, 10, np.array([0.5, 0.2, 0.4]), np.array([0, 1]), np.array([2, 2]),
        ...                   np.array([0.3, 0.1]))
        >>> sub = co.remap(np.array([0, 2]))
        >>> sub.src.tolist(), sub.dst.tolist(), sub.joint.tolist()
        ([0], [1], [0.3])
        """
        neuron_map = np.asarray(neuron_map, dtype=np.int64)
        new_index = np.full(self.num_neurons, -1, dtype=np.int64)
        kept = neuron_map >= 0
        new_index[neuron_map[kept]] = np.flatnonzero(kept)
        src, dst = new_index[self.src], new_index[self.dst]
        pair_kept = (src >= 0) & (dst >= 0)
        rate = np.zeros(neuron_map.size)
        rate[kept] = self.firing_rate[neuron_map[kept]]
        return Coactivation(
            neuron_map.size, self.num_samples, rate, src[pair_kept], dst[pair_kept], self.joint[pair_kept]
        )

    def save(self, path) -> None:
        """Write an ``.npz`` file."""
        np.savez_compressed(path, **{name: getattr(self, name) for name in _SAVED})

    @classmethod
    def load(cls, path) -> Coactivation:
        """Read a file written by :meth:`save`.

        Each array's declared size is checked against the file's bytes before it is read
        (:func:`ncg.bounded.read_npz`), and the statistics against each other: ``num_neurons``
        is the length of ``firing_rate``, the pairs name neurons below it, rates lie in ``[0, 1]``.

        Raises
        ------
        NCGError
            The file is missing, damaged, lacks an array, or its arrays disagree; the message
            names the file.
        """
        if not os.path.isfile(path):
            raise NCGError(f"coactivation file {path} does not exist")
        data = read_npz(path)
        missing = [name for name in _SAVED if name not in data]
        if missing:
            raise NCGError(f"coactivation file {path} lacks the arrays {missing}")
        counts = {name: data[name] for name in ("num_neurons", "num_samples")}
        for name, value in counts.items():
            if value.shape != () or value.dtype.kind not in "iu" or value < 0:
                raise NCGError(f"coactivation file {path}: {name} must be a non-negative int, got {value!r}")
        n = int(counts["num_neurons"])
        firing_rate, src, dst, joint = (data[name] for name in _SAVED[2:])
        if firing_rate.shape != (n,):
            raise NCGError(f"coactivation file {path}: num_neurons is {n} but firing_rate has shape "
                           f"{list(firing_rate.shape)}")
        if not (src.ndim == dst.ndim == joint.ndim == 1 and src.size == dst.size == joint.size):
            raise NCGError(f"coactivation file {path}: src, dst and joint must be 1-D of one length, got shapes "
                           f"{[list(a.shape) for a in (src, dst, joint)]}")
        for name, pairs in (("src", src), ("dst", dst)):
            if pairs.dtype.kind not in "iu" or (pairs.size and not (0 <= pairs.min() and pairs.max() < n)):
                raise NCGError(f"coactivation file {path}: {name} must hold neuron indices 0 .. {n - 1}")
        for name, rate in (("firing_rate", firing_rate), ("joint", joint)):
            if rate.dtype.kind != "f" or not ((0 <= rate) & (rate <= 1)).all():
                raise NCGError(f"coactivation file {path}: {name} must hold rates in [0, 1]")
        return cls(n, int(counts["num_samples"]), firing_rate, src.astype(np.int64), dst.astype(np.int64), joint)


def _sample_candidates(
    num_neurons: int, position: np.ndarray, edge_keys: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` random earlier neurons per target that are not already its sources."""
    order = np.argsort(position)
    src_list, dst_list = [], []
    for p in range(1, num_neurons):
        target = order[p]
        picks = order[rng.choice(p, size=min(k, p), replace=False)]
        src_list.append(picks)
        dst_list.append(np.full(picks.size, target))
    if not src_list:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    src, dst = np.concatenate(src_list), np.concatenate(dst_list)
    keep = ~is_member(src * num_neurons + dst, edge_keys)
    return src[keep], dst[keep]


class CoactivationRecorder:
    """Streaming accumulator of firing statistics for one model's current graph.

    Feed it activations batch by batch with :meth:`update` (``[B, N]`` in neuron-id order, e.g.
    from :meth:`~ncg.model.FreeNet.neuron_activations` or a training-time hook), then read the
    statistics with :meth:`result`. Parameters are those of :func:`record_coactivation`;
    ``pairs=False`` records firing rates only (the result tracks no pair), all that removing
    dead neurons reads, at a cost of ``O(B N)`` a batch instead of the pairs' ``O(B N^2)`` GEMMs.

    Examples
    --------
    >>> import torch
    >>> from ncg import NCG, FreeNet
    >>> net = FreeNet(NCG.complete(4, seed=0), in_features=2, seed=0)
    >>> recorder = CoactivationRecorder(net)
    >>> recorder.update(net.neuron_activations(torch.randn(10, 2)))
    >>> recorder.result().num_samples
    10
    """

    def __init__(
        self,
        model,
        threshold: float | None = None,
        dense_max_neurons: int = 4096,
        candidates_per_neuron: int = 32,
        seed: int = 0,
        pairs: bool = True,
    ) -> None:
        graph = model.graph
        n = self.num_neurons = graph.num_neurons
        device = model.bias.device
        self.joint_dense: Tensor | None = None
        if not pairs:  # the sampled-pairs mode with no pair: only the firing counts accumulate
            self.src = self.dst = np.zeros(0, dtype=np.int64)
            self.src_t = self.dst_t = torch.zeros(0, dtype=torch.long, device=device)
            self.joint_counts = torch.zeros(0, dtype=torch.float64, device=device)
        elif n <= dense_max_neurons:
            # Tracked pairs are p < q in topological position: the upper triangle of F^T F with
            # columns in that order, computed as three GEMMs over two halves (3/4 of the full cost).
            self.src_pos, self.dst_pos = np.triu_indices(n, k=1)
            order = graph.order.numpy()
            self.order = graph.order.to(device)
            self.src, self.dst = order[self.src_pos], order[self.dst_pos]
            self.joint_dense = torch.zeros(n, n, dtype=torch.float64, device=device)
        else:
            ei = graph.edge_index.numpy()
            keys = ei[0].astype(np.int64) * n + ei[1]
            rng = np.random.default_rng(seed)
            cand_src, cand_dst = _sample_candidates(n, graph.position.numpy(), keys, candidates_per_neuron, rng)
            self.src, self.dst = np.concatenate([ei[0], cand_src]), np.concatenate([ei[1], cand_dst])
            self.src_t, self.dst_t = torch.from_numpy(self.src).to(device), torch.from_numpy(self.dst).to(device)
            self.joint_counts = torch.zeros(self.src.size, dtype=torch.float64, device=device)
        self.fire_counts = torch.zeros(n, dtype=torch.float64, device=device)
        self.cut = firing_thresholds(model).to(device) if threshold is None else torch.full((n,), float(threshold), device=device)
        self.num_samples = 0
        self.num_batches = 0

    @torch.no_grad()
    def update(self, h: Tensor) -> None:
        """Add one batch of activations ``[B, N]`` (neuron-id order)."""
        if h.dim() != 2 or h.shape[1] != self.num_neurons:
            raise NCGError(f"activations must have shape [B, {self.num_neurons}], got {list(h.shape)}")
        if not torch.isfinite(h.sum()):
            bad = torch.nonzero(~torch.isfinite(h).all(0)).flatten()[:10].tolist()
            raise NonFiniteError(
                f"activations of neurons {bad} are NaN or infinite in batch {self.num_batches}; "
                "coactivation statistics would be corrupt (check the learning rate and inputs)"
            )
        fired = (h > self.cut).to(torch.float32)
        self.fire_counts += fired.sum(0).double()
        if self.joint_dense is not None:
            f = fired[:, self.order]
            half = self.num_neurons // 2
            lo, hi = f[:, :half], f[:, half:]
            self.joint_dense[:half, :half] += (lo.t() @ lo).double()
            self.joint_dense[:half, half:] += (lo.t() @ hi).double()
            self.joint_dense[half:, half:] += (hi.t() @ hi).double()
        else:
            chunk = max(1, (1 << 22) // max(1, fired.shape[0]))
            for start in range(0, self.src_t.numel(), chunk):
                s, d = self.src_t[start:start + chunk], self.dst_t[start:start + chunk]
                self.joint_counts[start:start + chunk] += (fired[:, s] * fired[:, d]).sum(0).double()
        self.num_samples += fired.shape[0]
        self.num_batches += 1

    def sum_over_ranks(self) -> None:
        """Add up the counts of every data-parallel rank (each recorded its share of the
        samples), so that every rank holds the statistics of all of them; one all-reduce of
        ``8 (N + P + 1)`` bytes, ``P = N^2`` in the dense mode. Nothing to do in one process."""
        if world()[1] == 1:
            return
        joint = self.joint_dense if self.joint_dense is not None else self.joint_counts
        samples = torch.tensor([float(self.num_samples)], dtype=torch.float64, device=joint.device)
        total = all_reduce(torch.cat([self.fire_counts, joint.reshape(-1), samples]), kind="statistics")
        fire, joint_total, samples = total.split([self.fire_counts.numel(), joint.numel(), 1])
        self.fire_counts = fire.clone()
        if self.joint_dense is not None:
            self.joint_dense = joint_total.reshape(joint.shape).clone()
        else:
            self.joint_counts = joint_total.clone()
        self.num_samples = int(samples.item())

    def result(self) -> Coactivation:
        """The statistics so far."""
        if self.num_samples == 0:
            raise NCGError("no samples were recorded: the data is empty")
        if self.joint_dense is not None:
            device = self.joint_dense.device
            joint = self.joint_dense[torch.from_numpy(self.src_pos).to(device), torch.from_numpy(self.dst_pos).to(device)]
        else:
            joint = self.joint_counts
        return Coactivation(
            num_neurons=self.num_neurons,
            num_samples=self.num_samples,
            firing_rate=(self.fire_counts / self.num_samples).cpu().numpy(),
            src=self.src.astype(np.int64),
            dst=self.dst.astype(np.int64),
            joint=(joint / self.num_samples).cpu().numpy(),
        )


@torch.no_grad()
def record_coactivation(
    model,
    data: Data,
    batch_size: int = 2048,
    threshold: float | None = None,
    max_samples: int | None = None,
    dense_max_neurons: int = 4096,
    candidates_per_neuron: int = 32,
    seed: int = 0,
    progress: bool = False,
    across_ranks: bool = False,
    pairs: bool = True,
    threads: Threads = "auto",
) -> Coactivation:
    """Stream ``data`` through ``model`` and accumulate coactivation statistics.

    Parameters
    ----------
    model : FreeNet
        The network; put in eval mode for the recording and restored afterwards.
    data : Tensor, tuple of Tensor, Dataset, DataLoader or iterable
        Inputs ``[S, ...]``, tensors ``(x, y)``, a Dataset of ``(x, y)`` items, or a DataLoader
        or other iterable of batches ``x`` or ``(x, y)``, streamed in its order
        (:mod:`ncg.batches`); targets are ignored.
    batch_size : int
        Batch size of tensors and Datasets (a DataLoader keeps its own).
    threshold : float, optional
        A neuron fires when its activation is ``> threshold``; by default each neuron's
        threshold comes from its activation (:func:`firing_thresholds`).
    max_samples : int, optional
        Stop after this many samples.
    dense_max_neurons : int
        Track every forward pair with a dense GEMM up to this many neurons; above it, track
        edges plus sampled candidates (see the module docstring).
    candidates_per_neuron : int
        Sampled non-edge candidates per target neuron in the sparse mode.
    seed : int
        Seeds the candidate sampling.
    progress : bool
        Show a tqdm progress bar.
    across_ranks : bool
        Data-parallel recording (:mod:`ncg.distributed`): every rank passes the same tensors or
        Dataset ``data`` (a DataLoader raises), streams its slice of the first ``max_samples``
        samples and gets the statistics of all of them; a collective call, so every rank must
        make it.
    pairs : bool
        Track pairs (default); ``False`` records firing rates alone (no pair in the result).
    threads : "auto", int or None
        torch's intra-op threads while recording (:func:`ncg.threads.thread_scope`).

    Raises
    ------
    NonFiniteError
        If any activation is NaN or infinite (the statistics would be silently wrong).
    """
    data = as_batches(data, argument="coactivation data").first(max_samples)
    if across_ranks:
        data = data.local()
    recorder = CoactivationRecorder(model, threshold, dense_max_neurons, candidates_per_neuron, seed, pairs)
    device = model.bias.device
    was_training = model.training
    model.eval()
    bar = tqdm(total=data.num_samples, desc="coactivation", unit="sample", disable=not progress or world()[0] > 0, leave=False)
    try:
        with thread_scope(threads, model, data.batch_size(batch_size)) as tick:
            for x, _ in data.in_order(batch_size):
                tick()
                recorder.update(model.neuron_activations(x.to(device)))
                bar.update(x.shape[0])
    finally:
        bar.close()
        model.train(was_training)
    if across_ranks:
        recorder.sum_over_ranks()
    return recorder.result()
