"""The FreeNets authors' polynomial experiment, reproduced with :class:`~ncg.model.FreeNet`.

The FreeNets authors (github.com/p10rahulm/freenets-reloaded) fit monomials with ``k``
SquareReLU neurons wired as a complete DAG (every neuron sees the input and every earlier
neuron) plus a linear readout, and compare with a ReLU MLP holding the same ``k`` neurons in two
hidden layers of ``k / 2``. Their data: 10,000 points drawn uniformly, a random 1% held out as
the test set, test MSE reported (the mean over 5 runs). This module builds the same data, the
two models and a training recipe that reaches their accuracy cheaply:

* :class:`Polynomial`, :func:`monomial`, :func:`random_polynomial`, :func:`polynomial_data`;
* :func:`freenet_for_polynomial` (``k`` square-ReLU neurons, complete DAG, linear decoder) and
  :func:`mlp_for_polynomial` (``k`` neurons in two hidden layers, as the authors define it);
* :class:`PolynomialRecipe` and :func:`fit_polynomial`: multi-start Adam on the full batch, the
  best starts refined by Adam with a cosine schedule, then full-batch L-BFGS, in float64;
* :func:`run_polynomial_sweep` (one resumable JSON row per run), :func:`polynomial_table` and
  :func:`main` (``python -m ncg.experiments.polynomial --help``).

Examples
--------
>>> import torch
>>> data = polynomial_data(monomial(2), seed=0, num_points=200)
>>> net = freenet_for_polynomial(2, seed=0)
>>> result = fit_polynomial(net, data, PolynomialRecipe.quick(), seed=0)
>>> result["test_mse"] < 1.0
True
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ncg.atomic import atomic_write_text
from ncg.errors import NCGError
from ncg.experiments.cells import CellStore
from ncg.graph import NCG
from ncg.model import FreeNet, SquareReLU
from ncg.tasks import Task, get_task

__all__ = [
    "Polynomial",
    "PolynomialData",
    "PolynomialRecipe",
    "monomial",
    "random_polynomial",
    "polynomial_data",
    "freenet_for_polynomial",
    "mlp_for_polynomial",
    "fit_polynomial",
    "Cell",
    "default_cells",
    "parse_cell",
    "run_polynomial_sweep",
    "polynomial_table",
    "main",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
MODELS = ("freenet", "mlp")


# ---------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Polynomial:
    """A polynomial ``sum_i coefficients[i] * x**i`` with a short name.

    Attributes
    ----------
    name : str
        Label used in rows and tables, e.g. ``"x^8"`` or ``"rand8"``.
    coefficients : tuple of float
        Coefficients from degree 0 upwards.

    Examples
    --------
    >>> p = Polynomial("p", (1.0, 0.0, 2.0))
    >>> p.degree, p(np.array([0.0, 1.0])).tolist()
    (2, [1.0, 3.0])
    """

    name: str
    coefficients: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.coefficients:
            raise NCGError("coefficients must hold at least one value")
        if not all(math.isfinite(c) for c in self.coefficients):
            raise NCGError(f"coefficients must be finite, got {self.coefficients!r}")

    @property
    def degree(self) -> int:
        """Index of the highest non-zero coefficient (0 for a constant)."""
        nonzero = [i for i, c in enumerate(self.coefficients) if c != 0.0]
        return nonzero[-1] if nonzero else 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Evaluate at ``x`` (Horner's rule, float64)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.zeros_like(x)
        for c in reversed(self.coefficients):
            y = y * x + c
        return y


def monomial(degree: int) -> Polynomial:
    """The monomial ``x**degree``, named ``"x^<degree>"``.

    Examples
    --------
    >>> monomial(8).name, monomial(8).degree
    ('x^8', 8)
    """
    if not isinstance(degree, int) or degree < 1:
        raise NCGError(f"degree must be an int >= 1, got {degree!r}")
    return Polynomial(f"x^{degree}", tuple([0.0] * degree + [1.0]))


def random_polynomial(degree: int, seed: int | None = None) -> Polynomial:
    """A dense polynomial of ``degree`` with coefficients drawn from ``U(-1, 1)``.

    The coefficients are fixed by ``seed`` (default ``1000 + degree``), so ``"rand8"`` is the
    same polynomial in every run and every sweep.

    Examples
    --------
    >>> p = random_polynomial(4)
    >>> p.name, len(p.coefficients), p == random_polynomial(4)
    ('rand4', 5, True)
    """
    if not isinstance(degree, int) or degree < 1:
        raise NCGError(f"degree must be an int >= 1, got {degree!r}")
    rng = np.random.default_rng(1000 + degree if seed is None else seed)
    coefficients = rng.uniform(-1.0, 1.0, degree + 1)
    if abs(coefficients[-1]) < 0.25:  # keep the degree visible
        coefficients[-1] = math.copysign(0.25 + abs(coefficients[-1]), coefficients[-1])
    name = f"rand{degree}" if seed is None else f"rand{degree}s{seed}"
    return Polynomial(name, tuple(float(c) for c in coefficients))


@dataclass(frozen=True)
class PolynomialData:
    """Train and test tensors ``[n, 1]`` (float64) for one polynomial.

    Attributes
    ----------
    polynomial : Polynomial
        The target.
    x_train, y_train, x_test, y_test : Tensor
        Inputs and targets, float64, shape ``[n, 1]``.
    interval : tuple of float
        The sampling interval.
    """

    polynomial: Polynomial
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    interval: tuple[float, float]


def polynomial_data(
    polynomial: Polynomial,
    seed: int = 0,
    num_points: int = 10_000,
    test_fraction: float = 0.01,
    interval: tuple[float, float] = (-1.0, 1.0),
) -> PolynomialData:
    """Points drawn uniformly from ``interval``, a random ``test_fraction`` held out.

    As in the authors' code (``data_generators/monomials.py`` + ``utilities/data_utilities.py``):
    10,000 uniform random points (no grid), 1% (100 points) held out at random as the test set.

    Parameters
    ----------
    polynomial : Polynomial
        The target.
    seed : int, default 0
        Fixes the points and the split.
    num_points : int, default 10000
        Points in total.
    test_fraction : float, default 0.01
        Share held out for testing (at least one point each side).
    interval : tuple of float, default (-1, 1)
        Sampling interval (the authors' published table used ``(0, 1)``).

    Examples
    --------
    >>> d = polynomial_data(monomial(2), seed=0, num_points=100, test_fraction=0.1)
    >>> d.x_train.shape, d.x_test.shape, float(d.x_train.abs().max()) <= 1.0
    (torch.Size([90, 1]), torch.Size([10, 1]), True)
    """
    if not isinstance(polynomial, Polynomial):
        raise NCGError(f"polynomial must be a Polynomial, got {type(polynomial).__name__}")
    if not isinstance(num_points, int) or num_points < 2:
        raise NCGError(f"num_points must be an int >= 2, got {num_points!r}")
    if not 0.0 < test_fraction < 1.0:
        raise NCGError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    lo, hi = (float(v) for v in interval)
    if not lo < hi:
        raise NCGError(f"interval must be (low, high) with low < high, got {interval!r}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, num_points)
    num_test = min(num_points - 1, max(1, round(test_fraction * num_points)))
    perm = rng.permutation(num_points)
    test, train = perm[:num_test], perm[num_test:]
    y = polynomial(x)

    def col(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).reshape(-1, 1)

    return PolynomialData(polynomial, col(x[train]), col(y[train]), col(x[test]), col(y[test]), (lo, hi))


# ---------------------------------------------------------------------------------- models
def freenet_for_polynomial(k: int, seed: int | None = None, dtype: str = "float64") -> FreeNet:
    """``k`` square-ReLU neurons in a complete DAG, read by a linear decoder.

    Neuron ``j`` computes ``relu(b_j + a_j x + sum_{i<j} w_ij h_i) ** 2``; the output is
    ``c_0 + sum_j c_j h_j``. This is the authors' FreeNet (``p10rahulm/freenets/freenet.py``:
    each neuron sees the input and every earlier neuron, biases everywhere, a separate
    ``Linear(k, 1)`` readout). All ``k`` neurons are output neurons of the graph so the decoder
    reads them all. Parameters: ``k`` encoder weights, ``k`` biases, ``k(k-1)/2`` edges, ``k+1``
    readout. Initialisation is fan-in scaled uniform, unscaled (``init_scale=1``: a DAG of
    at most 8 neurons does not need the square-ReLU default of 0.5, and the recipe was
    measured with it).

    Examples
    --------
    >>> net = freenet_for_polynomial(4, seed=0)
    >>> net.num_neurons, sum(p.numel() for p in net.parameters())
    (4, 19)
    """
    if not isinstance(k, int) or k < 1:
        raise NCGError(f"k must be an int >= 1, got {k!r}")
    if dtype not in _DTYPES:
        raise NCGError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    graph = NCG.complete(k, num_outputs=k, seed=seed)
    net = FreeNet(
        graph, in_features=1, out_features=1, activation="square_relu",
        output_activation="square_relu", decoder="linear", seed=seed, init_scale=1.0,
    )
    return net.to(_DTYPES[dtype])


def _mlp_widths(k: int) -> list[int]:
    return [k] if k < 2 else [k // 2, k - k // 2]


def mlp_for_polynomial(
    k: int, seed: int | None = None, activation: str = "relu", dtype: str = "float64"
) -> nn.Sequential:
    """The authors' MLP "with the same neurons": ``k`` units in two hidden layers of ``k/2``.

    ``models/mlp.py`` with ``mlp_dim = [k/2, k/2]`` (``[1, 1]`` for 2 neurons, ``[2, 2]`` for
    4, ``[4, 4]`` for 8), ReLU, a linear output; ``activation="square_relu"`` gives their
    ``MLP_SqReLU``. An odd ``k`` splits as ``[k//2, k - k//2]``; ``k = 1`` is one layer.
    PyTorch's default ``nn.Linear`` initialisation.

    Examples
    --------
    >>> mlp = mlp_for_polynomial(4, seed=0)
    >>> [m.out_features for m in mlp if isinstance(m, nn.Linear)]
    [2, 2, 1]
    """
    if not isinstance(k, int) or k < 1:
        raise NCGError(f"k must be an int >= 1, got {k!r}")
    acts = {"relu": nn.ReLU, "square_relu": SquareReLU}
    if activation not in acts:
        raise NCGError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    if dtype not in _DTYPES:
        raise NCGError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the global RNG
        if seed is not None:
            torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = 1
        for w in _mlp_widths(k):
            layers += [nn.Linear(width, w), acts[activation]()]
            width = w
        layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers).to(_DTYPES[dtype])


def count_neurons(model: nn.Module) -> int:
    """Hidden neurons of a polynomial model (FreeNet neurons, or MLP hidden units).

    Examples
    --------
    >>> count_neurons(freenet_for_polynomial(4)), count_neurons(mlp_for_polynomial(4))
    (4, 4)
    """
    if isinstance(model, FreeNet):
        return model.num_neurons
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return sum(m.out_features for m in linears[:-1])


# ---------------------------------------------------------------------------------- recipe
@dataclass(frozen=True)
class PolynomialRecipe:
    """The knobs of :func:`fit_polynomial`; the defaults reproduce the authors' x^8 result.

    Three full-batch phases, in ``dtype``:

    1. *explore*: ``restarts`` fresh initialisations, each trained ``explore_steps`` Adam steps
       at ``explore_lr`` (cosine decay);
    2. *refine*: the ``finalists`` best starts (by training loss) train ``adam_steps`` more Adam
       steps at ``adam_lr`` (cosine decay);
    3. *finish*: ``lbfgs_rounds`` calls of L-BFGS (strong-Wolfe line search, ``lbfgs_iters``
       iterations each) on the training loss.

    The finalist with the lowest training loss is the result (the test set is never used for a
    choice). ``loss`` names a :data:`~ncg.tasks.TASKS` entry: ``"regression"`` (MSE, default)
    or ``"regression_linf"`` (the authors' max-abs-error loss).

    Examples
    --------
    >>> PolynomialRecipe().restarts, PolynomialRecipe.quick().restarts
    (8, 2)
    """

    restarts: int = 8
    explore_steps: int = 300
    explore_lr: float = 1e-2
    finalists: int = 2
    adam_steps: int = 1500
    adam_lr: float = 3e-3
    lbfgs_iters: int = 1000
    lbfgs_rounds: int = 2
    loss: str = "regression"
    dtype: str = "float64"

    def __post_init__(self) -> None:
        for name in ("restarts", "finalists"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise NCGError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("explore_steps", "adam_steps", "lbfgs_iters", "lbfgs_rounds"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise NCGError(f"{name} must be an int >= 0, got {value!r}")
        for name in ("explore_lr", "adam_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise NCGError(f"{name} must be a positive float, got {value!r}")
        if self.loss not in ("regression", "regression_linf"):
            raise NCGError(f"loss must be 'regression' or 'regression_linf', got {self.loss!r}")
        if self.dtype not in _DTYPES:
            raise NCGError(f"dtype must be one of {sorted(_DTYPES)}, got {self.dtype!r}")

    @classmethod
    def quick(cls) -> PolynomialRecipe:
        """A tiny recipe for tests and ``--quick`` (well under a second for small ``k``)."""
        return cls(restarts=2, explore_steps=20, finalists=1, adam_steps=30, lbfgs_iters=20, lbfgs_rounds=1)


def _adam(model: nn.Module, x: Tensor, y: Tensor, task: Task, steps: int, lr: float) -> float:
    if steps == 0:
        return _loss(model, x, y, task)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model(x), y)
        if not torch.isfinite(loss):
            return math.inf
        loss.backward()
        opt.step()
        sched.step()
    return _loss(model, x, y, task)


def _lbfgs(model: nn.Module, x: Tensor, y: Tensor, task: Task, iters: int) -> tuple[float, int]:
    opt = torch.optim.LBFGS(
        model.parameters(), lr=1.0, max_iter=iters, history_size=50, line_search_fn="strong_wolfe",
        tolerance_grad=1e-15, tolerance_change=1e-18,
    )
    evals = 0
    snapshot = copy.deepcopy(model.state_dict())

    def closure() -> Tensor:
        nonlocal evals
        evals += 1
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model(x), y)
        loss.backward()
        return loss

    before = _loss(model, x, y, task)
    opt.step(closure)
    after = _loss(model, x, y, task)
    if not after <= before:  # NaN or worse: keep the previous weights
        model.load_state_dict(snapshot)
        after = before
    return after, evals


@torch.no_grad()
def _loss(model: nn.Module, x: Tensor, y: Tensor, task: Task) -> float:
    value = float(task.loss(model(x), y))
    return value if math.isfinite(value) else math.inf


def fit_polynomial(
    model: nn.Module | Callable[[int], nn.Module],
    data: PolynomialData,
    recipe: PolynomialRecipe | None = None,
    seed: int = 0,
) -> dict:
    """Train on ``data`` with ``recipe``; return test MSE, max abs error, steps and seconds.

    Parameters
    ----------
    model : nn.Module or callable
        A model, or a factory ``init_seed -> model``. Only a factory gives ``recipe.restarts``
        independent starts (seeds ``1000 * seed + r``); a single module is one start.
    data : PolynomialData
        From :func:`polynomial_data`.
    recipe : PolynomialRecipe, optional
        Defaults to ``PolynomialRecipe()``.
    seed : int, default 0
        Seeds the starts.

    Returns
    -------
    dict
        ``test_mse``, ``test_max_abs_error``, ``train_mse``, ``train_loss``, ``adam_steps``,
        ``lbfgs_evals``, ``steps`` (their sum: full-batch gradient evaluations), ``starts``,
        ``seconds`` and ``model`` (the trained module, left out of JSON rows).

    Examples
    --------
    >>> data = polynomial_data(monomial(2), num_points=200)
    >>> r = fit_polynomial(lambda s: freenet_for_polynomial(2, seed=s), data, PolynomialRecipe.quick())
    >>> sorted(k for k in r if k != "model")[:4], r["starts"]
    (['adam_steps', 'lbfgs_evals', 'seconds', 'starts'], 2)
    """
    recipe = PolynomialRecipe() if recipe is None else recipe
    if not isinstance(recipe, PolynomialRecipe):
        raise NCGError(f"recipe must be a PolynomialRecipe, got {type(recipe).__name__}")
    if not isinstance(data, PolynomialData):
        raise NCGError(f"data must be a PolynomialData, got {type(data).__name__}")
    if isinstance(model, nn.Module):
        factory, starts = None, 1
    elif callable(model):
        factory, starts = model, recipe.restarts
    else:
        raise NCGError(f"model must be an nn.Module or a callable seed -> module, got {type(model).__name__}")
    task = get_task(recipe.loss)
    dtype = _DTYPES[recipe.dtype]
    x, y = data.x_train.to(dtype), data.y_train.to(dtype)
    begin = time.perf_counter()
    adam_steps = lbfgs_evals = 0
    candidates: list[tuple[float, int, nn.Module]] = []
    for r in range(starts):
        net = model if factory is None else factory(1000 * seed + r)
        if not isinstance(net, nn.Module):
            raise NCGError(f"the model factory must return an nn.Module, got {type(net).__name__}")
        net = net.to(dtype)
        loss = _adam(net, x, y, task, recipe.explore_steps, recipe.explore_lr)
        adam_steps += recipe.explore_steps
        candidates.append((loss, r, net))
    candidates.sort(key=lambda c: (c[0], c[1]))
    finished: list[tuple[float, int, nn.Module]] = []
    for loss, r, net in candidates[: recipe.finalists]:
        loss = _adam(net, x, y, task, recipe.adam_steps, recipe.adam_lr)
        adam_steps += recipe.adam_steps
        for _ in range(recipe.lbfgs_rounds):
            if recipe.lbfgs_iters == 0 or not math.isfinite(loss):
                break
            loss, evals = _lbfgs(net, x, y, task, recipe.lbfgs_iters)
            lbfgs_evals += evals
        finished.append((loss, r, net))
    finished.sort(key=lambda c: (c[0], c[1]))
    best_loss, _, best = finished[0]
    with torch.no_grad():
        best.eval()
        test_error = best(data.x_test.to(dtype)) - data.y_test.to(dtype)
        train_error = best(x) - y
    return {
        "test_mse": float(test_error.square().mean()),
        "test_max_abs_error": float(test_error.abs().max()),
        "train_mse": float(train_error.square().mean()),
        "train_loss": best_loss,
        "adam_steps": adam_steps,
        "lbfgs_evals": lbfgs_evals,
        "steps": adam_steps + lbfgs_evals,
        "starts": starts,
        "seconds": time.perf_counter() - begin,
        "model": best,
    }


# ---------------------------------------------------------------------------------- sweep
@dataclass(frozen=True)
class Cell:
    """One (polynomial, k) comparison of the sweep."""

    polynomial: Polynomial
    neurons: int


def default_cells() -> list[Cell]:
    """The full sweep: monomials x^2, x^4, x^8 and random polynomials of degree 2, 4, 8.

    ``k`` follows the authors' monomial table (2 neurons for x^2 and x^4, 4 for x^4 and x^8,
    8 for x^8) and gives a dense random polynomial of degree ``d`` ``d`` neurons (plus 4 for
    degree 8).

    Examples
    --------
    >>> [(c.polynomial.name, c.neurons) for c in default_cells()][:3]
    [('x^2', 2), ('x^4', 2), ('x^4', 4)]
    """
    spec = [
        (monomial(2), 2), (monomial(4), 2), (monomial(4), 4), (monomial(8), 4), (monomial(8), 8),
        (random_polynomial(2), 2), (random_polynomial(4), 4), (random_polynomial(8), 4),
        (random_polynomial(8), 8),
    ]
    return [Cell(p, k) for p, k in spec]


def parse_cell(spec: str) -> Cell:
    """A :class:`Cell` from ``"x^D:K"`` (monomial) or ``"randD:K"`` (random polynomial).

    Examples
    --------
    >>> c = parse_cell("x^8:4")
    >>> c.polynomial.name, c.neurons
    ('x^8', 4)
    """
    try:
        name, k = spec.split(":")
        neurons = int(k)
        if name.startswith("x^"):
            return Cell(monomial(int(name[2:])), neurons)
        if name.startswith("rand"):
            return Cell(random_polynomial(int(name[4:])), neurons)
    except ValueError:
        pass
    raise NCGError(f"cells must look like 'x^8:4' or 'rand8:4', got {spec!r}")


def _row_name(polynomial: str, k: int, model: str, seed: int) -> str:
    safe = polynomial.replace("^", "")
    return f"{safe}_k{k}_{model}_s{seed}.json"


def _build(model: str, k: int, dtype: str) -> Callable[[int], nn.Module]:
    if model == "freenet":
        return lambda s: freenet_for_polynomial(k, seed=s, dtype=dtype)
    return lambda s: mlp_for_polynomial(k, seed=s, dtype=dtype)


def _store(out: Path) -> CellStore:
    """The sweep's row files ``out/rows/*.json`` and tables: monomials first, then by degree,
    polynomial, k, model and seed."""
    return CellStore(out, "rows/*.json", order=lambda r: (r["polynomial"].startswith("rand"), r["degree"],
                                                           r["polynomial"], r["neurons"], r["model"], r["seed"]))


def run_polynomial_sweep(
    out_dir: str | Path,
    cells: Sequence[Cell] | None = None,
    seeds: Iterable[int] = range(5),
    models: Sequence[str] = MODELS,
    recipe: PolynomialRecipe | None = None,
    num_points: int = 10_000,
    interval: tuple[float, float] = (-1.0, 1.0),
    log: Callable[[str], None] | None = None,
) -> list[dict]:
    """Fit every (cell, model, seed); one JSON row per run, skipped when it already exists.

    Each row lands atomically in ``out_dir/rows/``; at the end ``runs.json``, ``runs.csv`` and
    ``table.md`` (:func:`polynomial_table`) are (re)written from every row in that folder.
    A run's data are drawn with its seed (as the authors re-draw per run), so both models of a
    (cell, seed) see the same points.

    Parameters
    ----------
    out_dir : str or Path
        Output folder.
    cells : sequence of Cell, optional
        Defaults to :func:`default_cells`.
    seeds : iterable of int, default range(5)
    models : sequence of str, default ("freenet", "mlp")
    recipe : PolynomialRecipe, optional
    num_points : int, default 10000
    interval : tuple of float, default (-1, 1)
    log : callable, optional
        Gets one line per cell (``main`` passes a flushing ``print``); ``None`` for silence.

    Returns
    -------
    list of dict
        All rows in ``out_dir/rows``.

    Examples
    --------
    >>> import tempfile
    >>> out = tempfile.mkdtemp()
    >>> rows = run_polynomial_sweep(out, [Cell(monomial(2), 2)], seeds=[0], recipe=PolynomialRecipe.quick(),
    ...                             num_points=100, log=None)
    >>> [(r["polynomial"], r["neurons"], r["model"]) for r in rows]
    [('x^2', 2, 'freenet'), ('x^2', 2, 'mlp')]
    """
    recipe = PolynomialRecipe() if recipe is None else recipe
    cells = default_cells() if cells is None else list(cells)
    seeds = list(seeds)
    for model in models:
        if model not in MODELS:
            raise NCGError(f"models must be drawn from {MODELS}, got {model!r}")
    if not seeds:
        raise NCGError("seeds must not be empty")
    out = Path(out_dir)
    store = _store(out)
    for cell in cells:
        if not isinstance(cell, Cell):
            raise NCGError(f"cells must hold Cell values, got {type(cell).__name__}")
        begin = time.perf_counter()
        done = skipped = 0
        for seed in seeds:
            data = None
            for model in models:
                path = out / "rows" / _row_name(cell.polynomial.name, cell.neurons, model, seed)
                if store.done(path):
                    skipped += 1
                    continue
                if data is None:
                    data = polynomial_data(cell.polynomial, seed=seed, num_points=num_points, interval=interval)
                result = fit_polynomial(_build(model, cell.neurons, recipe.dtype), data, recipe, seed=seed)
                net = result.pop("model")
                row = {
                    "polynomial": cell.polynomial.name,
                    "degree": cell.polynomial.degree,
                    "coefficients": list(cell.polynomial.coefficients),
                    "neurons": cell.neurons,
                    "model": model,
                    "seed": seed,
                    "parameters": sum(p.numel() for p in net.parameters() if p.requires_grad),
                    "interval": list(data.interval),
                    "num_train": int(data.x_train.shape[0]),
                    "num_test": int(data.x_test.shape[0]),
                    **result,
                    "recipe": asdict(recipe),
                }
                store.write(path, row)
                done += 1
        if log is not None:
            cell_rows = [r for r in store.rows() if r["polynomial"] == cell.polynomial.name
                         and r["neurons"] == cell.neurons]
            summary = " ".join(
                f"{m} {_median([r['test_mse'] for r in cell_rows if r['model'] == m]):.2e}" for m in models
            )
            log(f"{cell.polynomial.name:>7} k={cell.neurons}: median test MSE {summary} "
                f"({done} run, {skipped} skipped, {time.perf_counter() - begin:.0f}s)")
    rows = store.rows()
    write_outputs(out, rows)
    return rows


_CSV_KEYS = ("polynomial", "degree", "neurons", "model", "seed", "test_mse", "test_max_abs_error",
             "train_mse", "parameters", "steps", "adam_steps", "lbfgs_evals", "starts", "seconds")


def write_outputs(out_dir: str | Path, rows: list[dict]) -> None:
    """Write ``runs.json``, ``runs.csv`` and ``table.md`` for ``rows`` into ``out_dir``.

    Examples
    --------
    >>> import tempfile
    >>> write_outputs(tempfile.mkdtemp(), [])
    """
    out = Path(out_dir)
    _store(out).write_runs(rows, _CSV_KEYS)
    atomic_write_text(out / "table.md", polynomial_table(rows) + "\n")


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def polynomial_table(rows: Sequence[dict], factor: float = 100.0) -> str:
    """A Markdown table: per (polynomial, k) the median test MSEs and their ratio.

    Columns: polynomial, k, seeds, median MSE of FreeNet and of the MLP, the ratio
    MLP / FreeNet, whether it is at least ``factor``, and FreeNet's worst seed.

    Examples
    --------
    >>> rows = [dict(polynomial="x^2", degree=2, neurons=2, model="freenet", seed=0, test_mse=1e-8),
    ...         dict(polynomial="x^2", degree=2, neurons=2, model="mlp", seed=0, test_mse=1e-3)]
    >>> print(polynomial_table(rows).splitlines()[2])
    | x^2 | 2 | 1 | 1.00e-08 | 1.00e-03 | 1.0e+05 | yes | 1.00e-08 |
    """
    header = (
        "| polynomial | k | seeds | FreeNet median MSE | MLP median MSE | MLP / FreeNet | "
        f">= {factor:g}x | FreeNet worst MSE |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    keys: list[tuple] = []
    for r in rows:
        key = (r["polynomial"].startswith("rand"), r["degree"], r["polynomial"], r["neurons"])
        if key not in keys:
            keys.append(key)
    keys.sort()
    lines = [header]
    for _, _, name, k in keys:
        cell = [r for r in rows if r["polynomial"] == name and r["neurons"] == k]
        free = [r["test_mse"] for r in cell if r["model"] == "freenet"]
        mlp = [r["test_mse"] for r in cell if r["model"] == "mlp"]
        f, m = _median(free), _median(mlp)
        both = math.isfinite(f) and math.isfinite(m)
        ratio = (m / f if f > 0 else (math.inf if m > 0 else math.nan)) if both else math.nan
        meets = ("yes" if ratio >= factor else "no") if both else "n/a"
        seeds = len({r["seed"] for r in cell})
        worst = max(free) if free else math.nan
        lines.append(f"| {name} | {k} | {seeds} | {f:.2e} | {m:.2e} | {ratio:.1e} | {meets} | {worst:.2e} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- CLI
def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run the sweep (or ``--table-only``) and print the table.

    Examples
    --------
    >>> import tempfile
    >>> main(["--quick", "--out", tempfile.mkdtemp(), "--quiet"])
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m ncg.experiments polynomial",
        description="FreeNet vs MLP with the same neurons on polynomials (the FreeNets authors' experiment).",
    )
    parser.add_argument("--out", default=None,
                        help="output folder (default: results/polynomial; results/quick/polynomial with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny run: x^2 with 2 neurons, 2 seeds, few steps")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; 2 with --quick)")
    parser.add_argument("--table-only", action="store_true", help="rebuild the table from runs.json")
    parser.add_argument("--interval", type=float, nargs=2, default=(-1.0, 1.0), metavar=("LOW", "HIGH"),
                        help="sampling interval (default: -1 1; the authors' table used 0 1)")
    parser.add_argument("--cells", nargs="+", default=None, metavar="CELL",
                        help="cells to run, e.g. x^8:4 rand4:4 (default: the full sweep)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    out = Path(args.out or ("results/quick/polynomial" if args.quick else "results/polynomial"))
    say = (lambda *a, **k: None) if args.quiet else print
    if args.table_only:
        path = out / "runs.json"
        if not path.exists():
            raise NCGError(f"--table-only needs {path}; run the sweep first")
        rows = json.loads(path.read_text())
        write_outputs(out, rows)
        say(polynomial_table(rows))
        return 0
    if args.seeds is not None and args.seeds < 1:
        raise NCGError(f"--seeds must be >= 1, got {args.seeds}")
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, args.threads))
    try:
        if args.quick:
            cells, recipe, num_points = [Cell(monomial(2), 2)], PolynomialRecipe.quick(), 500
            seeds = range(args.seeds or 2)
        else:
            cells, recipe, num_points = default_cells(), PolynomialRecipe(), 10_000
            if args.cells:
                cells = [parse_cell(c) for c in args.cells]
            seeds = range(args.seeds or 5)
        rows = run_polynomial_sweep(out, cells, seeds=seeds, recipe=recipe, num_points=num_points,
                                    interval=tuple(args.interval), log=None if args.quiet else _say)
    finally:
        torch.set_num_threads(previous)
    say(polynomial_table(rows))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
