"""Save and load a FreeNet with its graph as one file, written atomically.

The file is a ``torch.save`` dict: ``{"format": "ncg.freenet", "version": 3, "config": ...,
"graph": ..., "state_dict": ..., "extra": ..., "checksum": ...}``. It is first written to a
temporary file in the same folder and then renamed over the target, so a crash never leaves a
half-written checkpoint. ``checksum`` is the SHA-256 of everything else in the payload (every
tensor's dtype, shape and bytes, every key and value), so a flipped byte anywhere is caught on
load; the loaded model is then checked against its graph section (buffers, shapes, finite
values, a float32 or float64 dtype). Version 1 files (no checksum) still load, with every check
but the checksum. Versions 1 and 2 stored ``state_dict["bias"]`` with an entry for every neuron;
from version 3 it holds the non-input neurons' alone (:attr:`FreeNet.bias_neurons`), and older
files are converted on load (an input node's bias was never used).

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

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from ncg.atomic import atomic_write
from ncg.errors import CheckpointError, NCGError
from ncg.graph import NCG
from ncg.model import FreeNet, state_shapes

__all__ = ["FORMAT", "VERSION", "save_freenet", "load_freenet", "atomic_save"]

FORMAT = "ncg.freenet"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
DTYPES = ("float32", "float64")
_GRAPH_FIELDS = ("edge_index", "outputs", "weight", "bias", "order", "neuron_ids", "inputs")


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (see :func:`ncg.atomic.atomic_write`)."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def payload_checksum(value: Any) -> str:
    """SHA-256 (hex) of a nested structure of dicts, lists, tensors and plain values, walked in
    a fixed order (dict keys sorted); a ``"checksum"`` key at the top is left out.

    Examples
    --------
    >>> payload_checksum({"a": torch.zeros(2), "b": [1, "x"]}) == payload_checksum({"b": [1, "x"], "a": torch.zeros(2)})
    True
    """
    digest = hashlib.sha256()

    def feed(item: Any) -> None:
        if isinstance(item, torch.Tensor):
            tensor = item.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{list(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
        elif isinstance(item, dict):
            digest.update(b"{")
            for key in sorted(item, key=repr):
                digest.update(repr(key).encode())
                feed(item[key])
            digest.update(b"}")
        elif isinstance(item, (list, tuple)):
            digest.update(b"[" if isinstance(item, list) else b"(")
            for element in item:
                feed(element)
            digest.update(b"]")
        else:
            digest.update(f"{type(item).__name__}:{item!r};".encode())

    feed({k: v for k, v in value.items() if k != "checksum"} if isinstance(value, dict) else value)
    return digest.hexdigest()


def save_freenet(model: FreeNet, path: str | os.PathLike, extra: dict | None = None) -> None:
    """Write ``model`` (config, graph, all parameters) and ``extra`` to ``path`` atomically."""
    graph = model.graph
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": model.config(),
        "graph": {"num_neurons": graph.num_neurons, **{k: getattr(graph, k) for k in _GRAPH_FIELDS},
                  **({} if graph.allowed_layers is None else graph.constraint)},
        "dtype": str(model.weight.dtype).removeprefix("torch."),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    payload["checksum"] = payload_checksum(payload)
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
        The file is missing, truncated, not an ncg checkpoint, of an unsupported version,
        altered (checksum mismatch), or holds a model that does not match its graph section,
        non-finite values or an unsupported dtype; the message names the field.

    Notes
    -----
    The checksum catches accidents, not a file whose checksum was recomputed, so the contents
    are checked whatever it says: the config's parameter shapes (:func:`ncg.model.state_shapes`)
    against the stored tensors before the model is built, then the buffers against the graph
    section and every value for finiteness.
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
    if version not in READABLE_VERSIONS:
        raise CheckpointError(f"{path} has format version {version!r}; this ncg reads versions {READABLE_VERSIONS}")
    if version >= 2 and payload.get("checksum") != payload_checksum(payload):
        raise CheckpointError(f"{path}: the checksum does not match the contents; the file was altered or damaged")
    missing = [k for k in ("config", "graph", "state_dict") if k not in payload]
    if missing:
        raise CheckpointError(f"{path} lacks the sections {missing}")
    if str(payload.get("dtype", "float32")) not in DTYPES:
        raise CheckpointError(f"{path}: dtype {payload.get('dtype')!r} is not one of {DTYPES}")
    dtype = getattr(torch, str(payload.get("dtype", "float32")))
    if not isinstance(payload["graph"], dict) or not isinstance(payload["state_dict"], dict):
        raise CheckpointError(f"{path}: the graph and state_dict sections must be dicts")
    g = payload["graph"]
    order = g.get("order")
    if not isinstance(order, torch.Tensor) or not isinstance(g.get("num_neurons"), int) \
            or g["num_neurons"] != order.numel():
        raise CheckpointError(f"{path}: the graph section declares num_neurons={g.get('num_neurons')!r} but its "
                              f"order holds {order.numel() if isinstance(order, torch.Tensor) else order!r}")
    try:
        graph = NCG(
            g["edge_index"], g["num_neurons"], g["outputs"], weight=g["weight"], bias=g["bias"],
            order=g["order"], neuron_ids=g["neuron_ids"], unreachable="ignore", inputs=g.get("inputs"),
            layer=g.get("layer"), allowed_layers=g.get("allowed_layers"),
        )
        shapes = state_shapes(graph, payload["config"])
    except (NCGError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: the graph or config section is invalid: {exc}") from exc
    # files written before input nodes existed have no "inputs" buffer
    state = {"inputs": graph.inputs, **payload["state_dict"]}
    _check_shapes(path, graph, state, shapes)  # before the model is built: the config may declare any size
    _check_state(path, graph, state, dtype)
    model = FreeNet(graph, **payload["config"]).to(dtype)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError, NCGError) as exc:
        raise CheckpointError(f"{path}: parameters do not match the saved graph: {exc}") from exc
    return model.to(map_location), payload.get("extra", {})


def _check_shapes(path: Path, graph: NCG, state: dict, shapes: dict[str, tuple[int, ...]]) -> None:
    """Every entry the config's model holds (:func:`ncg.model.state_shapes`) is a tensor of its
    shape in ``state``; a bias of every neuron, as versions 1 and 2 stored it, is taken too."""
    for name, shape in shapes.items():
        value = state.get(name)
        allowed = [shape, (graph.num_neurons,)] if name == "bias" else [shape]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) not in allowed:
            found = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise CheckpointError(f"{path}: state_dict[{name!r}] is {found}, the config and graph need shape "
                                  f"{list(shape)}")


def _check_state(path: Path, graph: NCG, state: dict, dtype: torch.dtype) -> None:
    """The state_dict's buffers must repeat the graph section, and every stored value must be
    finite and in the checkpoint's dtype."""
    for name in ("edge_index", "outputs", "order", "neuron_ids", "inputs"):
        value = state.get(name)
        if not isinstance(value, torch.Tensor) or not torch.equal(value.cpu(), getattr(graph, name)):
            raise CheckpointError(f"{path}: state_dict[{name!r}] differs from the graph section")
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            if value.dtype != dtype:
                raise CheckpointError(f"{path}: state_dict[{name!r}] has dtype {value.dtype}, expected {dtype}")
            if not torch.isfinite(value).all():
                raise CheckpointError(f"{path}: state_dict[{name!r}] holds NaN or infinite values")
