"""Tables of your own: a CSV, ``.npz`` or ``.pt`` file of features and a target, split for training.

:func:`load_table` reads the file, checks every value, infers the task from the target and
returns seeded train / val / test splits (:class:`TableSplits`). What a file must hold:

- **CSV**: a header row naming the columns, then one row per sample, comma-separated. Every
  feature is a number; the target column holds numbers or class labels (``setosa``). Text is
  UTF-8 (with or without a byte order mark) or UTF-16 with a byte order mark. Empty lines are
  skipped; a value may be quoted (``"5.1"``).
- **npz** (``numpy.savez(path, x=x, y=y)``) or **pt** (``torch.save({"x": x, "y": y}, path)``):
  a numeric ``x`` ``[n, features]`` and ``y`` ``[n]``; a ``.pt`` file is loaded with
  ``weights_only=True``, so it runs no code.
- Every value is finite and fits float32 (``|v| <= 3.4e38``): NaN, inf and overflowing values
  are refused, naming the row and the column, before anything trains on them.

Any other content is an :class:`~ncg.errors.NCGError` that names the file and what was found.

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "flowers.csv"
>>> rows = [f"{i % 7},{i % 5 * 0.5},{('small', 'large')[i % 2]}" for i in range(20)]
>>> _ = path.write_text("petal,sepal,kind\\n" + "\\n".join(rows))
>>> splits = load_table(path, target="kind")
>>> splits.task, splits.classes, len(splits.train)
('classification', ('large', 'small'), 14)
"""
from __future__ import annotations

import codecs
import csv
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ncg.datasets import DataSplits
from ncg.errors import NCGError, NonFiniteError

__all__ = ["TABLE_MAX_CLASSES", "TASKS", "TableSplits", "load_table"]

TABLE_MAX_CLASSES = 50
"""A numeric target of integer values with at most this many distinct ones is read as class
labels (:func:`load_table` with ``task=None``); any other numeric target as a regression target.
A target of text labels is always read as class labels."""
TASKS = ("classification", "regression")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_MISSING_LABELS = ("", "nan", "na", "n/a", "null", "none", "?")
"""Text in a target column of text labels that marks a missing target (compared in lower case)."""
_ENCODINGS = "UTF-8 (with or without a byte order mark) or UTF-16 with a byte order mark"


@dataclass(frozen=True, repr=False)
class TableSplits(DataSplits):
    """The splits of a table (:func:`load_table`): a :class:`~ncg.datasets.DataSplits` whose
    ``x`` holds the table's feature columns (float32, as read, or standardised) and whose
    ``task`` says what ``y`` is: ``"classification"`` (int64 labels ``0..num_classes - 1``)
    or ``"regression"`` (float32 ``[n, 1]``; ``num_classes`` is then 1, the model's output
    width). ``classes[k]`` is the target value of label ``k`` as the file holds it (a text
    label, or a number), in sorted order; empty for regression.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.npz"
    >>> np.savez(path, x=np.arange(20.0).reshape(10, 2), y=np.arange(10) % 2 * 5)
    >>> load_table(path, val_fraction=0.2, test_fraction=0.2)
    TableSplits('t', train=6, val=2, test=2, num_features=2, num_classes=2, task='classification')
    >>> load_table(path, val_fraction=0.2, test_fraction=0.2).classes
    (0, 5)
    """

    task: str = "classification"
    classes: tuple = ()

    def __repr__(self) -> str:
        return (
            f"TableSplits({self.name!r}, train={len(self.train)}, val={len(self.val)}, "
            f"test={len(self.test)}, num_features={self.num_features}, "
            f"num_classes={self.num_classes}, task={self.task!r})"
        )


class _Table(NamedTuple):
    """What a reader found: features ``x`` (float64 ``[n, f]``), the target ``y`` (float64, or
    text labels), and how to name a value's place in the file (:meth:`place`)."""

    x: np.ndarray
    y: np.ndarray
    features: Sequence[str] | None = None  # CSV column names of x; None: array indices
    target: str | None = None  # CSV column name of y
    lines: np.ndarray | None = None  # CSV line number of each row

    def place(self, row: int, column: int | None) -> str:
        """``line 7, column 'b'`` of a CSV, ``x[6, 1]`` / ``y[6]`` of arrays; ``column`` None: y."""
        if self.lines is None:
            return f"y[{row}]" if column is None else f"x[{row}, {column}]"
        name = self.target if column is None else self.features[column]
        return f"line {self.lines[row]}, column {name!r}"


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
        A ``.csv`` file with a header row (``target`` names the target column, the others are
        the features), or an ``.npz`` / ``.pt`` file holding arrays (or tensors) ``x``
        ``[n, features]`` and ``y`` ``[n]``. The module docstring lists the rules.
    target : str, optional
        The target column of a CSV (required there; not used for ``.npz`` / ``.pt``).
    standardize : bool
        Scale every feature to mean 0 and standard deviation 1 over the training split (the
        same shift and scale apply to val and test; a constant feature is only centred).
    task : {"classification", "regression"}, optional
        What ``y`` is. By default: classification when ``y`` holds text labels, or integer
        values with at most :data:`TABLE_MAX_CLASSES` distinct ones; else regression.
    val_fraction, test_fraction : float
        Fractions held out, as :func:`~ncg.datasets.digits` takes them.
    seed : int
        Seeds the permutation ``numpy.random.default_rng(seed).permutation(n)`` that orders
        the samples before the split (last ``test``, before it ``val``).

    Returns
    -------
    TableSplits
        Class ``k`` is the ``k``-th smallest target value (text labels sorted as text);
        ``classes`` lists them.

    Raises
    ------
    NCGError
        Naming the file (and the row and column, where there is one) and what was wrong: an
        unknown suffix, a missing file, text that is not UTF-8 or UTF-16, a missing target
        column or array, a non-numeric, missing, infinite, NaN or float32-overflowing value,
        a damaged or non-numeric ``.npz`` / ``.pt``, no rows, ``x`` and ``y`` of different
        lengths, fewer than 2 classes, text labels with ``task="regression"``, an unknown
        ``task``, or fractions that leave no training row.
    NonFiniteError
        (an ``NCGError``) for a NaN, an infinite or a float32-overflowing value.

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
    >>> _ = path.write_text("a,b,kind\\n1,2,0\\n3,nan,1\\n")
    >>> load_table(path, target="kind")
    Traceback (most recent call last):
    ...
    ncg.errors.NonFiniteError: ...iris.csv: line 3, column 'b' holds nan, not a finite number; every value must ...
    """
    path = Path(path)
    if task not in (None, *TASKS):
        raise NCGError(f"task must be 'classification', 'regression' or None (infer), got {task!r}")
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise NCGError(f"val_fraction and test_fraction must be non-negative with a sum below 1, got "
                       f"{val_fraction} and {test_fraction}")
    readers = {".csv": lambda: _read_csv(path, target), ".npz": lambda: _read_npz(path), ".pt": lambda: _read_pt(path)}
    if path.suffix not in readers:
        raise NCGError(f"{path}: expected a .csv, .npz or .pt file, got suffix {path.suffix!r}")
    if not path.is_file():
        raise NCGError(f"{path}: no such file")
    table = readers[path.suffix]()
    x, y = table.x, table.y
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise NCGError(f"{path}: expected x [n, features] and y [n], got x {list(x.shape)} and y {list(y.shape)}")
    n = y.shape[0]
    if n == 0:
        raise NCGError(f"{path}: the table has no rows (a header alone, or empty arrays)")
    if x.shape[1] == 0:
        raise NCGError(f"{path}: the table has no feature columns besides the target")
    _check_finite(path, table, x, is_target=False)
    text_labels = y.dtype.kind == "U"
    if not text_labels:
        _check_finite(path, table, y[:, None], is_target=True)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    if n_train <= 0:
        raise NCGError(f"{path}: {n} rows leave no training row once val_fraction={val_fraction} "
                       f"({n_val} rows) and test_fraction={test_fraction} ({n_test} rows) are held out")
    values = np.unique(y)
    if task is None:
        few_integers = (not text_labels and values.size <= TABLE_MAX_CLASSES
                        and bool(np.all(values == np.round(values))))
        task = "classification" if text_labels or few_integers else "regression"
    elif task == "regression" and text_labels:
        raise NCGError(f"{path}: task='regression' needs a numeric target, but {_target_name(table)} holds text "
                       f"labels such as {str(values[0])!r}")
    order = np.random.default_rng(seed).permutation(n)
    x = x[order]
    if standardize:
        mean, std = x[:n_train].mean(0), x[:n_train].std(0)
        x = (x - mean) / np.where(std > 0, std, 1.0)
    with np.errstate(over="ignore"):  # an overflow is refused just below
        x = x.astype(np.float32)
    if standardize and not np.isfinite(x).all():
        column = int(np.argwhere(~np.isfinite(x))[0, 1])
        raise NCGError(f"{path}: standardizing feature {_feature_name(table, column)} overflows float32: its "
                       f"training rows vary by only {std[column]:.3g}; drop the column or leave out --standardize")
    if task == "classification":
        if values.size < 2:
            raise NCGError(f"{path}: classification needs at least 2 classes, but {_target_name(table)} holds only "
                           f"{values.tolist()[0]!r}")
        labels, num_outputs = np.searchsorted(values, y[order]).astype(np.int64), values.size
        classes = tuple(values.tolist() if text_labels or not np.all(values == np.round(values))
                        else values.astype(np.int64).tolist())
    else:
        labels, num_outputs, classes = y[order].astype(np.float32).reshape(-1, 1), 1, ()
    xt, yt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels)
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
        classes=classes,
    )


def _target_name(table: _Table) -> str:
    return f"column {table.target!r}" if table.target is not None else "y"


def _feature_name(table: _Table, column: int) -> str:
    return repr(table.features[column]) if table.features is not None else f"x[:, {column}]"


def _check_finite(path: Path, table: _Table, values: np.ndarray, is_target: bool) -> None:
    """Refuse a NaN, an infinity or a value beyond float32 in ``values`` (``x``, or ``y`` as
    one column when ``is_target``), naming the first one's row and column and the count."""
    if values.size == 0 or (values.max() <= _FLOAT32_MAX and values.min() >= -_FLOAT32_MAX):
        return  # a NaN makes both comparisons false
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(values) <= _FLOAT32_MAX)
    row, col = (int(i) for i in np.argwhere(bad)[0])
    value = values[row, col]
    what = "beyond float32 (largest 3.4e+38)" if np.isfinite(value) else "not a finite number"
    count = int(bad.sum())
    raise NonFiniteError(
        f"{path}: {table.place(row, None if is_target else col)} holds {float(value)!r}, {what}"
        f"{f' (and {count - 1:,} more such values)' if count > 1 else ''}; every value must be finite and fit "
        f"float32: drop or fill in those rows before training"
    )


def _decode(path: Path) -> str:
    """The text of ``path``: UTF-8 with or without a byte order mark, or UTF-16 with one."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        name = "UTF-16" if encoding == "utf-16" else "UTF-8"
        raise NCGError(f"{path}: not {name} text: {err.reason} at byte {err.start:,}; save the table as "
                       f"{_ENCODINGS}") from None
    if "\x00" in text:
        raise NCGError(f"{path}: holds NUL characters, so it is not a text CSV (a binary file, or UTF-16 without "
                       f"a byte order mark); save the table as {_ENCODINGS}")
    return text


def _read_csv(path: Path, target: str | None) -> _Table:
    """Features and target of a CSV with a header row, parsed by ``numpy.loadtxt``."""
    text = _decode(path).replace("\r\n", "\n").replace("\r", "\n")
    skipped = len(text) - len(text.lstrip("\n"))  # empty lines before the header
    header_line, _, body = text[skipped:].partition("\n")
    if not header_line.strip():
        raise NCGError(f"{path}: the file is empty (expected a header row naming the columns)")
    header = [name.strip() for name in next(csv.reader([header_line]))]
    names = ", ".join(repr(name) for name in header)
    if target is None:
        raise NCGError(f"{path}: a CSV needs target=<column> to name the target; the columns are {names}")
    if target not in header:
        raise NCGError(f"{path}: no column {target!r}; the columns are {names}")
    if header.count(target) > 1:
        raise NCGError(f"{path}: {header.count(target)} columns are named {target!r}; name the target uniquely")
    if not body.strip():
        raise NCGError(f"{path}: the table has no rows, only the header")
    lines = _body_lines(body, first=skipped + 2)
    index = header.index(target)
    options = dict(delimiter=",", ndmin=2, comments=None, quotechar='"', encoding=None)
    try:
        table = _loadtxt(body, np.float64, options)
    except ValueError:
        table = None
    if table is not None:
        _check_width(path, header, target, body, lines, table)
        x, y = np.delete(table, index, axis=1), table[:, index]
    else:  # text class labels in the target column: read every cell as text, convert the features
        try:
            cells = np.char.strip(_loadtxt(body, str, options))
        except ValueError as err:
            raise _csv_error(path, header, target, body, lines, err) from None
        _check_width(path, header, target, body, lines, cells)
        features, y = np.delete(cells, index, axis=1), cells[:, index]
        if (np.char.find(features, "_") >= 0).any() or all(map(_is_number, y)):
            # numpy's astype takes 1_000, loadtxt does not; a numeric target means a feature failed
            raise _csv_error(path, header, target, body, lines, None)
        try:
            x = features.astype(np.float64)
        except ValueError as err:
            raise _csv_error(path, header, target, body, lines, err) from None
        missing = np.isin(np.char.lower(y), _MISSING_LABELS)
        if missing.any():
            row = int(np.argmax(missing))
            raise NCGError(f"{path}: line {lines[row]}, column {target!r} holds {str(y[row])!r}, a missing target; "
                           "drop the rows without a target")
    return _Table(x, y, header[:index] + header[index + 1:], target, lines)


def _loadtxt(body: str, dtype: type, options: dict) -> np.ndarray:
    """``numpy.loadtxt`` of ``body``, without its warning about the empty lines it skips."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input line .* contained no data", category=UserWarning)
        return np.loadtxt(io.StringIO(body), dtype=dtype, **options)


def _check_width(path: Path, header: list[str], target: str, body: str, lines: np.ndarray, table: np.ndarray) -> None:
    """Refuse rows that all hold a different number of values than the header."""
    if table.shape[1] != len(header):
        raise _csv_error(path, header, target, body, lines, None)


def _body_lines(body: str, first: int) -> np.ndarray:
    """The file line of each row ``numpy.loadtxt`` reads from ``body`` (it skips empty lines);
    ``first`` is the line number of ``body``'s first line."""
    if "\n\n" not in body and not body.startswith("\n"):
        return np.arange(first, first + body.count("\n") + (not body.endswith("\n")))
    return np.array([number for number, line in enumerate(body.split("\n"), start=first) if line], dtype=np.int64)


def _csv_error(path: Path, header: list[str], target: str, body: str, lines: np.ndarray,
               err: ValueError | None) -> NCGError:
    """The first row of ``body`` whose length differs from the header's, or the first feature
    that is not a number, named by line and column."""
    rows = (row for row in csv.reader(io.StringIO(body)) if row)
    for number, row in zip(lines, rows):
        if len(row) != len(header):
            return NCGError(f"{path}: line {number} has {len(row)} values, the header {len(header)}")
        for name, value in zip(header, row):
            if name != target and not _is_number(value):
                what = "is empty" if not value.strip() else f"holds {value!r}"
                return NCGError(f"{path}: column {name!r} is not numeric: line {number} {what} (every feature must "
                                "be a number: encode categories as numbers, or drop the column)")
    return NCGError(f"{path}: not a readable CSV table ({_short(err) if err else 'rows of different lengths'})")


def _is_number(value: str) -> bool:
    """Whether ``numpy.loadtxt`` reads ``value`` as a float (Python's ``float`` also takes ``1_000``)."""
    try:
        float(value)
    except ValueError:
        return False
    return "_" not in value


def _numeric(path: Path, key: str, array: object) -> np.ndarray:
    """``array`` (a numpy array or a torch tensor) as float64, refused unless real numbers."""
    if isinstance(array, torch.Tensor):
        if array.layout != torch.strided or array.is_complex() or array.is_quantized:
            raise NCGError(f"{path}: tensor {key!r} is {array.layout} {array.dtype}; expected a dense real tensor")
        return array.detach().to("cpu", torch.float64).numpy()
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        found = f"dtype {array.dtype}" if isinstance(array, np.ndarray) else type(array).__name__
        raise NCGError(f"{path}: {key!r} is not a numeric array ({found}); expected real numbers")
    return array.astype(np.float64)


def _arrays_table(path: Path, arrays: dict) -> _Table:
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise NCGError(f"{path}: no {' and no '.join(repr(k) for k in missing)} array; expected 'x' (features) and "
                       f"'y' (targets), found {sorted(map(str, arrays))}")
    x, y = (_numeric(path, key, arrays[key]) for key in ("x", "y"))
    if x.ndim > 2 and x.shape[0] > 0:
        x = x.reshape(x.shape[0], -1)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    return _Table(x, y)


def _read_npz(path: Path) -> _Table:
    try:
        archive = np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - a damaged file raises zipfile, zlib, struct or numpy errors alike
        raise NCGError(f"{path}: not a readable .npz archive ({_short(err)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise NCGError(f"{path}: holds a single array (an .npy file); expected an .npz archive of 'x' and 'y' "
                       "(numpy.savez(path, x=x, y=y))")
    with archive:
        try:
            arrays = {key: archive[key] if key in ("x", "y") else None for key in archive.files}
        except Exception as err:  # noqa: BLE001 - as above; an object array is numpy's ValueError
            raise NCGError(f"{path}: not a readable .npz archive of numeric arrays ({_short(err)})") from None
    return _arrays_table(path, arrays)


def _read_pt(path: Path) -> _Table:
    try:
        contents = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged file raises zipfile, pickle, runtime or value errors alike
        raise NCGError(f"{path}: not a readable .pt file of tensors ({_short(err)})") from None
    if not isinstance(contents, dict):
        raise NCGError(f"{path}: expected a dict of tensors 'x' and 'y' (torch.save({{'x': x, 'y': y}}, path)), "
                       f"got {type(contents).__name__}")
    return _arrays_table(path, contents)


def _short(err: Exception) -> str:
    """The first line of an exception's message, at most 200 characters, with its type."""
    first = (str(err).strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {first[:200]}"
