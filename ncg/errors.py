"""One exception family for ncg.

Every error raised on bad input is an :class:`NCGError` (a ``ValueError``), and each kind of
problem has its own subclass so callers can catch exactly what they expect.

Examples
--------
>>> from ncg.errors import CycleError, NCGError
>>> issubclass(CycleError, NCGError) and issubclass(NCGError, ValueError)
True
"""
from __future__ import annotations

__all__ = [
    "NCGError",
    "CycleError",
    "SelfLoopError",
    "EdgeIndexError",
    "DuplicateEdgeError",
    "NonFiniteError",
    "UnreachableNeuronError",
    "UnreachableNeuronWarning",
    "TargetMissedWarning",
    "CheckpointError",
    "IDXError",
    "ChecksumError",
    "GraphMLError",
    "EditError",
    "InconsistentRanksError",
]


class NCGError(ValueError):
    """Base class of every ncg input error."""


class CycleError(NCGError):
    """The edges contain a directed cycle; the message names the neurons on it."""


class SelfLoopError(NCGError):
    """An edge goes from a neuron to itself."""


class EdgeIndexError(NCGError):
    """``edge_index`` has the wrong shape or dtype, or names a neuron out of range."""


class DuplicateEdgeError(NCGError):
    """The same (source, target) pair occurs more than once."""


class NonFiniteError(NCGError):
    """A weight, bias, activation or data value is NaN or infinite."""


class UnreachableNeuronError(NCGError):
    """A hidden neuron has no path to any output neuron (raised with ``unreachable="raise"``)."""


class UnreachableNeuronWarning(UserWarning):
    """A hidden neuron has no path to any output neuron: it cannot affect the result."""


class TargetMissedWarning(UserWarning):
    """A Free-Evolve run ended its evolve phase above its budget's edge target."""


class CheckpointError(NCGError):
    """A checkpoint file is truncated, foreign, or of an unsupported format version."""


class IDXError(NCGError):
    """An IDX data file is malformed (magic number, truncation, counts)."""


class ChecksumError(IDXError):
    """A data file's digest differs from the published one; the message names the file, the
    expected and the found digest, and where to get a good copy."""


class GraphMLError(NCGError):
    """A GraphML file is malformed, cyclic, or inconsistent with the ncg format."""


class EditError(NCGError):
    """A topology edit is invalid for the graph it is applied to."""


class InconsistentRanksError(NCGError):
    """Data-parallel ranks hold different models or optimiser states; the message names them."""
