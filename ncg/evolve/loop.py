"""Free-Evolve: alternate weight training with topology edits.

Each round: train -> record coactivation -> propose edits (remove dead neurons, prune, augment,
grow) within a budget -> apply them -> rewire the model and its optimiser. The loop stops when a
round proposes no edit (the graph stopped changing) or after ``rounds`` rounds, then fine-tunes.
Every round is appended to a :class:`~ncg.evolve.history.History`, and callbacks run after each.

Under ``torchrun`` (:mod:`ncg.distributed`) a run is data-parallel: every rank trains on its
slice of each global batch, records coactivation on its share of the recorded samples, and
the counts (and gradient scores) are summed over the ranks, so every rank proposes the same
edits from the same statistics and seeds, applies them and rewires its optimiser alike. At the
start and after every round the ranks' models and optimiser states are compared
(:func:`~ncg.distributed.check_consistent`); a difference raises
:class:`~ncg.errors.InconsistentRanksError`.

Examples
--------
>>> import torch
>>> from ncg import NCG, FreeNet
>>> from ncg.evolve.loop import EvolveConfig, FreeEvolve
>>> torch.manual_seed(0)  # doctest: +ELLIPSIS
<torch._C.Generator object at ...>
>>> x, y = torch.randn(256, 6), torch.randint(0, 3, (256,))
>>> net = FreeNet(NCG.complete(12, num_outputs=3, seed=0), in_features=6, seed=0)
>>> config = EvolveConfig(rounds=2, epochs_per_round=1, final_epochs=1, record_samples=128, tau=0.1)
>>> history = FreeEvolve(net, config).run((x, y))
>>> len(history) >= 2
True
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from ncg.activations import ACTIVATIONS
from ncg.batches import Batches, Data, as_batches
from ncg.distributed import check_consistent, local_samples_before
from ncg.errors import NCGError, TargetMissedWarning
from ncg.evolve.apply import apply_edits, rewire
from ncg.evolve.coactivation import MEASURES, Coactivation, CoactivationRecorder, record_coactivation
from ncg.evolve.edits import EditSet
from ncg.evolve.history import History, RoundRecord
from ncg.evolve.operators import grow_edges, grow_neurons, prune_edges, remove_neurons
from ncg.evolve.rules import GROW_SCORES, PRUNE_SCORES, ScoreContext, saliency_scores
from ncg.graph import NCG
from ncg.tasks import get_task
from ncg.threads import Threads, resolve_threads
from ncg.train import adam, evaluate, train_epochs

__all__ = ["EditBudget", "EvolveConfig", "FreeEvolve", "prune_fraction_to_reach", "saliency_scores"]

Callback = Callable[["FreeEvolve", RoundRecord], None]

RELU_LIKE = tuple(name for name, a in ACTIVATIONS.items() if a.zero_when_silent)
"""Activations whose neurons output exactly 0 when they do not fire (``relu``, ``square_relu``)."""


DECAYS = ("constant", "cosine")


@dataclass
class EditBudget:
    """How much the topology may change per round: the schedule, separate from the rules.

    Attributes
    ----------
    prune_fraction : float
        At most this fraction of the current edges is pruned per round.
    add_fraction : float
        At most this fraction of the current edge count is added per round.
    target_edges : int, optional
        Shrink towards this edge count: a round prunes no further below it than its adds bring
        back, adds no more than it prunes while above it, and refills up to it from below. At
        the target, a round with ``add_fraction > 0`` swaps that many edges (prune, regrow).
    target_density : float, optional
        The same as a fraction of the complete DAG's ``N (N - 1) / 2`` edges (the smaller
        target wins when both are given).
    grow_neurons : int
        New neurons proposed per round; their edges count against the round's ``max_add``, so
        with no edge budget left no neuron grows.
    regrow : bool
        Constant budget: every round grows exactly as many edges as it pruned (SET, RigL), and
        prunes no more than the grow rule has candidates, so the edge count never changes
        (``add_fraction`` and the targets are then ignored).
    decay : {"constant", "cosine"}
        ``cosine`` scales both fractions by ``(1 + cos(pi t / decay_end)) / 2`` at round progress
        ``t`` in [0, 1), and by 0 from ``decay_end`` on (RigL's update schedule).
    decay_end : float
        Fraction of the rounds after which a decaying schedule stops editing.

    Examples
    --------
    >>> from ncg import NCG
    >>> g = NCG.complete(11, num_outputs=1)
    >>> EditBudget(prune_fraction=0.2, add_fraction=0.0).for_graph(g)
    (11, 0)
    >>> EditBudget(prune_fraction=0.2, decay="cosine", decay_end=0.5).for_graph(g, progress=0.25)
    (5, 0)
    """

    prune_fraction: float = 0.1
    add_fraction: float = 0.02
    target_edges: int | None = None
    target_density: float | None = None
    grow_neurons: int = 0
    regrow: bool = False
    decay: str = "constant"
    decay_end: float = 1.0

    def validate(self) -> EditBudget:
        """Raise :class:`~ncg.errors.NCGError` naming the first bad field."""
        for name in ("prune_fraction", "add_fraction", "target_density"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise NCGError(f"EditBudget.{name} must be in [0, 1], got {value}")
        if self.grow_neurons < 0:
            raise NCGError(f"EditBudget.grow_neurons must be >= 0, got {self.grow_neurons}")
        if self.target_edges is not None and self.target_edges < 0:
            raise NCGError(f"EditBudget.target_edges must be >= 0, got {self.target_edges}")
        if self.decay not in DECAYS:
            raise NCGError(f"EditBudget.decay must be one of {DECAYS}, got {self.decay!r}")
        if not 0.0 < self.decay_end <= 1.0:
            raise NCGError(f"EditBudget.decay_end must be in (0, 1], got {self.decay_end}")
        return self

    def scale(self, progress: float) -> float:
        """The factor applied to both fractions at round progress ``progress`` in [0, 1)."""
        if self.decay == "constant":
            return 1.0
        if progress >= self.decay_end:
            return 0.0
        return 0.5 * (1.0 + math.cos(math.pi * progress / self.decay_end))

    def for_graph(self, graph: NCG, progress: float = 0.0, rounds_left: int | None = None) -> tuple[int, int]:
        """``(max_prune, max_add)`` for one round on ``graph`` at round progress ``progress``.

        With ``regrow`` the round grows as many edges as it pruned, so ``max_add`` is
        ``max_prune`` here (the loop grows exactly the number it pruned). Given ``rounds_left``
        (this round included) and a target, the round prunes at least the fraction that reaches
        the target in those rounds (:func:`prune_fraction_to_reach`), so a schedule reaches any
        target it is given, whatever ``prune_fraction`` says.

        Examples
        --------
        >>> from ncg import NCG
        >>> g = NCG.complete(101, num_outputs=1)  # 5,050 edges
        >>> EditBudget(prune_fraction=0.2, add_fraction=0.0, target_edges=50).for_graph(g, rounds_left=2)
        (4547, 0)
        """
        self.validate()
        e = graph.num_edges
        factor = self.scale(progress)
        target = self.target(graph)
        fraction = self.prune_fraction * factor
        if rounds_left and target is not None and not self.regrow:
            fraction = max(fraction, prune_fraction_to_reach(e, target, rounds_left, self.add_fraction * factor))
        max_prune = int(fraction * e)
        if self.regrow:
            return max_prune, max_prune
        max_add = int(self.add_fraction * factor * e)
        if target is not None:  # prune no further than the adds can bring back; never grow above the target
            max_prune = min(max_prune, max(0, e - target + max_add))
            max_add = min(max_add, max(max_prune, target - e + max_prune))
        return max_prune, max_add

    def target(self, graph: NCG) -> int | None:
        """The edge target on ``graph`` (the smaller of ``target_edges`` and ``target_density``)."""
        targets = [] if self.target_edges is None else [self.target_edges]
        if self.target_density is not None:
            n = graph.num_neurons
            targets.append(round(self.target_density * n * (n - 1) / 2))
        return min(targets) if targets else None


def prune_fraction_to_reach(edges: int, target: int, rounds: int, add_fraction: float = 0.0) -> float:
    """The fraction to prune per round so that ``rounds`` rounds, each pruning that fraction of
    the edges and adding ``add_fraction`` of them back, go from ``edges`` to ``target``:
    ``1 + add_fraction - (target / edges) ** (1 / rounds)``, in [0, 1].

    Examples
    --------
    >>> round(prune_fraction_to_reach(545_000, 19_300, rounds=4, add_fraction=0.1), 3)
    0.666
    >>> prune_fraction_to_reach(100, 200, rounds=2)
    0.0
    """
    if edges <= 0 or target >= edges:
        return 0.0
    return float(min(1.0, max(0.0, 1.0 + add_fraction - (max(target, 0) / edges) ** (1.0 / max(rounds, 1)))))


GROW_INITS = ("zero", "uniform")


@dataclass
class EvolveConfig:
    """Every knob of a Free-Evolve run.

    A round's edits combine a prune rule (``prune_score``, a key of
    :data:`~ncg.evolve.rules.PRUNE_SCORES`), a grow rule (``grow_score``, a key of
    :data:`~ncg.evolve.rules.GROW_SCORES`) and a schedule (``budget``). ``tau`` is the Hebbian
    threshold of the coactivation rules: edges whose coactivation ``measure`` is below it may
    be pruned, unconnected pairs above it may be connected; the other rules ignore it.
    ``grow_init`` sets new edges' weights: ``zero`` (the function is unchanged at the edit) or
    ``uniform`` (``U(-1/sqrt(d), 1/sqrt(d))`` for a target of in-degree ``d``, as SET draws).

    ``evolve=False`` is the no-evolution control: the same epochs and learning rates, no
    recording, no edits, no early stop. ``stop_when_unchanged`` ends the evolve phase after a
    round that proposed no edit. ``finetune_lr`` (if set) replaces the learning rate for the
    final fine-tuning epochs. ``firing_threshold`` overrides the per-activation firing
    thresholds of the recording. With ``record_during_training`` (default) the statistics come
    from the forward passes of the last ``record_samples`` training samples of each round, so
    recording costs no extra pass; otherwise a separate pass (eval mode) streams the first
    ``record_samples`` samples. Gradient rules use the first ``record_samples`` samples.
    ``task`` names the loss and metrics (:data:`ncg.tasks.TASKS`).
    """

    rounds: int = 4
    epochs_per_round: int = 1
    final_epochs: int = 1
    tau: float = 0.25
    measure: str = "phi"
    prune_score: str = "coactivation"
    grow_score: str = "coactivation"
    grow_init: str = "zero"
    budget: EditBudget = field(default_factory=EditBudget)
    record_samples: int = 10_000
    record_during_training: bool = True
    firing_threshold: float | None = None
    remove_dead: bool = True
    evolve: bool = True
    stop_when_unchanged: bool = True
    task: str = "classification"
    batch_size: int = 256
    lr: float = 1e-3
    finetune_lr: float | None = None
    weight_decay: float = 0.0
    seed: int = 0
    progress: bool = False

    def validate(self) -> EvolveConfig:
        """Raise :class:`~ncg.errors.NCGError` naming the first bad field."""
        if self.measure not in MEASURES:
            raise NCGError(f"measure must be one of {sorted(MEASURES)}, got {self.measure!r}")
        low = 0.0 if self.measure == "joint" else -1.0
        if not low <= self.tau <= 1.0:
            raise NCGError(f"tau must be in [{low}, 1] for measure {self.measure!r}, got {self.tau}")
        for name, choices in (("prune_score", PRUNE_SCORES), ("grow_score", GROW_SCORES), ("grow_init", GROW_INITS)):
            if getattr(self, name) not in choices:
                raise NCGError(f"{name} must be one of {sorted(choices)}, got {getattr(self, name)!r}")
        get_task(self.task)
        for name in ("rounds", "epochs_per_round", "final_epochs"):
            if getattr(self, name) < 0:
                raise NCGError(f"{name} must be >= 0, got {getattr(self, name)}")
        self.budget.validate()
        if self.record_samples < 1 or self.batch_size < 1:
            raise NCGError("record_samples and batch_size must be >= 1")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise NCGError(f"seed must be an int >= 0, got {self.seed!r}")
        return self

    def to_dict(self) -> dict:
        """A JSON-friendly dict."""
        return asdict(self)


def config_changes(saved: dict, given: dict) -> dict[str, tuple[object, object]]:
    """The fields whose values differ between two config dicts (such as
    :meth:`EvolveConfig.to_dict`), nested fields dotted, each mapped to ``(saved, given)``; a
    field that one side lacks counts as None there.

    Examples
    --------
    >>> config_changes({"rounds": 2, "budget": {"target_edges": 10}}, {"rounds": 2, "budget": {"target_edges": 12}})
    {'budget.target_edges': (10, 12)}
    """
    changes: dict[str, tuple[object, object]] = {}
    for name in dict.fromkeys([*saved, *given]):
        old, new = saved.get(name), given.get(name)
        if isinstance(old, dict) and isinstance(new, dict):
            changes.update({f"{name}.{key}": pair for key, pair in config_changes(old, new).items()})
        elif old != new:
            changes[name] = (old, new)
    return changes


def _within_edge_budget(grown: EditSet, max_edges: int) -> EditSet:
    """The whole new neurons of ``grown`` (each an ``add_neuron`` and its ``add_edge`` edits)
    whose edges fit in ``max_edges``, so growth never exceeds the round's edge budget."""
    group = np.cumsum(grown.mask("add_neuron")) - 1  # the new neuron each edit belongs to
    cost = np.bincount(group[grown.mask("add_edge")], minlength=int(group.max(initial=-1)) + 1)
    fits = np.zeros(cost.size, dtype=bool)
    used = 0
    for k, c in enumerate(cost.tolist()):  # one entry per new neuron: a handful
        if used + c <= max_edges:
            fits[k] = True
            used += c
    return grown.select(fits[group]) if len(grown) else grown


def _as_data(train: Data, val: Data | None) -> tuple[Batches, Batches | None]:
    """The training and validation data as :class:`~ncg.batches.Batches`."""
    return as_batches(train, argument="training data"), None if val is None else as_batches(val, argument="validation data")


class FreeEvolve:
    """Run Free-Evolve on a FreeNet.

    Parameters
    ----------
    model : FreeNet
    config : EvolveConfig
    optimizer : torch.optim.Optimizer, optional
        Adam with ``config.lr`` and ``config.weight_decay`` if omitted. Its state survives edits.
    callbacks : list of callables
        ``callback(evolve, record)`` after every round (e.g. to checkpoint or log); one that also
        has a method ``on_epoch(evolve, epoch, stats)`` gets every epoch's training metrics too
        (``epoch`` counts from 1 over the whole run, fine-tuning included).
    threads : "auto", int or None
        torch's intra-op threads while training, validating and recording
        (:func:`ncg.threads.thread_scope`): by default one for a small FreeNet step and the cores
        other processes leave free for any other; a count pins them (bit-for-bit repeatable runs
        of nets with dense blocks need one). Not part of the config: a resumed run may change it.

    Notes
    -----
    A run survives a crash: save :meth:`state_dict` with the model after each round (e.g. in a
    callback, with :func:`ncg.save_freenet`'s ``extra``), then rebuild the model from the
    checkpoint, call :meth:`load_state_dict` and :meth:`run` again: it continues where it
    stopped and reaches the same result as an uninterrupted run.
    """

    def __init__(
        self,
        model: nn.Module,
        config: EvolveConfig | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        callbacks: list[Callback] | None = None,
        threads: Threads = "auto",
    ) -> None:
        resolve_threads(threads, model, 1)  # a bad setting fails here, not after the first round
        self.model = model
        self.threads = threads
        self.config = (config or EvolveConfig()).validate()
        self.optimizer = optimizer or adam(model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        self.callbacks = list(callbacks or [])
        self.history = History()
        self.generator = torch.Generator().manual_seed(self.config.seed)

    def state_dict(self) -> dict:
        """Everything besides the model needed to resume: history, optimiser and RNG states."""
        return {
            "config": self.config.to_dict(),
            "history": self.history.to_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` taken with the model this FreeEvolve now holds."""
        missing = {"history", "optimizer", "generator", "torch_rng"} - set(state)
        if missing:
            raise NCGError(f"FreeEvolve state lacks {sorted(missing)}")
        saved = state.get("config")
        changes = {} if saved is None else config_changes(saved, self.config.to_dict())
        if changes:
            shown = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in changes.items())
            warnings.warn(f"resuming with a different EvolveConfig (changed: {shown})", stacklevel=2)
        self.history = History.from_dict(state["history"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])

    def _train(
        self,
        train: Batches,
        val: Batches | None,
        epochs: int,
        label: str,
        last_epoch_hook: Callable[[Tensor], None] | None = None,
    ) -> tuple[dict, dict]:
        """Train ``epochs`` epochs; returns the metrics and the timing (``train_seconds`` and
        ``seconds_per_step``: what a step cost this round, which follows the edges left by the
        edits; 0 for a loader of unknown length). The timing is kept apart from the metrics,
        which a seed fixes bit for bit."""
        first_epoch = (len(self.history) - 1) * self.config.epochs_per_round

        def on_epoch(epoch: int, stats: dict[str, float]) -> None:
            for callback in self.callbacks:
                if hasattr(callback, "on_epoch"):
                    callback.on_epoch(self, first_epoch + epoch, stats)

        metrics, seconds = train_epochs(
            self.model, self.optimizer, train, epochs, batch_size=self.config.batch_size, generator=self.generator,
            progress=self.config.progress, desc=f"{label} epoch", task=self.config.task, on_epoch=on_epoch,
            last_epoch_hook=last_epoch_hook, threads=self.threads,
        )
        if val is not None:
            scores = evaluate(self.model, val, task=self.config.task, threads=self.threads)
            metrics.update({f"val_{k}": v for k, v in scores.items()})
        steps = epochs * (train.num_batches(self.config.batch_size) or 0)
        return metrics, {"train_seconds": seconds, "seconds_per_step": seconds / steps if steps else 0.0}

    def propose(self, coactivation: Coactivation | None, train: Data) -> EditSet:
        """The edits of one round for the model's current graph.

        Neuron removals come first; pruning and growing are then proposed on the graph *after*
        the removals, so their protections (each neuron keeps its best outgoing edge) and their
        choices of neurons hold in the graph that results. The prune rule drops at most the
        budget's ``max_prune`` edges; the grow rule adds at most ``max_add``. Under a constant
        budget (``regrow``) the round prunes at most as many edges as the grow rule offers
        candidates, and grows exactly as many as it pruned, so the edge count is held.
        """
        cfg = self.config
        graph = self.model.graph
        removed = EditSet.empty()
        if cfg.remove_dead and coactivation is not None:
            # Only ReLU-like neurons output 0 when they never fire (above 0); for other
            # activations, or a higher firing threshold, removing a silent neuron would change
            # the function, so only stranded neurons go.
            zero_when_silent = self.model.activation in RELU_LIKE and (cfg.firing_threshold or 0.0) <= 0.0
            removed = remove_neurons(graph, coactivation.firing_rate if zero_when_silent else None)
        neuron_map = edge_map = None
        if len(removed):
            graph, maps = apply_edits(graph, removed, unreachable="ignore")
            neuron_map, edge_map = maps.neuron_map.numpy(), maps.edge_map.numpy()
            coactivation = coactivation.remap(neuron_map)
        rng = np.random.default_rng([cfg.seed, len(self.history)])
        ctx = ScoreContext(
            graph, coactivation, self.model, train, get_task(cfg.task), cfg.tau, cfg.measure,
            cfg.record_samples, rng, neuron_map, edge_map,
        )
        max_prune, max_add = cfg.budget.for_graph(graph, progress=(len(self.history) - 1) / max(1, cfg.rounds),
                                                  rounds_left=max(1, cfg.rounds - (len(self.history) - 1)))
        src, dst, score = GROW_SCORES[cfg.grow_score if max_add else "none"].score(ctx)
        if cfg.budget.regrow:  # hold the edge count: never prune more than the grow rule can replace
            max_prune = min(max_prune, src.size)
        elif (target := cfg.budget.target(graph)) is not None:  # land on the target with the adds there are
            max_prune = min(max_prune, max(0, graph.num_edges - target + min(max_add, src.size)))
        rule = PRUNE_SCORES[cfg.prune_score]
        pruned = prune_edges(graph, rule.score(ctx), tau=cfg.tau if rule.thresholded else None, max_edits=max_prune)
        if cfg.budget.regrow:
            max_add = len(pruned)
        grown_edges = grow_edges(graph, src, dst, score, max_add, self._initial_weights(graph, dst, rng))
        edits = EditSet.concat([removed, pruned, grown_edges])
        if cfg.budget.grow_neurons and coactivation is not None:
            first_id = 1 + max(int(record.order.max(initial=-1)) for record in self.history.rounds) if self.history.rounds else None
            grown = grow_neurons(graph, coactivation, cfg.budget.grow_neurons, tau=cfg.tau,
                                 measure=cfg.measure, seed=cfg.seed + len(self.history), first_id=first_id)
            edits = EditSet.concat([edits, _within_edge_budget(grown, max(0, max_add - edits.count("add_edge")))])
        return edits

    def _initial_weights(self, graph: NCG, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray | float:
        """Weights of grown edges into ``targets`` under ``config.grow_init``."""
        if self.config.grow_init == "zero":
            return 0.0
        in_degree = np.bincount(graph.edge_index[1].numpy(), minlength=graph.num_neurons)
        bound = 1.0 / np.sqrt(np.maximum(in_degree[targets], 1))
        return rng.uniform(-1.0, 1.0, targets.size) * bound

    def _tail_recorder(self, num_samples: int | None, pairs: bool = True
                       ) -> tuple[CoactivationRecorder, Callable[[Tensor], None]]:
        """A recorder (of pairs, or of firing rates alone) and a hook that feeds it the last
        ``record_samples`` of an epoch of ``num_samples`` samples (this rank's share of them when
        data-parallel)."""
        cfg = self.config
        if num_samples is None:
            raise NCGError("EvolveConfig.record_during_training=True records the last record_samples samples of "
                           "each round, so it needs the samples per epoch, but the training data does not tell "
                           "(a loader without a sized sampler); pass record_during_training=False")
        recorder = CoactivationRecorder(self.model, cfg.firing_threshold, seed=cfg.seed + len(self.history),
                                        pairs=pairs)
        skip = local_samples_before(num_samples, cfg.batch_size, max(0, num_samples - cfg.record_samples))
        seen = 0

        def hook(h: Tensor) -> None:
            nonlocal seen
            start, seen = seen, seen + h.shape[0]
            if seen > skip:
                recorder.update(h[max(0, skip - start):])

        return recorder, hook

    def step(self, train: Data, val: Data | None = None) -> RoundRecord:
        """One round: train, record, edit, rewire; returns the round's record. The data is as
        :meth:`run` takes it."""
        cfg = self.config
        train, val = _as_data(train, val)
        start = time.perf_counter()
        label = f"round {len(self.history)}"
        needs_pairs = (PRUNE_SCORES[cfg.prune_score].needs_coactivation
                       or GROW_SCORES[cfg.grow_score].needs_coactivation or cfg.budget.grow_neurons > 0)
        needs_recording = cfg.evolve and (cfg.remove_dead or needs_pairs)
        coactivation = None
        if not needs_recording:
            metrics, timing = self._train(train, val, cfg.epochs_per_round, label)
        elif cfg.record_during_training and cfg.epochs_per_round > 0:
            recorder, hook = self._tail_recorder(train.num_samples, pairs=needs_pairs)
            metrics, timing = self._train(train, val, cfg.epochs_per_round, label, last_epoch_hook=hook)
            recorder.sum_over_ranks()
            coactivation = recorder.result()
        else:
            metrics, timing = self._train(train, val, cfg.epochs_per_round, label)
            coactivation = record_coactivation(
                self.model, train, threshold=cfg.firing_threshold, max_samples=cfg.record_samples,
                seed=cfg.seed + len(self.history), progress=cfg.progress, across_ranks=True, pairs=needs_pairs,
                threads=self.threads,
            )
        edits = self.propose(coactivation, train) if cfg.evolve else EditSet.empty()
        graph, maps = apply_edits(self.model.graph, edits, unreachable="ignore")
        rewire(self.model, graph, maps, self.optimizer)
        record = self.history.append_graph(graph, edits, metrics, time.perf_counter() - start, timing=timing)
        check_consistent(self.model, f"after round {record.round}", self.optimizer)
        for callback in self.callbacks:
            callback(self, record)
        return record

    def _evolving(self) -> bool:
        last = self.history.rounds[-1]
        unchanged = last.phase == "evolve" and not last.edits and self.config.evolve
        stopped = last.phase == "finetune" or (unchanged and self.config.stop_when_unchanged)
        return not stopped and len(self.history) <= self.config.rounds

    def _check_target(self) -> None:
        """Warn when the evolve phase ended above the budget's edge target (a thresholded prune
        rule found too few edges below ``tau``, or the run stopped early)."""
        budget, graph = self.config.budget, self.model.graph
        target = budget.target(graph)
        if self.config.evolve and not budget.regrow and target is not None and graph.num_edges > target:
            warnings.warn(f"Free-Evolve ended its {len(self.history) - 1} rounds at {graph.num_edges:,} edges, above "
                          f"the target of {target:,}: the prune rule {self.config.prune_score!r} found too few "
                          "edges to prune or the rounds stopped early; give more rounds or a lower tau",
                          TargetMissedWarning, stacklevel=3)

    def run(self, train: Data, val: Data | None = None) -> History:
        """Evolve for up to ``config.rounds`` rounds, then fine-tune ``config.final_epochs``.

        ``train`` and ``val`` are tensors ``(x, y)``, Datasets of ``(x, y)`` items or DataLoaders
        (:mod:`ncg.batches`): tensors and Datasets are shuffled by ``config.seed`` in the same
        order, so they give the same run; a DataLoader's own batches and order are used as they
        come (``config.batch_size`` is then unused), and under ``torchrun`` a DataLoader
        raises (pass its Dataset). Nothing of size samples x neurons is held.

        With ``stop_when_unchanged``, stops evolving early after a round that proposed no edit
        (never for ``evolve=False``, which trains every round). A finished history is
        returned unchanged; a resumed one (:meth:`load_state_dict`) continues.
        """
        if not self.history.rounds:
            self.history.append_graph(self.model.graph, phase="start")
        if self.history.rounds[-1].phase == "finetune":
            return self.history
        check_consistent(self.model, f"at round {len(self.history)} before training", self.optimizer)
        train, val = _as_data(train, val)
        while self._evolving():
            self.step(train, val)
        self._check_target()
        start = time.perf_counter()
        if self.config.finetune_lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.finetune_lr
        metrics, timing = self._train(train, val, self.config.final_epochs, "fine-tune")
        record = self.history.append_graph(self.model.graph, [], metrics, time.perf_counter() - start,
                                           phase="finetune", timing=timing)
        check_consistent(self.model, "after the fine-tuning", self.optimizer)
        for callback in self.callbacks:
            callback(self, record)
        return self.history
