"""The record of a Free-Evolve run: one entry per round, replayable frame by frame.

Round 0 is the starting graph. Round ``k >= 1`` holds the metrics measured after that round's
training, the edits applied at its end, and a snapshot of the graph after those edits (edges,
outputs and topological order in stable neuron ids), so a viewer can draw each frame with the
pruned edges (from the previous frame) and the added ones marked.

Examples
--------
>>> from ncg import NCG
>>> history = History()
>>> record = history.append_graph(NCG.complete(3), metrics={"val_accuracy": 0.5})
>>> history.rounds[0].num_edges, history.rounds[0].depth
(3, 2)
>>> History.from_dict(history.to_dict()).rounds[0].edges
[[0, 0, 1], [1, 2, 2]]
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ncg.atomic import atomic_write
from ncg.errors import NCGError
from ncg.evolve.edits import Edit
from ncg.graph import NCG
from ncg.schedule import topological_generations

__all__ = ["RoundRecord", "History"]

HISTORY_VERSION = 1


@dataclass
class RoundRecord:
    """One round of a Free-Evolve run (see the module docstring).

    ``phase`` is ``"start"`` (round 0), ``"evolve"`` (a train-record-edit round) or
    ``"finetune"`` (the final training without edits).
    """

    round: int
    num_neurons: int
    num_edges: int
    depth: int
    num_generations: int
    edges: list[list[int]]
    outputs: list[int]
    order: list[int]
    edits: list[Edit] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    phase: str = "evolve"

    def count(self, op: str) -> int:
        """How many edits of kind ``op`` this round applied."""
        return sum(edit.op == op for edit in self.edits)

    def to_dict(self) -> dict:
        """A JSON-friendly dict."""
        out = dict(self.__dict__)
        out["edits"] = [edit.to_dict() for edit in self.edits]
        return out


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
        edits: list[Edit] | None = None,
        metrics: dict[str, float] | None = None,
        seconds: float = 0.0,
        phase: str = "evolve",
    ) -> RoundRecord:
        """Record ``graph`` (after ``edits``) as the next round."""
        ids = graph.neuron_ids
        generation = topological_generations(graph.edge_index, graph.num_neurons)
        num_generations = int(generation.max()) + 1
        record = RoundRecord(
            round=len(self.rounds),
            num_neurons=graph.num_neurons,
            num_edges=graph.num_edges,
            depth=num_generations - 1,
            num_generations=num_generations,
            edges=ids[graph.edge_index].tolist(),
            outputs=ids[graph.outputs].tolist(),
            order=ids[graph.order].tolist(),
            edits=list(edits or []),
            metrics=dict(metrics or {}),
            seconds=float(seconds),
            phase=phase,
        )
        self.rounds.append(record)
        return record

    def totals(self) -> dict[str, int]:
        """Edits of each kind summed over all rounds."""
        out: dict[str, int] = {}
        for record in self.rounds:
            for edit in record.edits:
                out[edit.op] = out.get(edit.op, 0) + 1
        return out

    def to_dict(self) -> dict:
        """A JSON-friendly dict with a format version."""
        return {"version": HISTORY_VERSION, "rounds": [r.to_dict() for r in self.rounds]}

    @classmethod
    def from_dict(cls, data: dict) -> History:
        """Inverse of :meth:`to_dict`."""
        if data.get("version") != HISTORY_VERSION:
            raise NCGError(f"history format version {data.get('version')!r} is not {HISTORY_VERSION}")
        rounds = []
        for r in data["rounds"]:
            r = dict(r)
            r["edits"] = [Edit(**e) for e in r["edits"]]
            rounds.append(RoundRecord(**r))
        return cls(rounds)

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (see :func:`ncg.atomic.atomic_write`)."""
        data = json.dumps(self.to_dict()).encode()
        atomic_write(path, lambda handle: handle.write(data))

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        """Read a history written by :meth:`save`."""
        with open(path) as handle:
            return cls.from_dict(json.load(handle))
