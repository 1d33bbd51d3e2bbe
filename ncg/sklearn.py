"""scikit-learn estimators that train a whole-network FreeNet with Free-Evolve.

:class:`FreeNetClassifier` and :class:`FreeNetRegressor` build, in ``fit``, a FreeNet whose
input features are nodes of the graph (:func:`ncg.build.sparse_start`: every input connection
is an edge the rules can prune and grow), train it with :class:`~ncg.evolve.FreeEvolve` while
pruning it towards a parameter budget, and then behave like any scikit-learn estimator:
``predict``, ``predict_proba`` (classifier), ``score``, ``get_params`` / ``set_params``,
``clone``, pipelines, cross-validation and grid search.

Design choices:

* **Standardisation is inside.** ``fit`` standardises the features (and the regressor its
  targets) with the training statistics and the predictions undo it. Free-Evolve trains with
  Adam at a fixed learning rate, which diverges or stalls on raw features in the thousands
  (``load_breast_cancer``) or targets in the hundreds (``load_diabetes``); inside, the default
  estimator works on raw data like a tree ensemble does. A ``StandardScaler`` in front (a
  ``Pipeline``) is harmless: standardising standardised data changes it only by rounding.
* **float32 training.** Input of any real dtype (scikit-learn gives float64) is standardised in
  float64, then converted to float32, the FreeNet's dtype.
* **Determinism.** ``random_state`` seeds the graph, the shuffling and every edit: a fixed
  ``random_state`` gives the same model bit for bit on one machine and thread count.
* **No partial_fit.** Free-Evolve is a schedule over the whole training run (train, prune
  towards the budget round by round, fine-tune), and the standardisation statistics are fixed
  at the start: a stream of mini-batches has neither a round structure nor the statistics.
  Refit on the data seen so far instead.
* **No sample weights.** The training loop (:func:`ncg.train.train_epoch`) takes none.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> X, y = load_iris(return_X_y=True)
>>> clf = FreeNetClassifier(n_hidden=8, max_parameters=0.5, rounds=2, epochs_per_round=10,
...                         random_state=0).fit(X, y)
>>> clf.score(X, y) > 0.9, clf.n_parameters_ <= clf.max_parameters_
(True, True)
"""
from __future__ import annotations

import numbers
import warnings
from typing import Callable

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ncg.build import sparse_start
from ncg.errors import NCGError
from ncg.evolve import EditBudget, EvolveConfig, FreeEvolve
from ncg.evolve.rules import GROW_SCORES, PRUNE_SCORES
from ncg.kernels.sweep import ACTIVATION_CODES
from ncg.model import FreeNet
from ncg.presets import ESTIMATOR, ESTIMATOR_RULES

__all__ = ["FreeNetClassifier", "FreeNetRegressor"]

PREDICT_BATCH = 4096
"""Samples per forward pass in ``predict``: bounds the ``[N, batch]`` neuron states."""


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _in_unit(value: object, low_open: bool = False) -> bool:
    return _is_real(value) and (0.0 < value if low_open else 0.0 <= value) and value <= 1.0


def _one_of(choices: object) -> Callable[[object], bool]:
    return lambda value: isinstance(value, str) and value in choices


_PARAMETER_RULES: list[tuple[str, Callable[[object], bool], str]] = [
    *((name, lambda v, low=low: _is_int(v) and v >= low, f"an int >= {low}")
      for name, low in (("n_hidden", 0), ("rounds", 0), ("epochs_per_round", 0), ("final_epochs", 0), ("batch_size", 1))),
    ("max_parameters", lambda v: (_is_int(v) and v >= 1) or (not _is_int(v) and _in_unit(v, low_open=True)),
     "an int >= 1 (a count) or a float in (0, 1] (a fraction of the start's parameters)"),
    ("start_density", lambda v: _in_unit(v, low_open=True), "a float in (0, 1]"),
    ("prune_fraction", _in_unit, "a float in [0, 1]"),
    ("add_fraction", _in_unit, "a float in [0, 1]"),
    ("tau", lambda v: _is_real(v) and -1.0 <= v <= 1.0, "a float in [-1, 1]"),
    ("lr", lambda v: _is_real(v) and v > 0, "a float > 0"),
    ("finetune_lr", lambda v: v is None or (_is_real(v) and v > 0), "a float > 0 or None"),
    ("weight_decay", lambda v: _is_real(v) and v >= 0, "a float >= 0"),
    ("prune_score", _one_of(PRUNE_SCORES), f"one of {sorted(PRUNE_SCORES)}"),
    ("grow_score", _one_of(GROW_SCORES), f"one of {sorted(GROW_SCORES)}"),
    ("activation", _one_of(ACTIVATION_CODES), f"one of {sorted(ACTIVATION_CODES)}"),
]
"""``(parameter, valid(value), what a valid value is)``, checked in this order by ``fit``."""


class _FreeNetEstimator(BaseEstimator):
    """What the classifier and the regressor share: parameters, validation, the Free-Evolve run.

    Subclasses set ``_task`` (a key of :data:`ncg.tasks.TASKS`) and define ``_targets(y) ->
    (targets, num_outputs)``, which turns the validated ``y`` into training targets and sets the
    target attributes (``classes_`` or ``n_outputs_``).
    """

    def __init__(
        self,
        n_hidden: int = ESTIMATOR.neurons,
        max_parameters: int | float = 0.3,
        start_density: float = 1.0,
        rounds: int = ESTIMATOR.rounds,
        epochs_per_round: int = ESTIMATOR.epochs_per_round,
        final_epochs: int = ESTIMATOR.final_epochs,
        prune_score: str = ESTIMATOR_RULES.prune_score,
        grow_score: str = ESTIMATOR_RULES.grow_score,
        prune_fraction: float = ESTIMATOR_RULES.prune_fraction,
        add_fraction: float = ESTIMATOR_RULES.add_fraction,
        tau: float = 0.25,
        activation: str = "relu",
        lr: float = ESTIMATOR.lr,
        finetune_lr: float | None = ESTIMATOR.finetune_lr,
        batch_size: int = ESTIMATOR.batch_size,
        weight_decay: float = 0.0,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.n_hidden = n_hidden
        self.max_parameters = max_parameters
        self.start_density = start_density
        self.rounds = rounds
        self.epochs_per_round = epochs_per_round
        self.final_epochs = final_epochs
        self.prune_score = prune_score
        self.grow_score = grow_score
        self.prune_fraction = prune_fraction
        self.add_fraction = add_fraction
        self.tau = tau
        self.activation = activation
        self.lr = lr
        self.finetune_lr = finetune_lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state

    def _check_params(self) -> None:
        """Raise :class:`~ncg.errors.NCGError` naming the first bad parameter, the expected and
        the found value."""
        for name, valid, expected in _PARAMETER_RULES:
            value = getattr(self, name)
            if not valid(value):
                raise NCGError(f"{name} must be {expected}, got {value!r}")

    # ------------------------------------------------------------------ fitting
    def _fit(self, X: np.ndarray, y: np.ndarray) -> _FreeNetEstimator:
        self._check_params()
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        x = torch.from_numpy(((X - self.mean_) / self.scale_).astype(np.float32))
        targets, num_outputs = self._targets(y)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        graph = sparse_start(num_inputs=X.shape[1], num_hidden=int(self.n_hidden), num_outputs=num_outputs,
                             density=float(self.start_density), seed=seed)
        net = FreeNet(graph, in_features=X.shape[1], activation=self.activation, seed=seed)
        start = net.num_parameters()  # sum(p.numel() for p in net.parameters())
        budget = self.max_parameters
        self.max_parameters_ = int(budget) if isinstance(budget, numbers.Integral) else max(1, round(budget * start))
        biases = net.bias.numel()  # one per non-input neuron: an input node holds its feature, no bias
        target_edges = self.max_parameters_ - biases
        if target_edges < 1:
            raise NCGError(f"max_parameters must leave room for edges beside the {biases} neuron biases "
                           f"(> {biases} parameters), got {budget!r} ({self.max_parameters_} parameters)")
        config = EvolveConfig(
            rounds=int(self.rounds), epochs_per_round=int(self.epochs_per_round), final_epochs=int(self.final_epochs),
            tau=float(self.tau), prune_score=self.prune_score, grow_score=self.grow_score,
            budget=EditBudget(prune_fraction=float(self.prune_fraction), add_fraction=float(self.add_fraction),
                              target_edges=target_edges),
            task=self._task, batch_size=int(self.batch_size), lr=float(self.lr),
            finetune_lr=None if self.finetune_lr is None else float(self.finetune_lr),
            weight_decay=float(self.weight_decay), seed=seed, stop_when_unchanged=False,
        )
        self.history_ = FreeEvolve(net, config).run((x, targets))
        self.net_ = net.eval()
        self.n_parameters_ = net.num_parameters()
        if self.n_parameters_ > self.max_parameters_:
            warnings.warn(f"max_parameters: the FreeNet holds {self.n_parameters_} parameters after rounds="
                          f"{self.rounds}, above the budget of {self.max_parameters_}; raise rounds or "
                          "prune_fraction to reach it", UserWarning, stacklevel=3)
        return self

    def _forward(self, X: object) -> np.ndarray:
        """The FreeNet's float64 outputs ``[n_samples, n_outputs]`` on validated, standardised ``X``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        x = torch.from_numpy(((X - self.mean_) / self.scale_).astype(np.float32))
        with torch.no_grad():
            outputs = [self.net_(x[start:start + PREDICT_BATCH]) for start in range(0, x.shape[0], PREDICT_BATCH)]
        return torch.cat(outputs).double().numpy()


class FreeNetClassifier(ClassifierMixin, _FreeNetEstimator):
    """A whole-network FreeNet classifier trained with Free-Evolve.

    ``fit`` standardises the features, builds :func:`~ncg.build.sparse_start` over them
    (``n_features`` input nodes, ``n_hidden`` hidden neurons, one output neuron per class; with
    ``start_density=1`` the complete DAG: every input feeds every neuron and every neuron every
    later one), and runs Free-Evolve: ``rounds`` rounds of ``epochs_per_round`` epochs of Adam on
    the cross-entropy, each ending with edits (``prune_score`` drops up to ``prune_fraction`` of
    the edges, ``grow_score`` regrows up to ``add_fraction``, neurons that never fire go),
    pruning towards ``max_parameters``; then ``final_epochs`` of fine-tuning at ``finetune_lr``.

    Parameters
    ----------
    n_hidden : int, default 32
        Hidden neurons of the starting graph.
    max_parameters : int or float, default 0.3
        Parameter budget (PyTorch's count: edges + one bias per non-input neuron). An
        int is a count; a float in (0, 1] a fraction of the start's count. The edits prune
        towards it and never below (neurons removed as dead take their biases along); a warning
        says when ``rounds`` and ``prune_fraction`` were too few to reach it.
    start_density : float, default 1.0
        Fraction of the allowed edges of the start (1: the complete DAG over inputs and neurons).
    rounds : int, default 4
        Free-Evolve rounds (train, edit).
    epochs_per_round : int, default 5
        Training epochs of each round.
    final_epochs : int, default 10
        Fine-tuning epochs after the last round.
    prune_score : str, default "magnitude"
        A key of :data:`ncg.evolve.rules.PRUNE_SCORES` (``coactivation``: Free-Evolve's Hebbian rule).
    grow_score : str, default "gradient"
        A key of :data:`ncg.evolve.rules.GROW_SCORES` (``gradient`` with ``magnitude``: GraNet's rules,
        the main job's default).
    prune_fraction : float, default 0.5
        At most this fraction of the edges is pruned per round.
    add_fraction : float, default 0.1
        At most this fraction of the edge count is regrown per round.
    tau : float, default 0.25
        Hebbian threshold of the ``coactivation`` rules (the others ignore it).
    activation : str, default "relu"
        Hidden neurons' activation, a key of :data:`ncg.activations.ACTIVATIONS` (``relu``,
        ``tanh``, ``gelu``, ...).
    lr : float, default 1e-2
        Adam's learning rate during the rounds.
    finetune_lr : float or None, default 2e-3
        Learning rate of the fine-tuning (``None``: keep ``lr``).
    batch_size : int, default 64
    weight_decay : float, default 0.0
    random_state : int, RandomState or None, default None
        Seeds the graph, the shuffling and the edits; an int makes ``fit`` repeatable.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names (a DataFrame).
    net_ : FreeNet
        The trained network (its outputs are the class logits of standardised features).
    history_ : History
        Every round of the Free-Evolve run (:class:`~ncg.evolve.history.History`).
    mean_, scale_ : ndarray of shape (n_features,)
        The standardisation of the features (a constant feature has scale 1).
    max_parameters_ : int
        The budget as a count.
    n_parameters_ : int
        ``sum(p.numel() for p in net_.parameters())`` after training.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = FreeNetClassifier(n_hidden=8, max_parameters=0.5, rounds=2, epochs_per_round=4, final_epochs=4,
    ...                         random_state=0)
    >>> clf.fit(X[:400], y[:400]).score(X[400:], y[400:]) > 0.9
    True
    >>> clf.predict_proba(X[:2]).shape, clf.classes_.tolist()
    ((2, 2), [0, 1])
    """

    _task = "classification"

    def fit(self, X: object, y: object) -> FreeNetClassifier:
        """Train a FreeNet on ``X`` (``[n_samples, n_features]``, any real dtype) and labels ``y``.

        Raises
        ------
        ValueError
            Bad input (scikit-learn's messages), fewer than two classes, or a bad parameter
            (:class:`~ncg.errors.NCGError`, naming it).
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        return self._fit(X, y)

    def _targets(self, y: np.ndarray) -> tuple[torch.Tensor, int]:
        self.classes_, labels = np.unique(y, return_inverse=True)
        if self.classes_.size < 2:
            raise NCGError(f"y must hold at least 2 classes, got 1 class ({self.classes_[0]!r})")
        return torch.from_numpy(labels.astype(np.int64)), int(self.classes_.size)

    def predict_proba(self, X: object) -> np.ndarray:
        """Class probabilities ``[n_samples, n_classes]`` (softmax of the logits, in the order
        of ``classes_``)."""
        logits = self._forward(X)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, X: object) -> np.ndarray:
        """The most probable class of each sample."""
        best = self._forward(X).argmax(axis=1)
        return self.classes_[best]


class FreeNetRegressor(RegressorMixin, _FreeNetEstimator):
    """A whole-network FreeNet regressor trained with Free-Evolve.

    As :class:`FreeNetClassifier` (the same parameters and attributes, without ``classes_``),
    with one output neuron per target, the mean squared error as the loss, and the targets
    standardised inside as well (``y_mean_``, ``y_scale_``; predictions are mapped back).
    ``y`` may be 1-D or ``[n_samples, n_targets]``; ``predict`` returns 1-D for one target.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = FreeNetRegressor(n_hidden=8, max_parameters=0.5, rounds=2, epochs_per_round=4, final_epochs=4,
    ...                        random_state=0)
    >>> reg.fit(X[:350], y[:350]).score(X[350:], y[350:]) > 0.3
    True
    >>> reg.predict(X[:3]).shape, reg.n_outputs_
    ((3,), 1)
    """

    _task = "regression"

    def fit(self, X: object, y: object) -> FreeNetRegressor:
        """Train a FreeNet on ``X`` (``[n_samples, n_features]``, any real dtype) and targets ``y``
        (1-D or ``[n_samples, n_targets]``).

        Raises
        ------
        ValueError
            Bad input (scikit-learn's messages) or a bad parameter (:class:`~ncg.errors.NCGError`,
            naming it).
        """
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, y_numeric=True)
        return self._fit(X, y)

    def _targets(self, y: np.ndarray) -> tuple[torch.Tensor, int]:
        y = np.asarray(y, dtype=np.float64).reshape(y.shape[0], -1)
        self.n_outputs_ = y.shape[1]
        self.y_mean_ = y.mean(axis=0)
        scale = y.std(axis=0)
        self.y_scale_ = np.where(scale > 0, scale, 1.0)
        return torch.from_numpy(((y - self.y_mean_) / self.y_scale_).astype(np.float32)), self.n_outputs_

    def predict(self, X: object) -> np.ndarray:
        """Predicted targets: ``[n_samples]`` for one target, else ``[n_samples, n_targets]``."""
        prediction = self._forward(X) * self.y_scale_ + self.y_mean_
        return prediction.ravel() if self.n_outputs_ == 1 else prediction

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
