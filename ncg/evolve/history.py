"""The record of a Free-Evolve run: one entry per round, replayable frame by frame.

Round 0 is the starting graph. Round ``k >= 1`` holds the metrics measured after that round's
training, the edits applied at its end (an :class:`~ncg.evolve.edits.EditSet`), and a snapshot
of the graph after those edits (edges, outputs, input nodes and topological order in stable
neuron ids, as arrays), so a viewer can draw each frame with the pruned edges (from the previous frame) and the
added ones marked. Saved, every array is zlib-compressed (:func:`~ncg.evolve.edits.encode_array`):
a round of a 1M-edge graph costs a few MB, not a JSON list of millions of numbers.

Examples
--------
>>> from ncg import NCG
>>> history = History()
>>> record = history.append_graph(NCG.complete(3), metrics={"val_accuracy": 0.5})
>>> history.rounds[0].num_edges, history.rounds[0].depth
(3, 2)
>>> History.from_dict(history.to_dict()).rounds[0].edges.tolist()
[[0, 0, 1], [1, 2, 2]]
>>> from ncg.build import sparse_start
>>> record = history.append_graph(sparse_start(num_inputs=2, num_hidden=1, num_outputs=1, fan_in=2, seed=0))
>>> History.from_dict(history.to_dict()).rounds[1].inputs.tolist()
[0, 1]
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ncg.atomic import atomic_write
from ncg.errors import NCGError
import numpy as np

from ncg.evolve.edits import EDIT_OPS, EditSet, decode_array, encode_array
from ncg.graph import NCG
from ncg.schedule import topological_generations

__all__ = ["RoundRecord", "History"]

HISTORY_VERSION = 2
"""2: arrays compressed, edits as columns (rounds without ``inputs``, written before input nodes
were recorded, are read as having none); version 1 files (JSON lists) are still read."""

_ARRAYS = ("edges", "outputs", "order", "inputs")
_REQUIRED = ("round", "num_neurons", "num_edges", "depth", "num_generations", "edges", "outputs", "order", "edits")
_FIELDS = _REQUIRED + ("inputs", "metrics", "seconds", "phase", "timing")


@dataclass
class RoundRecord:
    """One round of a Free-Evolve run (see the module docstring).

    ``phase`` is ``"start"`` (round 0), ``"evolve"`` (a train-record-edit round) or
    ``"finetune"`` (the final training without edits). ``inputs`` holds the input nodes
    (:attr:`NCG.inputs <ncg.graph.NCG.inputs>`), empty when the inputs reach the neurons through
    an encoder and in files written before it was recorded. ``seconds`` is the whole round's wall
    time; ``timing`` what its training cost (``train_seconds``, ``seconds_per_step``), kept apart
    from ``metrics`` because a seed fixes the metrics bit for bit but not the clock.
    """

    round: int
    num_neurons: int
    num_edges: int
    depth: int
    num_generations: int
    edges: np.ndarray
    outputs: np.ndarray
    order: np.ndarray
    inputs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    edits: EditSet = field(default_factory=EditSet.empty)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    phase: str = "evolve"
    timing: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(2, -1)
        self.outputs = np.asarray(self.outputs, dtype=np.int64).reshape(-1)
        self.order = np.asarray(self.order, dtype=np.int64).reshape(-1)
        self.inputs = np.asarray(self.inputs, dtype=np.int64).reshape(-1)
        self.edits = EditSet.from_edits(self.edits)

    def count(self, op: str) -> int:
        """How many edits of kind ``op`` this round applied."""
        return self.edits.count(op)

    def to_dict(self) -> dict:
        """A JSON-friendly dict (arrays compressed)."""
        out = dict(self.__dict__)
        out.update({name: encode_array(getattr(self, name)) for name in _ARRAYS})
        out["edits"] = self.edits.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict) -> RoundRecord:
        """Inverse of :meth:`to_dict`; also reads the JSON lists of format version 1, and
        records without ``inputs`` (written before input nodes were recorded) as having none."""
        if not isinstance(data, dict) or not set(_REQUIRED) <= set(data) or not set(data) <= set(_FIELDS):
            raise NCGError(f"a round record must be a dict with the fields {_REQUIRED} (and optionally "
                           f"{sorted(set(_FIELDS) - set(_REQUIRED))}), got "
                           f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
        data = dict(data)
        where = f"round {data['round']!r}"
        data.update({name: decode_array(data[name], f"{where}: {name}") for name in _ARRAYS if name in data})
        data["edits"] = EditSet.from_dict(data["edits"])
        record = cls(**data)
        for name, declared, found in (("num_edges", record.num_edges, record.edges.shape[1]),
                                      ("num_neurons", record.num_neurons, record.order.size)):
            if declared != found:
                raise NCGError(f"{where}: {name} is {declared!r} but its arrays hold {found}")
        return record


class History:
    """The rounds of a run, in order; saved as JSON next to the model."""

    def __init__(self, rounds: list[RoundRecord] | None = None) -> None:
        self.rounds: list[RoundRecord] = list(rounds or [])

    def __len__(self) -> int:
        return len(self.rounds)

    def __repr__(self) -> str:
        return f"History(rounds={len(self.rounds)})"

    def append_graph(
        self,
        graph: NCG,
        edits: EditSet | None = None,
        metrics: dict[str, float] | None = None,
        seconds: float = 0.0,
        phase: str = "evolve",
        timing: dict[str, float] | None = None,
    ) -> RoundRecord:
        """Record ``graph`` (after ``edits``) as the next round; ``timing`` holds what its
        training cost (``train_seconds``, ``seconds_per_step``), apart from the metrics."""
        ids = graph.neuron_ids
        generation = topological_generations(graph.edge_index, graph.num_neurons)
        num_generations = int(generation.max()) + 1
        record = RoundRecord(
            round=len(self.rounds),
            num_neurons=graph.num_neurons,
            num_edges=graph.num_edges,
            depth=num_generations - 1,
            num_generations=num_generations,
            edges=ids[graph.edge_index].numpy(),
            outputs=ids[graph.outputs].numpy(),
            order=ids[graph.order].numpy(),
            inputs=ids[graph.inputs].numpy(),
            edits=EditSet.empty() if edits is None else edits,
            metrics=dict(metrics or {}),
            seconds=float(seconds),
            phase=phase,
            timing=dict(timing or {}),
        )
        self.rounds.append(record)
        return record

    def totals(self) -> dict[str, int]:
        """Edits of each kind summed over all rounds."""
        totals = {op: sum(record.count(op) for record in self.rounds) for op in EDIT_OPS}
        return {op: count for op, count in totals.items() if count}

    def to_dict(self) -> dict:
        """A JSON-friendly dict with a format version."""
        return {"version": HISTORY_VERSION, "rounds": [r.to_dict() for r in self.rounds]}

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """Inverse of :meth:`to_dict`."""
        if data.get("version") not in (1, HISTORY_VERSION):
            raise NCGError(f"history format version {data.get('version')!r} is not 1 or {HISTORY_VERSION}")
        return cls([RoundRecord.from_dict(r) for r in data["rounds"]])

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (see :func:`ncg.atomic.atomic_write`)."""
        data = json.dumps(self.to_dict()).encode()
        atomic_write(path, lambda handle: handle.write(data))

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`save`.

        Raises
        ------
        NCGError
            The file is unreadable, not JSON, or a record is malformed or declares more than
            its arrays hold (:func:`~ncg.evolve.edits.decode_array`); the message names the file.
        """
        try:
            with open(path, "rb") as handle:
                data = json.load(handle)
        except (OSError, ValueError) as exc:
            raise NCGError(f"history file {path} could not be read as JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("rounds"), list):
            raise NCGError(f"history file {path} holds no object with a list of 'rounds'")
        try:
            return cls.from_dict(data)
        except (NCGError, TypeError, ValueError) as exc:
            raise NCGError(f"history file {path}: {exc}") from exc
