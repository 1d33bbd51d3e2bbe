"""Topology edits: what an operator proposes and :func:`ncg.evolve.apply.apply_edits` carries out.

Edits name neurons by their *stable* ids (``NCG.neuron_ids``), which survive renumbering when
neurons are added or removed, so a round's edits can be logged, replayed and inspected later.

A round's edits are one :class:`EditSet`: a struct of arrays (kind, source, target, score,
weight), built, applied and stored with array operations, so a million edits cost a few arrays,
not a million objects. :class:`Edit` is the view of one of them, and the way to write a few by
hand; an iterable of them converts with :meth:`EditSet.from_edits`.

Examples
--------
>>> import numpy as np
>>> edits = EditSet.of("prune_edge", np.array([3, 4]), np.array([7, 9]), scores=np.array([0.02, 0.5]))
>>> len(edits), edits.count("prune_edge"), edits[0]
(2, 2, Edit(op='prune_edge', source=3, target=7, score=0.02, weight=0.0))
>>> EditSet.concat([edits, EditSet.from_edits([Edit("add_edge", 3, 9, weight=0.1)])]).count("add_edge")
1
"""
from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ncg.bounded import NUMERIC_KINDS, declared_size, inflate
from ncg.errors import EditError, NCGError

__all__ = ["Edit", "EditSet", "EDIT_OPS", "encode_array", "decode_array"]

EDIT_OPS = ("remove_neuron", "prune_edge", "add_neuron", "add_edge")
"""Edit kinds, in the order :func:`~ncg.evolve.apply.apply_edits` applies them; an
:class:`EditSet` stores each as its index here."""


class _EditFields(NamedTuple):
    op: str
    source: int
    target: int
    score: float = 0.0
    weight: float = 0.0


class Edit(_EditFields):
    """One topology change (an immutable named tuple).

    Attributes
    ----------
    op : str
        ``"prune_edge"`` removes ``source -> target``; ``"add_edge"`` adds it with ``weight``;
        ``"remove_neuron"`` removes neuron ``source`` and its edges (``target`` is ``-1``);
        ``"add_neuron"`` inserts a new neuron with id ``target`` right after neuron ``source``
        in the topological order (``source = -1``: at the front); connect it with ``add_edge``.
    source, target : int
        Stable neuron ids.
    score : float
        The score that motivated the edit (coactivation, magnitude, ...), for the history.
    weight : float
        Initial weight of an added edge.
    """

    __slots__ = ()

    def __new__(cls, op: str, source: int, target: int, score: float = 0.0, weight: float = 0.0) -> Edit:
        if op not in EDIT_OPS:
            raise EditError(f"Edit.op must be one of {EDIT_OPS}, got {op!r}")
        return super().__new__(cls, op, source, target, score, weight)

    def to_dict(self) -> dict:
        """A JSON-friendly dict."""
        return dict(self._asdict())


def encode_array(values: np.ndarray) -> dict:
    """A JSON-friendly, zlib-compressed form of a numeric array (little-endian bytes, base64).

    Examples
    --------
    >>> decode_array(encode_array(np.arange(6).reshape(2, 3))).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    values = np.ascontiguousarray(values)
    raw = values.astype(values.dtype.newbyteorder("<"), copy=False).tobytes()
    return {"dtype": values.dtype.str.lstrip("<>|="), "shape": list(values.shape),
            "zlib": base64.b64encode(zlib.compress(raw, 1)).decode("ascii")}


def decode_array(data: dict | list, what: str = "encoded array") -> np.ndarray:
    """Inverse of :func:`encode_array`; a plain (nested) list is read as it is.

    The declared ``shape`` and ``dtype`` are checked against the compressed bytes before
    anything is inflated, and the data inflates to exactly the declared size
    (:func:`ncg.bounded.inflate`), so a few bytes declaring a huge shape allocate nothing.

    Raises
    ------
    NCGError
        The fields are missing or malformed, the dtype is not numeric, or the data does not
        hold the declared shape; the message starts with ``what``.

    Examples
    --------
    >>> decode_array({"dtype": "f8", "shape": [10**9], "zlib": encode_array(np.zeros(2))["zlib"]}, "edges")
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: edges declares 8000000000 bytes, more than its 11 compressed bytes can hold (at most 11416)
    """
    if not isinstance(data, dict):
        try:
            values = np.asarray(data)
        except ValueError as exc:
            raise NCGError(f"{what} is a ragged list ({exc})") from None
        if values.dtype.kind not in NUMERIC_KINDS:
            raise NCGError(f"{what} is a list of {values.dtype} values, expected numbers")
        return values
    if not isinstance(data.get("zlib"), str) or "dtype" not in data or "shape" not in data:
        raise NCGError(f"{what} lacks its 'zlib' text, 'dtype' or 'shape' (found keys {sorted(data)})")
    dtype = data["dtype"]
    if not isinstance(dtype, str):
        raise NCGError(f"{what}: dtype {dtype!r} is no dtype string")
    shape, dtype, size = declared_size(data["shape"], "<" + dtype, what)
    try:
        packed = base64.b64decode(data["zlib"], validate=True)
    except ValueError as exc:
        raise NCGError(f"{what}: its 'zlib' text is not base64 ({exc})") from None
    return np.frombuffer(inflate(packed, size, what), dtype=dtype).reshape(shape).copy()


_COLUMNS = ("op", "source", "target", "score", "weight")
_DTYPES = (np.int8, np.int64, np.int64, np.float64, np.float64)


@dataclass(frozen=True, eq=False)
class EditSet:
    """A round's edits as aligned arrays (see the module docstring).

    Attributes
    ----------
    op : np.ndarray
        int8 ``[K]``, the index of each edit's kind in :data:`EDIT_OPS`.
    source, target : np.ndarray
        int64 ``[K]`` stable neuron ids (as in :class:`Edit`).
    score, weight : np.ndarray
        float64 ``[K]``.
    """

    op: np.ndarray
    source: np.ndarray
    target: np.ndarray
    score: np.ndarray
    weight: np.ndarray

    def __post_init__(self) -> None:
        for name, dtype in zip(_COLUMNS, _DTYPES):
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype).reshape(-1))
        sizes = {getattr(self, name).size for name in _COLUMNS}
        if len(sizes) != 1:
            raise EditError(f"EditSet columns must have one length, got {[getattr(self, n).size for n in _COLUMNS]}")
        if self.op.size and not (0 <= self.op.min() and self.op.max() < len(EDIT_OPS)):
            raise EditError(f"EditSet.op must hold indices of {EDIT_OPS}, got values in "
                            f"[{self.op.min()}, {self.op.max()}]")

    # ---------------------------------------------------------------- construction
    @classmethod
    def empty(cls) -> EditSet:
        """No edits."""
        return cls(*(np.zeros(0, dtype=d) for d in _DTYPES))

    @classmethod
    def of(cls, op: str, sources: np.ndarray, targets: np.ndarray, scores: np.ndarray | float = 0.0,
           weights: np.ndarray | float = 0.0) -> EditSet:
        """Edits of one kind from aligned arrays (``scores`` and ``weights`` broadcast)."""
        if op not in EDIT_OPS:
            raise EditError(f"op must be one of {EDIT_OPS}, got {op!r}")
        sources = np.asarray(sources, dtype=np.int64).reshape(-1)
        shape = sources.shape
        return cls(np.full(shape, EDIT_OPS.index(op), dtype=np.int8), sources, targets,
                   np.broadcast_to(np.asarray(scores, dtype=np.float64), shape),
                   np.broadcast_to(np.asarray(weights, dtype=np.float64), shape))

    @classmethod
    def from_edits(cls, edits: Iterable[Edit] | EditSet) -> EditSet:
        """An :class:`EditSet` of ``edits`` in their order (an :class:`EditSet` is returned as is)."""
        if isinstance(edits, EditSet):
            return edits
        edits = list(edits)
        for edit in edits:
            if not isinstance(edit, Edit):
                raise EditError(f"edits must be Edit tuples or an EditSet, got {edit!r}")
        if not edits:
            return cls.empty()
        op, source, target, score, weight = zip(*edits)
        return cls(np.array([EDIT_OPS.index(o) for o in op], dtype=np.int8), source, target, score, weight)

    @classmethod
    def concat(cls, sets: Iterable[EditSet]) -> EditSet:
        """The edits of ``sets``, one after the other."""
        sets = [EditSet.from_edits(s) for s in sets]
        if not sets:
            return cls.empty()
        return cls(*(np.concatenate([getattr(s, name) for s in sets]) for name in _COLUMNS))

    # ---------------------------------------------------------------- views
    def __len__(self) -> int:
        return int(self.op.size)

    def __getitem__(self, k: int) -> Edit:
        return Edit(EDIT_OPS[int(self.op[k])], int(self.source[k]), int(self.target[k]), float(self.score[k]),
                    float(self.weight[k]))

    def __iter__(self) -> Iterator[Edit]:
        return (self[k] for k in range(len(self)))

    def __eq__(self, other: object) -> bool:
        """Equal to an :class:`EditSet` with the same columns, or to a list of the same edits."""
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        if not isinstance(other, EditSet):
            return NotImplemented
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in _COLUMNS)

    def __repr__(self) -> str:
        counts = ", ".join(f"{op}={self.count(op)}" for op in EDIT_OPS if self.count(op))
        return f"EditSet({len(self)} edits{': ' + counts if counts else ''})"

    def mask(self, op: str) -> np.ndarray:
        """Bool ``[K]``: the edits of kind ``op``."""
        return self.op == EDIT_OPS.index(op)

    def count(self, op: str) -> int:
        """How many edits are of kind ``op``."""
        return int(np.count_nonzero(self.mask(op)))

    def select(self, keep: np.ndarray) -> EditSet:
        """The edits where ``keep`` (a bool mask or indices) holds, in order."""
        return EditSet(*(getattr(self, name)[keep] for name in _COLUMNS))

    # ---------------------------------------------------------------- storage
    def to_dict(self) -> dict:
        """Compressed columns (:func:`encode_array`), JSON-friendly."""
        return {name: encode_array(getattr(self, name)) for name in _COLUMNS}

    @classmethod
    def from_dict(cls, data: dict | list) -> EditSet:
        """Inverse of :meth:`to_dict`; also reads a list of :meth:`Edit.to_dict` dicts."""
        if isinstance(data, list):
            if not all(isinstance(e, dict) and set(e) <= set(Edit._fields) for e in data):
                raise EditError(f"an edit list holds an entry that is no dict of {Edit._fields}")
            return cls.from_edits(Edit(**e) for e in data)
        if not isinstance(data, dict) or not set(_COLUMNS) <= set(data):
            raise EditError(f"encoded edits must be a dict with the columns {_COLUMNS}, got "
                            f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
        return cls(*(decode_array(data[name], f"edit column {name!r}") for name in _COLUMNS))
