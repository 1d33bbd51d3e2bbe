"""The main job's schedule and budget, and the named rule sets, in one place.

The example (``examples/evolve_mnist.py``), the comparisons (:mod:`ncg.experiments`), the
scikit-learn estimators (:mod:`ncg.sklearn`) and the benchmarks read their defaults from here,
so a setting is stated once.

A :class:`Schedule` says how long a run trains and on what: neurons, rounds, epochs, learning
rates, the samples each round records. A :class:`RuleSet` says how a round edits the graph: the
prune and grow scores, the fractions and the edit schedule; :meth:`RuleSet.config` turns one
into the fields of an :class:`~ncg.evolve.EvolveConfig`.

=========================  =============================  ============================================
preset                     rules                          used by
=========================  =============================  ============================================
:data:`GRANET`             magnitude prune 60%, gradient  the main job (``--start whole``),
                           regrowth 10%                   ``sparse-granet``
:data:`GRADUAL_HEBBIAN`    magnitude prune 60%,           ``sparse-gradual-hebbian``
                           coactivation regrowth 10%
:data:`COACTIVATION`       coactivation prune 20%,        ``--start complete`` / ``sparse``,
                           Hebbian growth 2%              ``free-evolve``
:data:`SET`                magnitude drop 30%, random     ``set``, ``sparse-set``
                           regrowth, every epoch
:data:`RIGL`               magnitude drop 30% (cosine),   ``rigl``, ``sparse-rigl``
                           gradient regrowth, every epoch
:data:`IMP`                2 train-prune-rewind cycles    ``imp``, ``sparse-imp``
=========================  =============================  ============================================

Examples
--------
>>> from ncg import presets
>>> presets.MAIN.stages
((8, 0.001), (3, 0.0002))
>>> presets.GRANET.config(target_edges=1_000)["budget"]
EditBudget(prune_fraction=0.6, add_fraction=0.1, target_edges=1000, target_density=None, grow_neurons=0, regrow=False, decay='constant', decay_end=1.0)
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ncg.evolve.loop import EditBudget

__all__ = [
    "Schedule", "RuleSet", "IMPRules", "MAIN", "QUICK", "SWEEP_QUICK", "ESTIMATOR", "SPARSE_PARAMETERS",
    "QUICK_SPARSE_PARAMETERS", "GRANET", "GRADUAL_HEBBIAN", "GRADUAL_COACTIVE", "GRADUAL_MAGNITUDE",
    "COACTIVATION", "SET", "RIGL", "ESTIMATOR_RULES", "IMP",
]


@dataclass(frozen=True)
class Schedule:
    """How long a run trains and on what.

    Attributes
    ----------
    neurons : int
        Hidden neurons of the initial DAG.
    rounds : int
        Free-Evolve rounds (train, record, edit).
    epochs_per_round : int
    final_epochs : int
        Fine-tuning epochs after the last round.
    record_samples : int
        Samples of each round's coactivation recording and gradient scores.
    lr, finetune_lr : float
        Adam learning rates of the rounds and of the fine-tuning.
    batch_size : int
    train_samples : int, optional
        Train on the first samples only (tiny runs).
    """

    neurons: int
    rounds: int
    epochs_per_round: int
    final_epochs: int
    record_samples: int
    lr: float = 1e-3
    finetune_lr: float = 2e-4
    batch_size: int = 256
    train_samples: int | None = None

    @property
    def evolve_epochs(self) -> int:
        """Epochs of the rounds together."""
        return self.rounds * self.epochs_per_round

    @property
    def stages(self) -> tuple[tuple[int, float], ...]:
        """``((evolve epochs, lr), (fine-tuning epochs, finetune_lr))``: the Adam stages."""
        return (self.evolve_epochs, self.lr), (self.final_epochs, self.finetune_lr)


@dataclass(frozen=True)
class RuleSet:
    """How each round edits the graph.

    Attributes
    ----------
    name : str
    prune_score, grow_score : str
        Names in :data:`ncg.evolve.rules.PRUNE_SCORES` and :data:`~ncg.evolve.rules.GROW_SCORES`.
    prune_fraction, add_fraction : float
        :class:`~ncg.evolve.EditBudget`'s fractions (``add_fraction`` is ignored with ``regrow``).
    regrow : bool
        Constant edge budget: grow as many edges as pruned.
    decay : {"constant", "cosine"}
    decay_end : float
    grow_init : str
        Initial weight of grown edges (``zero`` or ``uniform``).
    remove_dead : bool
        Remove neurons that never fire.
    every_epoch : bool
        One round per epoch of the evolve stage (SET, RigL) instead of the schedule's rounds.
    """

    name: str
    prune_score: str
    grow_score: str
    prune_fraction: float
    add_fraction: float = 0.02
    regrow: bool = False
    decay: str = "constant"
    decay_end: float = 1.0
    grow_init: str = "zero"
    remove_dead: bool = True
    every_epoch: bool = False

    def budget(self, target_edges: int | None = None) -> EditBudget:
        """The :class:`~ncg.evolve.EditBudget` of these rules, shrinking towards ``target_edges``."""
        return EditBudget(prune_fraction=self.prune_fraction, add_fraction=self.add_fraction,
                          target_edges=target_edges, regrow=self.regrow, decay=self.decay, decay_end=self.decay_end)

    def config(self, target_edges: int | None = None) -> dict:
        """The :class:`~ncg.evolve.EvolveConfig` fields these rules set (``rounds`` excepted)."""
        return {"prune_score": self.prune_score, "grow_score": self.grow_score, "grow_init": self.grow_init,
                "remove_dead": self.remove_dead, "budget": self.budget(target_edges)}


@dataclass(frozen=True)
class IMPRules:
    """Iterative magnitude pruning with rewinding: ``cycles`` train-prune-rewind cycles, rewinding
    to the weights after ``rewind_epochs`` epochs."""

    cycles: int = 2
    rewind_epochs: int = 1


MAIN = Schedule(neurons=512, rounds=4, epochs_per_round=2, final_epochs=3, record_samples=10_000)
"""The main job: 4 rounds of 2 epochs at lr 1e-3, then 3 fine-tuning epochs at 2e-4."""
QUICK = Schedule(neurons=48, rounds=2, epochs_per_round=1, final_epochs=1, record_samples=500)
"""``examples/evolve_mnist.py --quick``: a run of seconds."""
SWEEP_QUICK = Schedule(neurons=32, rounds=2, epochs_per_round=2, final_epochs=1, record_samples=500,
                       train_samples=5_000)
"""``python -m ncg.experiments run --quick``: a sweep of seconds to a minute."""
ESTIMATOR = Schedule(neurons=32, rounds=4, epochs_per_round=5, final_epochs=10, record_samples=10_000, lr=1e-2,
                     finetune_lr=2e-3, batch_size=64)
"""The scikit-learn estimators' defaults, sized for small tables."""
SPARSE_PARAMETERS = 40_000
"""The main job's parameter budget (edges + one bias per non-input neuron): under 10% of MLP
784-512-10's 407,050."""
QUICK_SPARSE_PARAMETERS = 4_000
"""The parameter budget of the quick runs."""

GRANET = RuleSet("granet", "magnitude", "gradient", prune_fraction=0.6, add_fraction=0.1)
"""GraNet's shape (Liu et al. 2021): gradual magnitude pruning with regrowth where the loss
gradient of a missing edge is largest; each round prunes 60% and regrows 10%, which lands on a
6% budget after 4 rounds. The main job's rules."""
GRADUAL_HEBBIAN = replace(GRANET, name="gradual-hebbian", grow_score="coactivation")
"""GraNet's schedule with Hebbian regrowth between neurons that fire together."""
GRADUAL_COACTIVE = replace(GRADUAL_HEBBIAN, name="gradual-coactive", prune_score="coactivation_magnitude")
"""GraNet's schedule, coactivation-weighted magnitude pruning, Hebbian regrowth."""
GRADUAL_MAGNITUDE = RuleSet("gradual-magnitude", "magnitude", "coactivation", prune_fraction=0.5, add_fraction=0.0)
"""Gradual magnitude pruning without regrowth: half the edges per round."""
COACTIVATION = RuleSet("coactivation", "coactivation", "coactivation", prune_fraction=0.2, add_fraction=0.02)
"""Coactivation pruning and Hebbian growth (``--start complete``, ``free-evolve``)."""
SET = RuleSet("set", "magnitude", "random", prune_fraction=0.3, regrow=True, grow_init="uniform",
              remove_dead=False, every_epoch=True)
"""SET (Mocanu et al. 2018): after each epoch drop the fraction zeta = 0.3 of the
smallest-magnitude edges and regrow as many at random, new weights drawn like the start."""
RIGL = RuleSet("rigl", "magnitude", "gradient", prune_fraction=0.3, regrow=True, decay="cosine", decay_end=0.75,
               remove_dead=False, every_epoch=True)
"""RigL (Evci et al. 2020): drop the smallest-magnitude edges, grow the non-edges with the
largest gradient at weight 0 (new weights 0); the fraction starts at 0.3 and decays with a
cosine to 0 at 75% of the updates, once per epoch."""
ESTIMATOR_RULES = replace(GRANET, name="estimator", prune_fraction=0.5)
"""The scikit-learn estimators' rules: GraNet's scores, half the edges per round."""
IMP = IMPRules()
"""IMP's cycles and rewinding."""
