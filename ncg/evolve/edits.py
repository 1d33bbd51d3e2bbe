"""Topology edits: what an operator proposes and :func:`ncg.evolve.apply.apply_edits` carries out.

Edits name neurons by their *stable* ids (``NCG.neuron_ids``), which survive renumbering when
neurons are added or removed, so a list of edits can be logged, replayed and inspected later.

Examples
--------
>>> Edit("prune_edge", source=3, target=7, score=0.02)
Edit(op='prune_edge', source=3, target=7, score=0.02, weight=0.0)
"""
from __future__ import annotations

from typing import NamedTuple

from ncg.errors import EditError

__all__ = ["Edit", "EDIT_OPS"]

EDIT_OPS = ("remove_neuron", "prune_edge", "add_neuron", "add_edge")
"""Edit kinds, in the order :func:`~ncg.evolve.apply.apply_edits` applies them."""


class _EditFields(NamedTuple):
    op: str
    source: int
    target: int
    score: float = 0.0
    weight: float = 0.0


class Edit(_EditFields):
    """One topology change (an immutable named tuple: cheap to create by the ten thousand).

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
