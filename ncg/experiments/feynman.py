"""Feynman equations: FreeNets against a layered control, an MLP, a KAN and gradient boosting.

Every method fits the formulas of :mod:`ncg.experiments.feynman_formulas` at about the same
parameter count (PyTorch's ``sum(p.numel() for p in model.parameters())``, stated in each row):

* ``freenet``: a FreeNet on a complete DAG over the input nodes, ``H`` hidden neurons and one
  output (:func:`ncg.build.sparse_start` with ``density=1.0``), ``H`` the largest that fits the
  size;
* ``freenet-evolve``: the same on a larger complete DAG (about twice the size) whose Adam phase
  is Free-Evolve's rounds (:class:`ncg.evolve.FreeEvolve`: coactivation-weighted magnitude
  pruning, Hebbian growth) down to the size;
* ``layered``: the FreeNet's ``H`` neurons in two consecutive layers, the same activation (its
  layered control: fewer edges, so fewer parameters);
* ``mlp``: two hidden layers of equal width, the same activation, the width that fits the size;
* ``mlp-silu``: the same MLP with SiLU, the usual activation of an MLP fitting smooth functions;
* ``kan``: a ``[F, w, 1]`` KAN of pykan (grid 5, order 3), when ``pykan`` imports (the
  ``peers`` extra); its count is PyTorch's count of its trainable parameters (pykan registers
  fixed masks as parameters too);
* ``gbr``: scikit-learn's :class:`~sklearn.ensemble.GradientBoostingRegressor` (defaults), a
  non-neural reference at no matched size (its ``parameters`` are its trees' nodes).

Every neural method gets the same :class:`FitBudget`: full-batch Adam at each learning rate of
``adam_lrs`` for ``adam_steps`` steps from the same initialisation, the candidate with the lowest
validation error refined by L-BFGS (strong-Wolfe line search, ``lbfgs_iters`` iterations), and
the model with the lowest validation error of all kept. Inputs and targets are standardised
with the training split's statistics. The metric is the test RMSE divided by the standard
deviation of the test targets (``test_nrmse``); a formula counts as fitted at ``nrmse <= 1e-3``.

One cell is (formula, size, seed, method); a finished cell's row lands in
``out/rows/<formula>/<size>/<method>_s<seed>.json`` and a rerun skips it. The cells run formula
by formula and size by size, every method of a (formula, size, seed) together, so a partial
sweep already gives paired rows. ``python -m ncg.experiments feynman --help``.

Examples
--------
>>> import tempfile
>>> rows = run_feynman(tempfile.mkdtemp(), ["I.12.1"], sizes=[50], seeds=[0, 1], methods=["mlp"],
...                    budget=FitBudget.quick(), log=None)
>>> [(r["method"], r["size"], r["seed"], r["parameters"]) for r in rows]
[('mlp', 50, 0, 51), ('mlp', 50, 1, 51)]
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ncg.activations import ACTIVATIONS
from ncg.build import sparse_start
from ncg.errors import NCGError
from ncg.experiments.cells import CellStore
from ncg.experiments.feynman_formulas import FORMULAS, Formula, get_formula, sample
from ncg.model import FreeNet

__all__ = [
    "FitBudget",
    "METHODS",
    "SIZES",
    "QUICK_FORMULAS",
    "freenet_neurons",
    "build_model",
    "fit",
    "run_cell",
    "run_feynman",
    "sweep_order",
    "kan_available",
    "main",
]

METHODS = ("freenet", "freenet-evolve", "layered", "mlp", "mlp-silu", "kan", "gbr")
NEURAL = ("freenet", "freenet-evolve", "layered", "mlp", "mlp-silu", "kan")
SIZES = (50, 200, 1000)
KAN_SIZES = (200,)
"""The sizes the KAN runs at in the full sweep (a KAN step costs ~10 MLP steps here)."""
QUICK_FORMULAS = ("I.12.1", "I.6.2a")
FITTED = 1e-3
"""A run with ``test_nrmse`` at most this fits its formula."""


@dataclass(frozen=True)
class FitBudget:
    """The training budget every neural method gets, and the data sizes.

    Attributes
    ----------
    adam_lrs : tuple of float
        The learning rates tried, each from the same initialisation.
    adam_steps : int
        Full-batch Adam steps per learning rate (constant rate).
    lbfgs_iters : int
        L-BFGS iterations refining the best Adam candidate (0: none).
    num_train, num_val, num_test : int
        Points of each split, all drawn from the formula's ranges with the run's seed.
    activation : str
        Hidden activation of the FreeNets, the layered control and the MLP.
    evolve_rounds : int
        Free-Evolve rounds of ``freenet-evolve`` within its Adam steps.

    Examples
    --------
    >>> FitBudget().adam_steps, FitBudget.quick().adam_steps
    (200, 20)
    """

    adam_lrs: tuple[float, ...] = (1e-2, 3e-3)
    adam_steps: int = 200
    lbfgs_iters: int = 100
    num_train: int = 1000
    num_val: int = 500
    num_test: int = 500
    activation: str = "square_relu"
    evolve_rounds: int = 3

    def __post_init__(self) -> None:
        if not self.adam_lrs or any(not lr > 0 for lr in self.adam_lrs):
            raise NCGError(f"adam_lrs must be positive learning rates, got {self.adam_lrs!r}")
        for name in ("adam_steps", "num_train", "num_val", "num_test"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise NCGError(f"{name} must be an int >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.lbfgs_iters, int) or self.lbfgs_iters < 0:
            raise NCGError(f"lbfgs_iters must be an int >= 0, got {self.lbfgs_iters!r}")
        if self.activation not in ACTIVATIONS:
            raise NCGError(f"activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.evolve_rounds, int) or not 1 <= self.evolve_rounds < self.adam_steps:
            raise NCGError(f"evolve_rounds must be an int in [1, adam_steps), got {self.evolve_rounds!r}")

    @classmethod
    def quick(cls) -> FitBudget:
        """A budget of seconds for CI: few steps, few points."""
        return cls(adam_lrs=(1e-2,), adam_steps=20, lbfgs_iters=5, num_train=200, num_val=100, num_test=100,
                   evolve_rounds=2)


# ---------------------------------------------------------------------------------- sizes
def _freenet_count(f: int, h: int) -> int:
    """Parameters of the complete DAG over ``f`` inputs, ``h`` hidden neurons and one output:
    ``f h + h (h - 1) / 2`` hidden edges, ``f + h`` output edges, ``h + 1`` biases."""
    return f * h + h * (h - 1) // 2 + f + h + h + 1


def freenet_neurons(num_inputs: int, size: int) -> int:
    """Hidden neurons of the complete-DAG FreeNet whose parameter count is nearest ``size``.

    Examples
    --------
    >>> [freenet_neurons(3, s) for s in (50, 200, 1000)]
    [6, 16, 40]
    """
    return min(range(1, 200), key=lambda h: (abs(_freenet_count(num_inputs, h) - size), h))


def _nearest(count: Callable[[int], int], size: int) -> int:
    return min(range(1, 400), key=lambda w: (abs(count(w) - size), w))


def _mlp_width(f: int, size: int) -> int:
    return _nearest(lambda w: (f + 1) * w + (w + 1) * w + w + 1, size)


def _kan_width(f: int, size: int) -> int:
    return _nearest(lambda w: 14 * (f * w + w), size)


def kan_available() -> str | None:
    """``None`` when pykan and its imports load, else why not (the ``peers`` extra).

    Examples
    --------
    >>> kan_available() is None or "pykan" in kan_available()
    True
    """
    missing = [m for m in ("kan", "yaml", "sympy", "pandas") if importlib.util.find_spec(m) is None]
    if missing:
        return f"pykan needs {', '.join(missing)}: pip install 'ncg[peers]'"
    try:
        from kan import KAN  # noqa: F401
    except Exception as error:  # pykan's import failed in a way of its own
        return f"pykan does not import: {error}"
    return None


def build_model(method: str, num_inputs: int, size: int, seed: int, activation: str = "square_relu") -> nn.Module:
    """The float64 model of ``method`` for ``num_inputs`` inputs at about ``size`` parameters.

    Examples
    --------
    >>> counts = {m: sum(p.numel() for p in build_model(m, 3, 200, 0).parameters())
    ...           for m in ("freenet", "layered", "mlp")}
    >>> counts
    {'freenet': 204, 'layered': 113, 'mlp': 188}
    """
    if method in ("freenet", "freenet-evolve", "layered"):
        h = freenet_neurons(num_inputs, 2 * size if method == "freenet-evolve" else size)
        layers = [h // 2, h - h // 2] if method == "layered" and h > 1 else None
        graph = sparse_start(num_inputs, h, 1, density=1.0, seed=seed, layers=layers)
        return FreeNet(graph, in_features=num_inputs, activation=activation, seed=seed).double()
    if method in ("mlp", "mlp-silu"):
        w = _mlp_width(num_inputs, size)
        module = ACTIVATIONS["silu" if method == "mlp-silu" else activation].module
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            mlp = nn.Sequential(nn.Linear(num_inputs, w), module(), nn.Linear(w, w), module(), nn.Linear(w, 1))
        return mlp.double()
    if method == "kan":
        reason = kan_available()
        if reason is not None:
            raise NCGError(f"method 'kan' is not available: {reason}")
        from kan import KAN

        with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
            warnings.simplefilter("ignore")
            previous = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            try:
                return KAN(width=[num_inputs, _kan_width(num_inputs, size), 1], grid=5, k=3, seed=seed,
                           auto_save=False, symbolic_enabled=False, save_act=False)
            finally:
                torch.set_default_dtype(previous)
    raise NCGError(f"method must be one of {NEURAL}, got {method!r}")


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------- training
@dataclass
class _Split:
    x: Tensor
    y: Tensor


def _splits(formula: Formula, budget: FitBudget, seed: int) -> tuple[_Split, _Split, _Split, float]:
    """Standardised train / val / test splits and the test targets' standard deviation in
    standardised units (the normaliser of the test RMSE)."""
    n = budget.num_train + budget.num_val + budget.num_test
    x, y = sample(formula, n, seed=seed)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise NCGError(f"formula {formula.id} is not finite on its ranges")
    train = slice(0, budget.num_train)
    mx, sx = x[train].mean(0), x[train].std(0)
    my, sy = y[train].mean(), y[train].std()
    x, y = (x - mx) / np.where(sx > 0, sx, 1.0), (y - my) / (sy if sy > 0 else 1.0)
    cuts = np.cumsum([budget.num_train, budget.num_val])
    parts = [(x[a:b], y[a:b]) for a, b in zip([0, *cuts], [*cuts, n])]
    tensors = [_Split(torch.from_numpy(np.ascontiguousarray(px)), torch.from_numpy(py.copy()).reshape(-1, 1))
               for px, py in parts]
    return tensors[0], tensors[1], tensors[2], float(parts[2][1].std())


def _rmse(model: nn.Module, split: _Split) -> float:
    with torch.no_grad():
        error = float((model(split.x) - split.y).square().mean().sqrt())
    return error if math.isfinite(error) else math.inf


def _adam(model: nn.Module, train: _Split, steps: int, lr: float) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = (model(train.x) - train.y).square().mean()
        if not torch.isfinite(loss):
            return
        loss.backward()
        optimizer.step()


def _lbfgs(model: nn.Module, train: _Split, iterations: int) -> int:
    optimizer = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=iterations, history_size=50,
                                  tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")
    evaluations = 0

    def closure() -> Tensor:
        nonlocal evaluations
        evaluations += 1
        optimizer.zero_grad()
        loss = (model(train.x) - train.y).square().mean()
        if torch.isfinite(loss):
            loss.backward()
        return loss

    optimizer.step(closure)
    return evaluations


def _evolve(model: FreeNet, train: _Split, budget: FitBudget, lr: float, target: int, seed: int) -> FreeNet:
    """Free-Evolve's rounds as the Adam phase of ``freenet-evolve``: full-batch steps, the edges
    shrinking to leave about ``target`` parameters."""
    from ncg.evolve import EditBudget, EvolveConfig, FreeEvolve

    per_round = budget.adam_steps // (budget.evolve_rounds + 1)
    edges = model.graph.num_edges - (_parameters(model) - target)
    config = EvolveConfig(
        rounds=budget.evolve_rounds, epochs_per_round=per_round,
        final_epochs=budget.adam_steps - per_round * budget.evolve_rounds, task="regression",
        batch_size=train.x.shape[0], lr=lr, prune_score="coactivation_magnitude", grow_score="coactivation",
        budget=EditBudget(prune_fraction=0.5, add_fraction=0.02, target_edges=max(1, edges)),
        record_samples=train.x.shape[0], stop_when_unchanged=False, seed=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        FreeEvolve(model, config).run((train.x, train.y))
    return model


def fit(method: str, formula: Formula, size: int, seed: int, budget: FitBudget) -> dict:
    """Train one cell: ``method`` on ``formula`` at about ``size`` parameters with ``seed``.

    Returns the row's measurements: ``test_nrmse``, ``val_nrmse``, ``train_nrmse``, the chosen
    ``lr`` and whether L-BFGS improved it (``lbfgs_kept``), ``parameters``, ``steps`` (Adam steps
    plus L-BFGS evaluations), ``train_flops`` and ``wall_seconds``; the trained model under
    ``"model"``.

    Examples
    --------
    >>> r = fit("mlp", FORMULAS["I.12.1"], 50, 0, FitBudget.quick())
    >>> r["parameters"], r["test_nrmse"] < 1.0
    (51, True)
    """
    begin = time.perf_counter()
    train, val, test, scale = _splits(formula, budget, seed)
    if method == "gbr":
        from sklearn.ensemble import GradientBoostingRegressor

        gbr = GradientBoostingRegressor(random_state=seed).fit(train.x.numpy(), train.y.numpy().ravel())
        errors = {name: float(np.sqrt(np.mean((gbr.predict(s.x.numpy()) - s.y.numpy().ravel()) ** 2)))
                  for name, s in (("train", train), ("val", val), ("test", test))}
        return {"test_nrmse": errors["test"] / scale, "val_nrmse": errors["val"] / scale,
                "train_nrmse": errors["train"] / scale, "lr": None, "lbfgs_kept": None,
                "parameters": int(sum(t.tree_.node_count for t in gbr.estimators_.ravel())), "steps": None,
                "train_flops": None, "wall_seconds": time.perf_counter() - begin, "model": gbr}
    n = train.x.shape[0]
    best: tuple[float, float, nn.Module] | None = None
    for lr in budget.adam_lrs:
        model = build_model(method, formula.num_variables, size, seed, budget.activation)
        if method == "kan":
            model.update_grid(train.x)
        if method == "freenet-evolve":
            _evolve(model, train, budget, lr, size, seed)
        else:
            _adam(model, train, budget.adam_steps, lr)
        error = _rmse(model, val)
        if best is None or error < best[0]:
            best = (error, lr, model)
    val_error, lr, model = best
    refined = copy.deepcopy(model)
    evaluations = _lbfgs(refined, train, budget.lbfgs_iters) if budget.lbfgs_iters else 0
    refined_error = _rmse(refined, val)
    kept = refined_error < val_error
    if kept:
        model, val_error = refined, refined_error
    steps = budget.adam_steps * len(budget.adam_lrs) + evaluations
    count = _parameters(model)
    macs = model.graph.num_edges if isinstance(model, FreeNet) else count
    return {"test_nrmse": _rmse(model, test) / scale, "val_nrmse": val_error / scale,
            "train_nrmse": _rmse(model, train) / scale, "lr": lr, "lbfgs_kept": kept, "parameters": count,
            "steps": steps, "train_flops": float(6 * macs * n * steps),
            "wall_seconds": time.perf_counter() - begin, "model": model}


# ---------------------------------------------------------------------------------- sweep
def _cell_path(out: Path, formula: str, size: int, method: str, seed: int) -> Path:
    return out / "rows" / formula / str(size) / f"{method}_s{seed}.json"


def _order(row: dict) -> tuple:
    ids = sweep_order()
    return (ids.index(row["formula"]) if row["formula"] in ids else len(ids), row["formula"], row["size"],
            METHODS.index(row["method"]) if row["method"] in METHODS else len(METHODS), row["method"], row["seed"])


def _store(out: Path) -> CellStore:
    return CellStore(out, "rows/*/*/*.json", order=_order)


def run_cell(formula: Formula, method: str, size: int, seed: int, budget: FitBudget) -> dict:
    """The row of one cell (:func:`fit` plus what identifies it).

    Examples
    --------
    >>> row = run_cell(FORMULAS["I.12.1"], "layered", 50, 0, FitBudget.quick())
    >>> row["kind"], row["formula"], row["method"], row["num_variables"]
    ('feynman', 'I.12.1', 'layered', 2)
    """
    result = fit(method, formula, size, seed, budget)
    model = result.pop("model")
    extra = {}
    if isinstance(model, FreeNet):
        extra = {"neurons": model.num_neurons - model.graph.num_inputs, "edges": model.graph.num_edges}
    return {"kind": "feynman", "formula": formula.id, "expression": formula.expression,
            "num_variables": formula.num_variables, "method": method, "size": size, "seed": seed,
            "activation": "silu" if method == "mlp-silu" else budget.activation if method in NEURAL[:4] else None,
            **result, **extra, "fitted": result["test_nrmse"] <= FITTED, "budget": asdict(budget),
            "threads": torch.get_num_threads()}


def _cells(formulas: Sequence[str], sizes: Sequence[int], seeds: Sequence[int], methods: Sequence[str],
           kan_sizes: Sequence[int] | None) -> list[tuple[str, int, int, str]]:
    """Formula by formula, size by size, seed by seed, every method; ``gbr`` (no size) with
    the first size."""
    cells = []
    for formula in formulas:
        for i, size in enumerate(sizes):
            for seed in seeds:
                for method in methods:
                    if method == "gbr":
                        if i == 0:
                            cells.append((formula, 0, seed, method))
                    elif method != "kan" or kan_sizes is None or size in kan_sizes:
                        cells.append((formula, size, seed, method))
    return cells


def sweep_order(ids: Sequence[str] | None = None) -> list[str]:
    """The formulas in the sweep's order: one of each number of variables in turn (fewest
    first), so that a sweep cut short covers 1 to 9 variables.

    Examples
    --------
    >>> sweep_order()[:4]
    ['I.6.2a', 'I.6.2', 'I.6.2b', 'I.39.22']
    """
    groups: dict[int, list[str]] = {}
    for id in (list(FORMULAS) if ids is None else ids):
        groups.setdefault(get_formula(id).num_variables, []).append(id)
    ordered = [groups[k] for k in sorted(groups)]
    return [group[i] for i in range(max(map(len, ordered), default=0)) for group in ordered if i < len(group)]


def run_feynman(
    out_dir: str | Path,
    formulas: Sequence[str] | None = None,
    sizes: Sequence[int] = SIZES,
    seeds: Sequence[int] = range(5),
    methods: Sequence[str] = METHODS,
    budget: FitBudget | None = None,
    kan_sizes: Sequence[int] | None = None,
    log: Callable[[str], None] | None = print,
) -> list[dict]:
    """Run every missing cell, then write ``runs.json``, ``runs.csv``, ``table.md`` and the
    figure; returns every row in ``out_dir``.

    ``kan_sizes`` limits the KAN to those sizes (``None``: every size). ``kan`` is dropped,
    with a line to ``log``, when pykan does not import.
    """
    budget = FitBudget() if budget is None else budget
    formulas = sweep_order() if formulas is None else [get_formula(f).id for f in formulas]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise NCGError(f"methods must be drawn from {METHODS}, got {unknown}")
    if not list(seeds) or not list(sizes) or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise NCGError(f"seeds must not be empty and sizes must be ints >= 1, got {list(seeds)} and {list(sizes)}")
    methods = list(methods)
    if "kan" in methods and kan_available() is not None:
        if log is not None:
            log(f"skipping kan: {kan_available()}")
        methods.remove("kan")
    out = Path(out_dir)
    store = _store(out)
    cells = _cells(formulas, list(sizes), list(seeds), methods, kan_sizes)
    todo = [c for c in cells if not store.done(_cell_path(out, c[0], c[1], c[3], c[2]))]
    if log is not None:
        log(f"{len(todo)} of {len(cells)} cells to run into {out}")
    for formula, size, seed, method in todo:
        row = run_cell(FORMULAS[formula], method, size, seed, budget)
        store.write(_cell_path(out, formula, size, method, seed), row)
        if log is not None:
            log(f"{formula} {method} size {size} seed {seed}: nrmse {row['test_nrmse']:.2e}, "
                f"{row['parameters']} parameters, {row['wall_seconds']:.1f} s")
    rows = store.rows()
    write_outputs(out, rows)
    return rows


_CSV = ("formula", "num_variables", "method", "size", "seed", "test_nrmse", "val_nrmse", "train_nrmse", "fitted",
        "parameters", "lr", "lbfgs_kept", "steps", "train_flops", "wall_seconds", "activation")


def write_outputs(out_dir: str | Path, rows: list[dict]) -> dict[str, Path]:
    """Write ``runs.json``, ``runs.csv``, ``table.md`` and ``nrmse-vs-parameters.png`` for ``rows``."""
    from ncg.experiments.feynman_report import feynman_figure, feynman_table

    out = Path(out_dir)
    _store(out).write_runs(rows, _CSV)
    (out / "table.md").write_text(feynman_table(rows) + "\n")
    paths = {"table": out / "table.md"}
    if rows:
        paths["figure"] = out / "nrmse-vs-parameters.png"
        feynman_figure(rows, paths["figure"])
    return paths


# ---------------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
    """Command line of ``python -m ncg.experiments feynman``.

    Examples
    --------
    >>> import tempfile
    >>> main(["--quick", "--out", tempfile.mkdtemp(), "--quiet", "--formulas", "I.12.1", "--seeds", "1",
    ...       "--methods", "mlp"])
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m ncg.experiments feynman",
        description="FreeNets, their layered control, MLPs, KANs and gradient boosting on the AI Feynman "
                    "equations at equal parameter counts.")
    parser.add_argument("--out", default=None,
                        help="output folder (default: results/feynman; results/feynman-quick with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help=f"a CI run: formulas {' '.join(QUICK_FORMULAS)}, size 50, 2 seeds, few steps")
    parser.add_argument("--formulas", nargs="+", default=None, help="equation ids (default: all)")
    parser.add_argument("--sizes", nargs="+", type=int, default=None,
                        help=f"parameter counts (default: {' '.join(map(str, SIZES))})")
    parser.add_argument("--kan-sizes", nargs="+", type=int, default=None,
                        help=f"sizes the KAN runs at (default: {' '.join(map(str, KAN_SIZES))}; --quick: all)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; 2 with --quick)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help=f"some of {' '.join(METHODS)}")
    parser.add_argument("--activation", default="square_relu",
                        help="hidden activation of the FreeNets, layered control and MLP (default: %(default)s)")
    parser.add_argument("--graph", nargs=3, default=None, metavar=("FORMULA", "SIZE", "SEED"),
                        help="instead of the sweep, train that cell's FreeNets again (those of --methods) and write "
                             "their GraphML, topology figure and neuron table into --out")
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        raise NCGError(f"--seeds must be >= 1, got {args.seeds}")
    if args.quick:
        budget = FitBudget(**{**asdict(FitBudget.quick()), "activation": args.activation})
        formulas, sizes, seeds = list(args.formulas or QUICK_FORMULAS), args.sizes or [50], range(args.seeds or 2)
        kan_sizes = args.kan_sizes
    else:
        budget = FitBudget(activation=args.activation)
        formulas, sizes, seeds = args.formulas, args.sizes or list(SIZES), range(args.seeds or 5)
        kan_sizes = args.kan_sizes or list(KAN_SIZES)
    out = Path(args.out or ("results/feynman-quick" if args.quick else "results/feynman"))
    say = None if args.quiet else (lambda line: print(line, flush=True))
    if args.graph is not None:
        from ncg.experiments.feynman_graph import export_graph

        formula, size, seed = args.graph[0], int(args.graph[1]), int(args.graph[2])
        for method in [m for m in args.methods if m in ("freenet", "freenet-evolve")]:
            paths = export_graph(out, formula, size, seed, method, budget)
            if say is not None:
                say(f"{method}: " + ", ".join(str(p) for p in paths.values()))
        return 0
    rows = run_feynman(out, formulas, sizes, seeds, args.methods, budget, kan_sizes, log=say)
    if say is not None:
        say(f"{len(rows)} runs in {out}; table: {out / 'table.md'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
