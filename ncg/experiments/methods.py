"""The methods a comparison runs, each a model builder plus a trainer under one :class:`Budget`.

A :class:`Method` is composed from small pieces rather than picked from an if/elif factory:
a *builder* (an MLP of a matched width, the complete DAG, a random sparse DAG) and a *trainer*
(plain training, Free-Evolve with an :class:`~ncg.evolve.EvolveConfig`, iterative magnitude
pruning). :data:`METHODS` holds the standard set:

=============================  ==================================  ===============================================
name                           model                               training
=============================  ==================================  ===============================================
``mlp-neurons``                MLP, one hidden layer of N units    plain
``mlp-params``                 MLP with the sparse nets' params    plain
``dense``                      complete DAG of N (+ K outputs)     plain (Free-Evolve loop, ``evolve=False``)
``free-evolve``                complete DAG                        Free-Evolve, coactivation rules
``magnitude``                  complete DAG                        the same loop, magnitude pruning
``saliency``                   complete DAG                        the same loop, saliency pruning
``imp``                        complete DAG                        IMP with rewinding to the target edges
``set``                        random DAG at the target edges      SET: drop smallest, regrow random
``rigl``                       random DAG at the target edges      RigL: drop smallest, regrow by gradient
``static-random``              random DAG at the target edges      plain
``mlp-sparse``                 MLP with ``Budget.sparse_parameters`` plain
``sparse-static``              sparse start, input edges in graph  plain
``sparse-magnitude``           whole-network complete DAG          gradual magnitude pruning to the budget
``sparse-imp``                 whole-network complete DAG          IMP with rewinding to the budget
``sparse-granet``              whole-network complete DAG          GraNet: gradual magnitude pruning, gradient
                                                                   regrowth
``sparse-gradual-hebbian``     whole-network complete DAG          gradual magnitude pruning, Hebbian regrowth
``sparse-gradual-coactive``    whole-network complete DAG          gradual coactivation-weighted magnitude
                                                                   pruning, Hebbian regrowth
``sparse-local-granet``        whole-network complete DAG under    GraNet
                               a hop cap of ``LOCAL_REACH``
``sparse-set``                 sparse start                        SET rules
``sparse-rigl``                sparse start                        RigL rules
``sparse-hebbian``             sparse start                        magnitude drop, Hebbian regrowth, constant
``sparse-coactive-rigl``       sparse start                        coactivation-weighted magnitude drop,
                                                                   gradient regrowth among coactive pairs
``layered<d>-<family>``        the same start with ``d`` = 1, 2,   the rule of ``sparse-<family>`` (``static``,
                               3 hidden layers, consecutive        ``magnitude``, ``imp``, ``granet``,
                               layers only (an MLP's topology)     ``gradual-hebbian``, ``set``, ``rigl``)
``skips<d>-<family>``          the same ``d`` layers, each         the same rules
                               feeding every later one
=============================  ==================================  ===============================================

Any name takes a :func:`variant` (``name[key=value,...]``: a field of its Free-Evolve config
changed) and a parameter budget (``name@parameters``, :func:`at_parameters`).

Every method trains for the same epochs at the same learning rates (``Budget.stages``); IMP
alone retrains, and its extra epochs are counted in its cost. The target edge count of the
sparse baselines is ``Budget.density`` of the complete DAG's edges.

Examples
--------
>>> budget = Budget(neurons=16, stages=((1, 1e-2),), rounds=1)
>>> setting = Setting(budget, in_features=64, num_classes=10)
>>> setting.target_edges, METHODS["mlp-params"].build(setting, 0)[0].out_features
(124, 24)
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Callable

import torch
from torch import nn

from ncg.build import INITS, initialized, lift_constraint, sparse_start
from ncg.cost import freenet_macs, macs_per_sample
from ncg.errors import NCGError
from ncg.evolve.lottery import iterative_magnitude_pruning
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.graph import NCG
from ncg.layers import CONNECTIONS
from ncg.model import FreeNet
from ncg.presets import COACTIVATION, GRADUAL_MAGNITUDE, GRANET, IMP, MAIN, RIGL, SET, SPARSE_PARAMETERS, RuleSet
from ncg.schedule import topological_generations
from ncg.train import fit

__all__ = ["Budget", "Start", "Setting", "Method", "METHODS", "PRESETS", "Trained", "evolve_config", "free_evolve_config", "set_config", "rigl_config", "flops", "parameters", "structure"]


@dataclass(frozen=True)
class Budget:
    """What every method of a comparison gets.

    Attributes
    ----------
    neurons : int
        Hidden neurons of the FreeNets (and width of ``mlp-neurons``).
    stages : tuple of (epochs, lr)
        Adam stages: the first is the evolve phase (split into ``rounds`` rounds), the others
        fine-tune. ``((8, 1e-3), (3, 2e-4))`` is the main job's 11 epochs.
    rounds : int
        Free-Evolve rounds in the first stage (it must divide the stage's epochs). SET and RigL
        update once per epoch of the first stage.
    batch_size : int
    density : float
        Target edges of the sparse baselines, as a fraction of the complete DAG's edges
        (0.38: where the default Free-Evolve run ends).
    train_samples : int, optional
        Train on the first samples only (tiny runs).
    record_samples : int
        Samples of each round's coactivation recording and gradient scores.
    imp_cycles : int
        Train-prune-rewind cycles of IMP.
    sparse_parameters : int
        Parameter budget of the ``sparse-*`` methods (whole-network sparse FreeNets whose input
        connections are edges, and ``mlp-sparse``), in PyTorch's count (edges + one bias per
        non-input neuron): 40,000 is under 10% of MLP 784-512-10.
    """

    neurons: int = MAIN.neurons
    stages: tuple[tuple[int, float], ...] = MAIN.stages
    rounds: int = MAIN.rounds
    batch_size: int = MAIN.batch_size
    density: float = 0.38
    train_samples: int | None = None
    record_samples: int = MAIN.record_samples
    imp_cycles: int = IMP.cycles
    sparse_parameters: int = SPARSE_PARAMETERS

    def validate(self) -> Budget:
        """Raise :class:`~ncg.errors.NCGError` naming the first bad field."""
        if self.neurons < 1:
            raise NCGError(f"Budget.neurons must be >= 1, got {self.neurons}")
        if not self.stages or any(n < 0 or lr <= 0 for n, lr in self.stages):
            raise NCGError(f"Budget.stages must be non-empty (epochs >= 0, lr > 0) pairs, got {self.stages}")
        if self.rounds < 1 or self.stages[0][0] % self.rounds:
            raise NCGError(f"Budget.rounds must be >= 1 and divide the first stage's {self.stages[0][0]} epochs, got {self.rounds}")
        if not 0.0 < self.density <= 1.0:
            raise NCGError(f"Budget.density must be in (0, 1], got {self.density}")
        return self

    @property
    def epochs(self) -> int:
        return sum(n for n, _ in self.stages)


@dataclass(frozen=True)
class Start:
    """How a whole-network method's start is built, beyond its builder's wiring: the units of the
    start ablations (``name[start.<field>=value]``, :func:`variant`).

    Attributes
    ----------
    init : str
        ``fan_in`` (``U(+-1/sqrt(d_j))`` for the ``d_j`` edges into neuron ``j``, like
        ``nn.Linear``), ``he`` (Kaiming's uniform ``U(+-sqrt(6/d_j))``) or ``by_source`` (the
        edges from input nodes and from neurons each scaled by their own count, as if they were
        two layers feeding ``j``).
    reach : int, optional
        A hop cap: an edge between two hidden neurons may skip at most ``reach - 1`` hidden
        neurons of the topological order (:func:`ncg.layers.within_reach`, carried by the graph,
        so every regrowth keeps it); inputs still feed every neuron and every neuron the outputs.
        Layer-free builders only.
    layered : int, optional
        Start layered, then free the edges: the complete start of ``layered`` consecutive hidden
        layers (an MLP's topology), whose constraint is lifted, so pruning starts from the MLP and
        regrowth may wire any neuron to any later one. Layer-free builders only.
    """

    init: str = "fan_in"
    reach: int | None = None
    layered: int | None = None

    def validate(self) -> Start:
        """Raise :class:`~ncg.errors.NCGError` naming the first bad field."""
        if self.init not in INITS:
            raise NCGError(f"start.init must be one of {INITS}, got {self.init!r}")
        for name in ("reach", "layered"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise NCGError(f"start.{name} must be an int >= 1 or None, got {value!r}")
        if self.reach is not None and self.layered is not None:
            raise NCGError("start.reach and start.layered exclude each other (a hop cap or a lifted layered start)")
        return self


@dataclass(frozen=True)
class Setting:
    """A budget applied to one data set's shapes and task, and how starts are built."""

    budget: Budget
    in_features: int
    num_classes: int
    task: str = "classification"
    start: Start = Start()

    @property
    def total_neurons(self) -> int:
        return self.budget.neurons + self.num_classes

    @property
    def target_edges(self) -> int:
        n = self.total_neurons
        return round(self.budget.density * n * (n - 1) / 2)

    def target_parameters(self) -> int:
        """Parameters of a dense-encoder FreeNet at the target edges: encoder, edges, biases."""
        return self.in_features * self.total_neurons + self.target_edges + self.total_neurons

    @property
    def sparse_fan_in(self) -> int:
        """Fan-in of a :func:`~ncg.build.sparse_start` whose edges and biases fit
        ``budget.sparse_parameters``."""
        return max(1, (self.budget.sparse_parameters - self.total_neurons) // self.total_neurons)

    @property
    def sparse_edges(self) -> int:
        """Edges of the sparse budget: what a fan-in :attr:`sparse_fan_in` start draws, the
        target of the pruning baselines that start whole-network complete."""
        return self.sparse_fan_in * self.total_neurons


@dataclass
class Trained:
    """What a trainer reports: final metrics and the cost ``segments`` as ``(epochs, model)``
    snapshots of ``(multiply-adds per sample)`` for counting FLOPs."""

    metrics: dict
    epochs: int
    segments: list[tuple[int, int]] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


Builder = Callable[[Setting, int], nn.Module]
Trainer = Callable[[nn.Module, Setting, tuple, tuple, int], Trained]


@dataclass(frozen=True)
class Method:
    """A builder and a trainer; ``candidate`` marks the methods under test (the others are
    baselines). Methods trained by Free-Evolve keep their ``configure(setting, seed)``, so that
    :func:`variant` can change any field of their :class:`EvolveConfig`."""

    name: str
    build: Builder
    train: Trainer
    candidate: bool = False
    description: str = ""
    configure: Callable[[Setting, int], EvolveConfig] | None = None


# ---------------------------------------------------------------------------------- builders
def mlp_width_for(parameters: int, in_features: int, out_features: int) -> int:
    """Hidden width ``H`` of a one-hidden-layer MLP with about ``parameters`` parameters.

    Examples
    --------
    >>> mlp_width_for(407_050, 784, 10)
    512
    """
    return max(1, round((parameters - out_features) / (in_features + 1 + out_features)))


def _mlp(width: Callable[[Setting], int]) -> Builder:
    def build(setting: Setting, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        hidden = width(setting)
        return nn.Sequential(nn.Linear(setting.in_features, hidden), nn.ReLU(), nn.Linear(hidden, setting.num_classes))

    return build


def _start_options(setting: Setting, builder: str, allowed: tuple[str, ...]) -> None:
    """Refuse the :class:`Start` fields that ``builder`` cannot honour (all but ``allowed``)."""
    bad = [f.name for f in fields(Start) if f.name not in allowed
           and getattr(setting.start, f.name) != getattr(Start(), f.name)]
    if bad:
        raise NCGError(f"the {builder} start takes no start.{bad[0]} (it takes {', '.join(allowed) or 'no start options'})")


def _complete(setting: Setting, seed: int) -> FreeNet:
    _start_options(setting, "dense-encoder complete", ())
    graph = NCG.complete(setting.total_neurons, num_outputs=setting.num_classes, seed=seed)
    return FreeNet(graph, in_features=setting.in_features, seed=seed)


def _sparse_start(setting: Setting, seed: int) -> FreeNet:
    _start_options(setting, "sparse", ("init",))
    graph = sparse_start(setting.in_features, setting.budget.neurons, setting.num_classes,
                         fan_in=setting.sparse_fan_in, seed=seed)
    return FreeNet(initialized(graph, setting.start.init, seed), in_features=setting.in_features, seed=seed)


def _whole_complete(setting: Setting, seed: int) -> FreeNet:
    """The whole-network complete start; :attr:`Setting.start` may cap its hops or start it
    layered and lift the constraint."""
    f, h, k, start = setting.in_features, setting.budget.neurons, setting.num_classes, setting.start
    if start.reach is not None:
        graph = sparse_start(f, h, k, density=1.0, seed=seed, reach=start.reach)
    elif start.layered is not None:
        graph = lift_constraint(sparse_start(f, h, k, density=1.0, seed=seed, layers=hidden_layers(h, start.layered)))
    else:
        graph = sparse_start(f, h, k, density=1.0, seed=seed)
    return FreeNet(initialized(graph, start.init, seed), in_features=f, seed=seed)


def hidden_layers(neurons: int, depth: int) -> tuple[int, ...]:
    """``neurons`` hidden neurons cut into ``depth`` layers of near-equal size, larger first.

    Examples
    --------
    >>> hidden_layers(512, 1), hidden_layers(512, 2), hidden_layers(512, 3)
    ((512,), (256, 256), (171, 171, 170))
    """
    if not 1 <= depth <= neurons:
        raise NCGError(f"depth must be in [1, {neurons}] for {neurons} hidden neurons, got {depth}")
    return tuple(neurons // depth + (k < neurons % depth) for k in range(depth))


def _layered_whole(depth: int, wiring: Callable[[Setting], dict], connect: str) -> Builder:
    """A whole-network FreeNet on a layered graph: ``depth`` hidden layers of the budget's hidden
    neurons connected as ``connect`` says (:data:`ncg.layers.CONNECTIONS`), wired by
    ``wiring(setting)``."""
    def build(setting: Setting, seed: int) -> FreeNet:
        _start_options(setting, "layered", ("init",))
        layers = hidden_layers(setting.budget.neurons, depth)
        graph = sparse_start(setting.in_features, setting.budget.neurons, setting.num_classes, seed=seed,
                             layers=layers, connect=connect, **wiring(setting))
        return FreeNet(initialized(graph, setting.start.init, seed), in_features=setting.in_features, seed=seed)

    return build


LOCAL_REACH = 16
"""The hop cap of ``sparse-local-granet``: an edge between hidden neurons joins neurons at most
this far apart in the topological order (:func:`ncg.layers.within_reach`)."""


def _local(reach: int) -> Builder:
    """The whole-network complete start under a hop cap of ``reach`` (unless the setting's start
    sets another)."""
    def build(setting: Setting, seed: int) -> FreeNet:
        start = setting.start if setting.start.reach is not None else replace(setting.start, reach=reach)
        return _whole_complete(replace(setting, start=start.validate()), seed)

    return build


def _random(setting: Setting, seed: int) -> FreeNet:
    _start_options(setting, "dense-encoder random", ())
    graph = NCG.random_dag(setting.total_neurons, num_edges=setting.target_edges, num_outputs=setting.num_classes, seed=seed)
    return FreeNet(graph, in_features=setting.in_features, seed=seed)


# ---------------------------------------------------------------------------------- trainers
def _plain(model: nn.Module, setting: Setting, train: tuple, val: tuple, seed: int) -> Trained:
    b = setting.budget
    metrics = fit(model, train, val, b.stages, b.batch_size, seed, setting.task)
    return Trained(metrics, metrics.pop("epochs"), [(b.epochs, macs_per_sample(model))])


def evolve_config(setting: Setting, seed: int, rounds: int | None = None, **overrides) -> EvolveConfig:
    """An :class:`EvolveConfig` that spends ``setting``'s budget: the first stage split into
    ``rounds`` rounds, the rest fine-tuning. Never stops early, so every method trains the
    same epochs."""
    b = setting.budget
    rounds = rounds or b.rounds
    (first, lr), rest = b.stages[0], b.stages[1:]
    if len(rest) > 1:
        raise NCGError(f"Free-Evolve takes at most two stages (evolve, fine-tune), got {b.stages}")
    config = EvolveConfig(
        rounds=rounds, epochs_per_round=first // rounds, final_epochs=rest[0][0] if rest else 0,
        lr=lr, finetune_lr=rest[0][1] if rest else None, batch_size=b.batch_size,
        record_samples=b.record_samples, task=setting.task, seed=seed, stop_when_unchanged=False,
    )
    return replace(config, **overrides).validate()


def _evolve_method(name: str, build: Builder, configure: Callable[[Setting, int], EvolveConfig], **kwargs) -> Method:
    return Method(name, build, _evolving(configure), configure=configure, **kwargs)


def _evolving(configure: Callable[[Setting, int], EvolveConfig]) -> Trainer:
    def train_(model: nn.Module, setting: Setting, train: tuple, val: tuple, seed: int) -> Trained:
        config = configure(setting, seed)
        history = FreeEvolve(model, config).run(train, val)
        segments = []
        for before, record in zip(history.rounds, history.rounds[1:]):
            epochs = config.final_epochs if record.phase == "finetune" else config.epochs_per_round
            segments.append((epochs, freenet_macs(model, before.num_neurons, before.num_edges)))
        metrics = dict(history.rounds[-1].metrics)
        totals = history.totals()
        return Trained(metrics, sum(e for e, _ in segments), segments,
                       {"edges_pruned": totals.get("prune_edge", 0), "edges_added": totals.get("add_edge", 0),
                        "neurons_removed": totals.get("remove_neuron", 0)})

    return train_


def _imp(target: Callable[[Setting], int]) -> Trainer:
    """IMP with rewinding down to ``target(setting)`` edges (or none pruned when a start, such as a
    small layered one, is already below it)."""

    def train_(model: FreeNet, setting: Setting, train: tuple, val: tuple, seed: int) -> Trained:
        b = setting.budget
        edges = min(target(setting), int(model.edge_index.shape[1]))
        result = iterative_magnitude_pruning(
            model, train, val, target_edges=edges, cycles=b.imp_cycles, epochs=b.stages,
            rewind_epochs=IMP.rewind_epochs if b.epochs > 1 else 0, batch_size=b.batch_size, seed=seed, task=setting.task,
        )
        segments = [(epochs, freenet_macs(model, model.num_neurons, edges)) for epochs, edges in result.pop("segments")]
        return Trained(result, result.pop("epochs"), segments)

    return train_


def free_evolve_config(setting: Setting, seed: int) -> EvolveConfig:
    """Coactivation pruning and Hebbian growth (:data:`ncg.presets.COACTIVATION`, ``--start complete``
    of ``examples/evolve_mnist.py``)."""
    return evolve_config(setting, seed, **COACTIVATION.config())


def _same_loop(prune_score: str) -> Callable[[Setting, int], EvolveConfig]:
    def configure(setting: Setting, seed: int) -> EvolveConfig:
        return replace(free_evolve_config(setting, seed), prune_score=prune_score)

    return configure


def gradual_magnitude_config(setting: Setting, seed: int) -> EvolveConfig:
    """Gradual magnitude pruning of the whole network (input edges included) to the sparse
    budget: half the edges per round, stopping at :attr:`Setting.sparse_edges`."""
    return replace(free_evolve_config(setting, seed), **GRADUAL_MAGNITUDE.config(setting.sparse_edges))


def _gradual(prune_score: str, grow_score: str) -> Callable[[Setting, int], EvolveConfig]:
    """Gradual pruning of the whole network to the sparse budget with regrowth on the way
    (GraNet's shape): each round prunes 60% of the edges and regrows 10% of them, which lands
    on :attr:`Setting.sparse_edges` after 4 rounds (0.5^4 = 6% of the complete start)."""

    def configure(setting: Setting, seed: int) -> EvolveConfig:
        rules = replace(GRANET, prune_score=prune_score, grow_score=grow_score)
        return replace(free_evolve_config(setting, seed), **rules.config(setting.sparse_edges))

    return configure


def _no_evolution(setting: Setting, seed: int) -> EvolveConfig:
    return evolve_config(setting, seed, evolve=False)


def set_config(setting: Setting, seed: int) -> EvolveConfig:
    """SET (:data:`ncg.presets.SET`): after each epoch drop the smallest-magnitude edges and
    regrow as many at random."""
    return _per_epoch(setting, seed, SET)


def rigl_config(setting: Setting, seed: int) -> EvolveConfig:
    """RigL (:data:`ncg.presets.RIGL`): drop the smallest-magnitude edges, grow the non-edges
    with the largest gradient at weight 0, once per epoch (Delta T = one epoch)."""
    return _per_epoch(setting, seed, RIGL)


def _per_epoch(setting: Setting, seed: int, rules: RuleSet, **overrides) -> EvolveConfig:
    """``rules`` updating once per epoch of the first stage."""
    return evolve_config(setting, seed, rounds=setting.budget.stages[0][0], **{**rules.config(), **overrides})


def _constant(prune_score: str, grow_score: str, **overrides) -> Callable[[Setting, int], EvolveConfig]:
    """Rules at a constant edge budget, updated once per epoch, 30% cosine-decayed to 0 at 75%."""

    def configure(setting: Setting, seed: int) -> EvolveConfig:
        return _per_epoch(setting, seed, replace(RIGL, prune_score=prune_score, grow_score=grow_score), **overrides)

    return configure


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("mlp-neurons", _mlp(lambda s: s.budget.neurons), _plain,
               description="MLP in-N-K (matched on hidden neurons)"),
        Method("mlp-params", _mlp(lambda s: mlp_width_for(s.target_parameters(), s.in_features, s.num_classes)), _plain,
               description="MLP with the parameters of a FreeNet at the target edges"),
        _evolve_method("dense", _complete, _no_evolution, description="complete DAG, no evolution"),
        _evolve_method("free-evolve", _complete, free_evolve_config, candidate=True,
               description="Free-Evolve: coactivation prune (tau 0.25) + Hebbian augment, remove dead"),
        _evolve_method("magnitude", _complete, _same_loop("magnitude"),
               description="the same loop, magnitude pruning"),
        _evolve_method("saliency", _complete, _same_loop("saliency"),
               description="the same loop, saliency |w dL/dw| pruning"),
        Method("imp", _complete, _imp(lambda s: s.target_edges), description="iterative magnitude pruning with rewinding to the target edges"),
        _evolve_method("set", _random, set_config, description="SET on a random DAG at the target edges"),
        _evolve_method("rigl", _random, rigl_config, description="RigL on a random DAG at the target edges"),
        Method("static-random", _random, _plain, description="random DAG at the target edges, no evolution"),
        Method("mlp-sparse", _mlp(lambda s: mlp_width_for(s.budget.sparse_parameters, s.in_features, s.num_classes)),
               _plain, description="MLP with the sparse FreeNets' parameter budget"),
        Method("sparse-static", _sparse_start, _plain,
               description="whole-network sparse FreeNet (input edges in the graph), no evolution"),
        _evolve_method("sparse-magnitude", _whole_complete, gradual_magnitude_config,
               description="whole-network complete DAG (input edges in the graph), magnitude-pruned to the "
                           "sparse budget, half the edges per round"),
        Method("sparse-imp", _whole_complete, _imp(lambda s: s.sparse_edges),
               description="whole-network complete DAG, iterative magnitude pruning with rewinding to the sparse budget"),
        _evolve_method("sparse-granet", _whole_complete, _gradual("magnitude", "gradient"),
               description="GraNet: whole-network gradual magnitude pruning with gradient regrowth"),
        _evolve_method("sparse-gradual-hebbian", _whole_complete, _gradual("magnitude", "coactivation"), candidate=True,
               description="whole-network gradual magnitude pruning with Hebbian (coactivation) regrowth"),
        _evolve_method("sparse-gradual-coactive", _whole_complete, _gradual("coactivation_magnitude", "coactivation"),
               candidate=True, description="whole-network gradual coactivation-weighted magnitude pruning with "
                                           "Hebbian regrowth"),
        _evolve_method("sparse-local-granet", _local(LOCAL_REACH), _gradual("magnitude", "gradient"), candidate=True,
               description=f"GraNet on the whole-network complete start with a hop cap: an edge between hidden "
                           f"neurons skips at most {LOCAL_REACH - 1} of them (local-first wiring)"),
        _evolve_method("sparse-set", _sparse_start, set_config, description="sparse FreeNet, SET rules"),
        _evolve_method("sparse-rigl", _sparse_start, rigl_config, description="sparse FreeNet, RigL rules"),
        _evolve_method("sparse-hebbian", _sparse_start, _constant("magnitude", "coactivation"), candidate=True,
               description="sparse FreeNet: magnitude prune + Hebbian regrowth (tau 0.25), constant cosine budget"),
        _evolve_method("sparse-coactive-rigl", _sparse_start, _constant("coactivation_magnitude", "coactive_gradient"),
               candidate=True, description="sparse FreeNet: coactivation-weighted magnitude prune + gradient "
                                           "regrowth among coactive pairs, constant cosine budget"),
    ]
}
"""The methods by name."""

LAYERED_DEPTHS = (1, 2, 3)
"""Hidden layers of the layered controls: 784-512-10, 784-256-256-10, 784-171-171-170-10 at the
main job's 512 hidden neurons."""
_LAYERED_FAMILIES = {"sparse-static": "static", "sparse-magnitude": "magnitude", "sparse-imp": "imp",
                     "sparse-granet": "granet", "sparse-gradual-hebbian": "gradual-hebbian", "sparse-set": "set",
                     "sparse-rigl": "rigl"}
"""The layer-free methods that have layered controls, and the family name the controls share."""
_WIRINGS = {_whole_complete: lambda s: {"density": 1.0}, _sparse_start: lambda s: {"fan_in": s.sparse_fan_in}}
"""How a layer-free builder wires its start, for the layered control of the same method."""


def layered(method: Method, depth: int, connect: str = "consecutive") -> Method:
    """The layered control of a whole-network ``method``: the same rule, budget, epochs and
    seeds on a graph whose ``depth`` hidden layers (the same hidden neurons) connect only
    consecutively, so that every start, prune and regrowth keeps an MLP's topology
    (:mod:`ncg.layers`). It is named ``layered<depth>-<family>``, the pair of ``sparse-<family>``.
    With ``connect="skips"`` every layer feeds every later one (DenseNet-like: a bounded depth
    with the layer-free graph's skip connections), named ``skips<depth>-<family>``.

    Examples
    --------
    >>> layered(METHODS["sparse-granet"], 2).name, layered(METHODS["sparse-granet"], 2, "skips").name
    ('layered2-granet', 'skips2-granet')
    """
    if method.build not in _WIRINGS:
        raise NCGError(f"{method.name} does not start from a whole-network graph; it has no layered control")
    family = _LAYERED_FAMILIES.get(method.name, method.name.removeprefix("sparse-"))
    prefix, edges = ("layered", "consecutive layers only") if connect == "consecutive" else (
        "skips", "every layer feeding every later one")
    return replace(method, name=f"{prefix}{depth}-{family}",
                   build=_layered_whole(depth, _WIRINGS[method.build], connect), candidate=False,
                   description=f"{method.description}; {depth} hidden layer(s), {edges}")


METHODS.update({m.name: m for connect in CONNECTIONS for depth in LAYERED_DEPTHS for name in _LAYERED_FAMILIES
                for m in [layered(METHODS[name], depth, connect)]})

PRESETS: dict[str, list[str]] = {
    "main": ["mlp-neurons", "mlp-params", "dense", "free-evolve", "magnitude", "saliency", "imp", "set", "rigl",
             "static-random"],
    "sparse": ["mlp-sparse", "sparse-static", "sparse-magnitude", "sparse-imp", "sparse-granet", "sparse-set",
               "sparse-rigl", "sparse-hebbian", "sparse-coactive-rigl", "sparse-gradual-hebbian", "sparse-gradual-coactive"],
    "layers": ["mlp-sparse", *[name for family in _LAYERED_FAMILIES.values() if family != "static"
                               for name in (f"sparse-{family}", *[f"layered{d}-{family}" for d in LAYERED_DEPTHS])]],
}
"""Named method lists: ``main`` compares at the main job's size (the dense encoder kept),
``sparse`` at ``Budget.sparse_parameters`` with input connections as edges, ``layers`` every
whole-network rule family layer-free and on its three layered controls."""


def flops(trained: Trained, train_samples: int) -> float:
    """Training FLOPs: 6 per multiply-add per sample (2 forward, 4 backward), summed over
    the segments."""
    return float(sum(6 * epochs * macs * train_samples for epochs, macs in trained.segments))


SETTING_KEYS = {"neurons"} | {f"start.{f.name}" for f in fields(Start)}
"""Keys of :func:`variant` that change the setting rather than the rule: the hidden neurons
(``neurons``) and the start (:class:`Start`)."""


def variant(method: Method, overrides: dict) -> Method:
    """``method`` with fields of its :class:`EvolveConfig` changed (``budget.<field>`` for the
    schedule), its hidden neurons (``neurons``) or its start (``start.<field>``, :class:`Start`),
    named ``name[key=value,...]``: the unit of an ablation.

    Examples
    --------
    >>> variant(METHODS["sparse-hebbian"], {"tau": 0.1, "budget.prune_fraction": 0.5}).name
    'sparse-hebbian[tau=0.1,budget.prune_fraction=0.5]'
    >>> variant(METHODS["layered1-granet"], {"neurons": 128, "start.init": "he"}).name
    'layered1-granet[neurons=128,start.init=he]'
    """
    rule_keys = {f.name for f in fields(EvolveConfig)} | {f"budget.{f.name}" for f in fields(EditBudget)}
    known = (rule_keys if method.configure is not None else set()) | SETTING_KEYS
    unknown = sorted(set(overrides) - known)
    if unknown:
        if method.configure is None:
            raise NCGError(f"{method.name} is not trained by Free-Evolve; it has no config to vary {unknown} "
                           f"(it takes {sorted(SETTING_KEYS)})")
        raise NCGError(f"{method.name}: cannot vary {unknown}; fields are {sorted(known)}")
    setting_overrides = {k: v for k, v in overrides.items() if k in SETTING_KEYS}
    rule = {k: v for k, v in overrides.items() if k not in SETTING_KEYS}
    spec = ",".join(f"{k}={v}" for k, v in overrides.items())
    base = method.configure

    def configure(setting: Setting, seed: int) -> EvolveConfig:
        config = base(setting, seed)
        budget = replace(config.budget, **{k[7:]: v for k, v in rule.items() if k.startswith("budget.")})
        plain = {k: v for k, v in rule.items() if not k.startswith("budget.")}
        return replace(config, budget=budget, **plain).validate()

    changed = method if not rule else _evolve_method(method.name, method.build, configure, candidate=method.candidate,
                                                     description=method.description)
    if setting_overrides:
        _set(Setting(Budget(), 1, 1), setting_overrides)  # validate now, not at the first cell
        changed = _in_setting(changed, lambda setting: _set(setting, setting_overrides))
    return replace(changed, name=f"{method.name}[{spec}]", description=f"{method.description}; with {spec}")


def _set(setting: Setting, overrides: dict) -> Setting:
    """``setting`` with the :data:`SETTING_KEYS` of ``overrides`` applied (and validated)."""
    start = replace(setting.start, **{k[6:]: v for k, v in overrides.items() if k.startswith("start.")}).validate()
    budget = setting.budget
    if "neurons" in overrides:
        budget = replace(budget, neurons=overrides["neurons"]).validate()
    return replace(setting, budget=budget, start=start)


def _in_setting(method: Method, change: Callable[[Setting], Setting]) -> Method:
    """``method`` built, configured and trained in ``change(setting)`` instead of ``setting``."""
    configure = None if method.configure is None else (lambda setting, seed: method.configure(change(setting), seed))
    return replace(
        method, build=lambda setting, seed: method.build(change(setting), seed),
        train=lambda model, setting, train, val, seed: method.train(model, change(setting), train, val, seed),
        configure=configure,
    )


def _parse_variant(name: str) -> Method:
    """``base[key=value,...]`` (values read as JSON when they parse, else as strings)."""
    base, _, spec = name[:-1].partition("[")
    if base not in METHODS:
        raise NCGError(f"unknown method {base!r} in {name!r}; expected one of {list(METHODS)}")
    overrides = {}
    for item in filter(None, spec.split(",")):
        key, sep, text = item.partition("=")
        if not sep:
            raise NCGError(f"{name!r}: {item!r} is not key=value")
        try:
            overrides[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key.strip()] = text
    return variant(METHODS[base], overrides)


def at_parameters(method: Method, parameters: int) -> Method:
    """``method`` with the sparse parameter budget ``parameters`` (``Budget.sparse_parameters``)
    whatever the sweep's budget, named ``name@parameters``: one sweep, and one Pareto figure,
    holds every budget.

    Examples
    --------
    >>> at_parameters(METHODS["sparse-granet"], 20_000).name
    'sparse-granet@20000'
    """
    if not isinstance(parameters, int) or parameters < 1:
        raise NCGError(f"{method.name}: the parameter budget after '@' must be a positive int, got {parameters!r}")

    def at(setting: Setting) -> Setting:
        return replace(setting, budget=replace(setting.budget, sparse_parameters=parameters))

    return replace(_in_setting(method, at), name=f"{method.name}@{parameters}",
                   description=f"{method.description}; {parameters:,} parameters")


def _parse(name: str) -> Method:
    """A method name: ``base``, ``base[key=value,...]`` (:func:`variant`), either followed by
    ``@parameters`` (:func:`at_parameters`)."""
    base, at, parameters = name.rpartition("@") if "@" in name else (name, "", "")
    if at:
        if not parameters.isdigit():
            raise NCGError(f"{name!r}: the parameter budget after '@' must be a positive int, got {parameters!r}")
        return at_parameters(_parse(base), int(parameters))
    if name in METHODS:
        return METHODS[name]
    if name.endswith("]"):
        return _parse_variant(name)
    raise NCGError(f"unknown method {name!r}; expected some of {list(METHODS)}, optionally as name[key=value,...] "
                   "and/or name@parameters")


def check_methods(names: list[str]) -> list[Method]:
    """The methods named (a preset name expands to its list; ``name[key=value,...]`` is a
    :func:`variant`, ``name@parameters`` the method at that parameter budget), or an
    :class:`~ncg.errors.NCGError` listing the valid names."""
    names = [m for name in names for m in PRESETS.get(name, [name])]
    unknown = [n for n in names if n.partition("@")[0].partition("[")[0] not in METHODS]
    if unknown:
        raise NCGError(f"unknown method(s) {unknown}; expected some of {list(METHODS)}")
    return [_parse(n) for n in names]


def parameters(model: nn.Module) -> int:
    """PyTorch's count, ``sum(p.numel() for p in model.parameters())``: the trainable weights and
    biases, encoder and decoder included (a FreeNet's input nodes hold no bias, a fixed random
    encoder is a buffer: neither is counted, see :meth:`FreeNet.num_parameters`)."""
    return sum(p.numel() for p in model.parameters())


def structure(model: nn.Module) -> dict[str, int | float]:
    """``hidden_edges``, ``input_connections``, ``neurons`` and ``depth`` of a FreeNet or a
    one-hidden-layer MLP (read as the FreeNet :meth:`FreeNet.from_mlp` would build), and of a
    FreeNet with input nodes where its edges go: ``input_output_edges`` (inputs straight to an
    output) and ``median_hop`` (the median distance in the topological order of the edges between
    neurons, counted in neurons)."""
    if isinstance(model, FreeNet):
        graph = model.graph
        depth = int(topological_generations(graph.edge_index, graph.num_neurons).max())
        dense_inputs = 0 if graph.num_inputs else model.in_features * model.num_neurons
        found = {"hidden_edges": graph.num_edges - graph.num_input_edges,
                 "input_connections": dense_inputs + graph.num_input_edges,
                 "neurons": graph.num_neurons - graph.num_inputs, "depth": depth}
        if graph.num_inputs:
            src, dst = graph.edge_index
            from_input, into_output = graph.is_input[src], graph.roles[dst] == graph.OUTPUT
            hops = (graph.position[dst] - graph.position[src])[~from_input]
            found["input_output_edges"] = int((from_input & into_output).sum())
            found["median_hop"] = float(hops.double().median()) if hops.numel() else 0.0
        return found
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return {"hidden_edges": sum(m.weight.numel() for m in linears[1:]), "input_connections": linears[0].weight.numel(),
            "neurons": sum(m.out_features for m in linears), "depth": len(linears) - 1}
