"""Save and load a FreeNet with its graph as one file, written atomically.

The file is a ``torch.save`` dict: ``{"format": "ncg.freenet", "version": 1, "config": ...,
"graph": ..., "state_dict": ..., "extra": ...}``. It is first written to a temporary file in the
same folder and then renamed over the target, so a crash never leaves a half-written checkpoint.

Examples
--------
>>> import tempfile, torch
>>> from pathlib import Path
>>> from ncg import NCG, FreeNet, save_freenet, load_freenet
>>> net = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=3, seed=0)
>>> path = Path(tempfile.mkdtemp()) / "net.pt"
>>> save_freenet(net, path, extra={"epoch": 3})
>>> loaded, extra = load_freenet(path)
>>> x = torch.randn(2, 3)
>>> torch.equal(loaded(x), net(x)), extra
(True, {'epoch': 3})
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ncg.atomic import atomic_write
from ncg.errors import CheckpointError, NCGError
from ncg.graph import NCG
from ncg.model import FreeNet

__all__ = ["FORMAT", "VERSION", "save_freenet", "load_freenet", "atomic_save"]

FORMAT = "ncg.freenet"
VERSION = 1
_GRAPH_FIELDS = ("edge_index", "outputs", "weight", "bias", "order", "neuron_ids", "inputs")


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (see :func:`ncg.atomic.atomic_write`)."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def save_freenet(model: FreeNet, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write ``model`` (config, graph, all parameters) and ``extra`` to ``path`` atomically."""
    graph = model.graph
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config(),
        "graph": {"num_neurons": graph.num_neurons, **{k: getattr(graph, k) for k in _GRAPH_FIELDS}},
        "dtype": str(model.weight.dtype).removeprefix("torch."),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    atomic_save(payload, path)


def load_freenet(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[FreeNet, dict]:
    """Load a checkpoint written by :func:`save_freenet`.

    Returns
    -------
    (FreeNet, dict)
        The model and the ``extra`` dict saved with it.

    Raises
    ------
    CheckpointError
        The file is missing, truncated, not an ncg checkpoint, or of an unsupported version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for damaged archives
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(exc).__name__}: {exc}); "
            "the file is truncated, damaged or not a torch checkpoint"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path} is not an ncg FreeNet checkpoint (format={found!r}, expected {FORMAT!r})")
    version = payload.get("version")
    if version != VERSION:
        raise CheckpointError(f"{path} has format version {version!r}; this ncg reads version {VERSION}")
    missing = [k for k in ("config", "graph", "state_dict") if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks the sections {missing}")
    dtype = getattr(torch, str(payload.get("dtype", "float32")), None)
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"{path} names an unknown dtype {payload.get('dtype')!r}")
    try:
        g = payload["graph"]
        graph = NCG(
            g["edge_index"], int(g["num_neurons"]), g["outputs"], weight=g["weight"], bias=g["bias"],
            order=g["order"], neuron_ids=g["neuron_ids"], unreachable="ignore", inputs=g.get("inputs"),
        )
        model = FreeNet(graph, **payload["config"]).to(dtype)
    except (NCGError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: the graph or config section is invalid: {exc}") from exc
    try:
        # files written before input nodes existed have no "inputs" buffer
        model.load_state_dict({"inputs": graph.inputs, **payload["state_dict"]})
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: parameters do not match the saved graph: {exc}") from exc
    return model.to(map_location), payload.get("extra", {})
