"""Tables of your own: a CSV, ``.npz`` or ``.pt`` file of features and a target, split for training.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ncg.datasets import DataSplits, _check_split_sizes
from ncg.errors import NCGError

__all__ = ["TABLE_MAX_CLASSES", "TableSplits", "load_table"]


TABLE_MAX_CLASSES = 50
"""A target of integer values with at most this many distinct ones is read as class labels
(:func:`load_table` with ``task=None``); any other target as a regression target."""


@dataclass(frozen=True, repr=False)
class TableSplits(DataSplits):
    """The splits of a table (:func:`load_table`): a :class:`DataSplits` whose ``x`` holds the
    table's feature columns (float32, as read, or standardised) and whose ``task`` says what
    ``y`` is: ``"classification"`` (int64 labels ``0..num_classes - 1``, class ``k`` being the
    ``k``-th smallest target value) or ``"regression"`` (float32 ``[n, 1]``; ``num_classes``
    is then 1, the model's output width).
    """

    task: str = "classification"

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, task={self.task!r})"


def load_table(
    path: str | os.PathLike[str],
    target: str | None = None,
    standardize: bool = False,
    task: str | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> TableSplits:
    """Load a table of features and a target, split at random (seeded) into train, val and test.

    Parameters
    ----------
    path : str or path-like
        A ``.csv`` file with a header row (every column numeric; ``target`` names the target
        column, the others are the features), or an ``.npz`` / ``.pt`` file holding arrays (or
        tensors) ``x`` ``[n, features]`` and ``y`` ``[n]``.
    target : str, optional
        The target column of a CSV (required there; not used for ``.npz`` / ``.pt``).
    standardize : bool
        Scale every feature to mean 0 and standard deviation 1 over the training split (the
        same shift and scale apply to val and test; a constant feature is only centred).
    task : {"classification", "regression"}, optional
        What ``y`` is; by default classification when ``y`` holds integer values with at most
        :data:`TABLE_MAX_CLASSES` distinct ones, else regression.
    val_fraction, test_fraction : float
        Fractions held out, as :func:`digits` takes them.
    seed : int
        Seeds the permutation ``numpy.random.default_rng(seed).permutation(n)`` that orders
        the samples before the split (last ``test``, before it ``val``).

    Returns
    -------
    TableSplits

    Raises
    ------
    NCGError
        Naming the file (and column) and what was wrong: an unknown suffix, a missing file, a
        missing target column or array, a non-numeric or missing value, ``x`` and ``y`` of
        different lengths, an unknown ``task``, or fractions that leave no training sample.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "iris.csv"
    >>> _ = path.write_text("a,b,kind\\n" + "".join(f"{i},{i % 3 * 0.5},{i % 2}\\n" for i in range(20)))
    >>> splits = load_table(path, target="kind")
    >>> splits.task, splits.num_features, splits.num_classes, len(splits.train)
    ('classification', 2, 2, 14)
    >>> load_table(path, target="c")
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: ...iris.csv: no column 'c'; the columns are 'a', 'b', 'kind'
    """
    path = Path(path)
    if task not in (None, "classification", "regression"):
        raise NCGError(f"task must be 'classification', 'regression' or None (infer), got {task!r}")
    readers = {".csv": partial(_read_csv, target=target), ".npz": _read_npz, ".pt": _read_pt}
    if path.suffix not in readers:
        raise NCGError(f"{path}: expected a .csv, .npz or .pt file, got suffix {path.suffix!r}")
    if not path.is_file():
        raise NCGError(f"{path}: no such file")
    x, y = readers[path.suffix](path)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise NCGError(f"{path}: expected x [n, features] and y [n], got x {list(x.shape)} and y {list(y.shape)}")
    if val_fraction < 0 or test_fraction < 0:
        raise NCGError(f"val_fraction and test_fraction must be >= 0, got {val_fraction} and {test_fraction}")
    n = y.shape[0]
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = _check_split_sizes(n, val_size=n_val, test_size=n_test)
    values = np.unique(y)
    if task is None:
        integral = bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
        task = "classification" if integral and values.size <= TABLE_MAX_CLASSES else "regression"
    order = np.random.default_rng(seed).permutation(n)
    x = x[order].astype(np.float32)
    if standardize:
        mean, std = x[:n_train].mean(0), x[:n_train].std(0)
        x = (x - mean) / np.where(std > 0, std, 1.0)
    if task == "classification":
        labels, num_outputs = np.searchsorted(values, y[order]).astype(np.int64), values.size
    else:
        labels, num_outputs = y[order].astype(np.float32).reshape(-1, 1), 1
    xt, yt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(labels)
    n_fit = n_train + n_val
    return TableSplits(
        name=path.stem,
        train=TensorDataset(xt[:n_train], yt[:n_train]),
        val=TensorDataset(xt[n_train:n_fit], yt[n_train:n_fit]),
        test=TensorDataset(xt[n_fit:], yt[n_fit:]),
        num_features=x.shape[1],
        num_classes=num_outputs,
        image_shape=None,
        test_split=f"held-out split (permutation seed {seed}): {n_test} of {n:,} samples of {path.name}",
        task=task,
    )


def _read_csv(path: Path, target: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Features and target of a CSV with a header row; every value must be a number."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise NCGError(f"{path}: the file is empty (expected a header row naming the columns)")
    header, body = [name.strip() for name in rows[0]], rows[1:]
    names = ", ".join(repr(name) for name in header)
    if target is None:
        raise NCGError(f"{path}: a CSV needs target=<column> to name the target; the columns are {names}")
    if target not in header:
        raise NCGError(f"{path}: no column {target!r}; the columns are {names}")
    table = np.empty((len(body), len(header)), dtype=np.float64)
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise NCGError(f"{path}: line {line} has {len(row)} values, the header {len(header)}")
        for column, value in enumerate(row):
            try:
                table[line - 2, column] = float(value)
            except ValueError:
                raise NCGError(f"{path}: column {header[column]!r} is not numeric: line {line} holds {value!r} "
                               "(encode categories as numbers, or drop the column)") from None
    index = header.index(target)
    return np.delete(table, index, axis=1), table[:, index]


def _read_arrays(path: Path, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise NCGError(f"{path}: no {' and no '.join(repr(k) for k in missing)} array; expected 'x' (features) and "
                       f"'y' (targets), found {sorted(arrays)}")
    x, y = (np.asarray(arrays[key].numpy() if isinstance(arrays[key], torch.Tensor) else arrays[key])
            for key in ("x", "y"))
    for key, array in (("x", x), ("y", y)):
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise NCGError(f"{path}: array {key!r} is not numeric (dtype {array.dtype})")
    return x.reshape(x.shape[0], -1) if x.ndim > 2 else x, y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        return _read_arrays(path, dict(arrays))


def _read_pt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    arrays = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(arrays, dict):
        raise NCGError(f"{path}: expected a dict of tensors 'x' and 'y' (torch.save({{'x': x, 'y': y}}, path)), "
                       f"got {type(arrays).__name__}")
    return _read_arrays(path, arrays)
