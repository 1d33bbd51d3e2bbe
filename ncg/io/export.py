"""Export a FreeNet to runtimes users already have: ``torch.export`` programs and ONNX.

:func:`to_module` turns a :class:`~ncg.model.FreeNet` into a plain ``torch.nn.Module`` whose
forward uses only standard torch ops (its edges, weights, biases and evaluation order are
buffers); :func:`export_program` saves it with ``torch.export`` (a ``.pt2`` file) and
:func:`export_onnx` as an ONNX file for ``onnxruntime``. Both keep a dynamic batch dimension and
run without ncg.

Design
------
The non-input neurons are laid out in topological generations of the graph among them (input
nodes carry the features and are no part of it), hidden neurons before outputs inside a
generation. The module then computes

* ``z = bias + x @ W_in``: with the graph encoder ``W_in`` (``[in_features, M]``) is built at
  run time by one scatter of the input edges' weights into zeros, since two thirds of the edges
  leave the inputs; a dense encoder's own weight is stored as it is;
* per generation ``g`` (neurons ``[s, s + k)``): ``h_g = act(z[:, s:s+k] + h[:, :s] @ W_g)``,
  where the slab ``W_g`` (``[s, k]``) is a slice of one buffer that a single scatter of the
  hidden edges builds at run time, and ``h = cat(h, h_g)``;
* the outputs ``h[:, outputs]``, then the decoder.

So the file holds, per edge, one flat index (int32; int64 only for very large graphs) into the
run-time slabs and one weight: 8 bytes per float32 edge, never a dense matrix over all possible
edges. Past the 8 bytes of an edge, a file holds its graph: about 2.3 KB (ONNX) or 4.4 KB
(``.pt2``) per generation. onnxruntime folds the scatters into dense slabs once, when it loads the
file, so a call costs GEMMs only; the ``torch.export`` program rebuilds the slabs on every call.
The slabs take ``4 (F M + M^2 / 2)`` bytes of memory at run time for ``F`` inputs and ``M``
neurons, never in the file. ``python benchmarks/bench_learned.py`` times both forms against the
FreeNet itself and MLPs (docs/benchmarks.md: 2.5-7x slower than the FreeNet's own kernel, 9-15
bytes per edge).

ONNX goes through the TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) with
constant folding off, so the scatters stay in the graph (folding would store the dense slabs).
It needs only the ``onnx`` package; the ``dynamo=True`` exporter needs ``onnxscript`` as well,
writes more bytes per edge, and without its optimiser leaves onnxruntime to rebuild the slabs on every
call). torch deprecates the TorchScript exporter; :func:`export_onnx` silences that warning, and
the module exports unchanged with ``dynamo=True`` the day it goes.

Examples
--------
>>> import torch
>>> from ncg import FreeNet
>>> from ncg.build import sparse_start
>>> net = FreeNet(sparse_start(num_inputs=6, num_hidden=5, num_outputs=2, fan_in=3, seed=0), in_features=6)
>>> module = to_module(net)
>>> x = torch.randn(4, 6)
>>> torch.allclose(module(x), net(x), atol=1e-6)
True
"""
from __future__ import annotations

import importlib.util
import itertools
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from ncg.activations import ACTIVATIONS
from ncg.errors import NCGError
from ncg.model import FreeNet
from ncg.schedule import topological_generations

__all__ = ["FreeNetModule", "to_module", "export_program", "export_onnx"]

Activation = Callable[[Tensor], Tensor]

_ACTIVATIONS: dict[str, Activation] = {name: a.module() for name, a in ACTIVATIONS.items()}
"""Each activation's ``torch.nn`` module (standard ops only; identity returns its input as it is)."""

_EXAMPLE_BATCH = 2
"""Batch of the example input given to the exporters (0 and 1 would be specialised)."""


def _index_dtype(bound: int) -> torch.dtype:
    """int32 when every index is below ``bound`` fits, else int64."""
    return torch.int32 if bound <= torch.iinfo(torch.int32).max else torch.int64


class FreeNetModule(nn.Module):
    """A FreeNet's function as a plain module: standard torch ops over buffers.

    Build it with :func:`to_module`. Buffers: ``bias`` (``[M]``, the non-input neurons in
    evaluation order); ``input_index`` / ``input_weight`` (graph encoder: flat index
    ``feature * M + slot`` and weight of each input edge) or ``encoder_weight``
    (``[in_features, M]``); ``hidden_index`` / ``hidden_weight`` (each edge between neurons:
    its flat index into the concatenated generation slabs, and its weight); ``output_slot``
    (``[num_outputs]``); ``decoder_weight`` / ``decoder_bias`` for a linear decoder.

    Attributes
    ----------
    blocks : tuple of (size, hidden)
        One per generation, in order: its number of neurons (consecutive slots), the first
        ``hidden`` of them hidden, the rest outputs.
    slab_sizes : list of int
        ``start * size`` for each generation after the first: the length of its slab
        ``[start, size]`` (``start`` is the number of slots before it) in the scattered
        ``hidden_weight``.
    """

    def __init__(self, net: FreeNet, blocks: tuple[tuple[int, int], ...], tables: dict[str, Tensor]) -> None:
        super().__init__()
        self.in_features, self.out_features = net.in_features, net.out_features
        self.activation, self.output_activation = net.activation, net.output_activation
        self.blocks = blocks
        self.num_slots = sum(size for size, _ in blocks)
        starts = itertools.accumulate(size for size, _ in blocks)
        self.slab_sizes = [start * size for start, (size, _) in zip(starts, blocks[1:])]
        for name, value in tables.items():
            self.register_buffer(name, value)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``[B, in_features]`` (or ``[B, ...]``, flattened) to ``[B, out_features]``."""
        x = x.flatten(1).to(self.bias.dtype)
        if hasattr(self, "encoder_weight"):
            encoder = self.encoder_weight
        else:
            encoder = self.input_weight.new_zeros(1).expand(self.in_features * self.num_slots)
            encoder = encoder.scatter(0, self.input_index, self.input_weight).view(self.in_features, self.num_slots)
        z = torch.addmm(self.bias, x, encoder).split([size for size, _ in self.blocks], 1)
        act, output_act = _ACTIVATIONS[self.activation], _ACTIVATIONS[self.output_activation]
        h = self._activate(z[0], *self.blocks[0], act, output_act)
        if self.slab_sizes:
            slabs = self.hidden_weight.new_zeros(1).expand(sum(self.slab_sizes))
            slabs = slabs.scatter(0, self.hidden_index, self.hidden_weight).split(self.slab_sizes)
            for zg, slab, (size, hidden) in zip(z[1:], slabs, self.blocks[1:]):
                zg = torch.addmm(zg, h, slab.view(-1, size))
                h = torch.cat([h, self._activate(zg, size, hidden, act, output_act)], 1)
        y = h.index_select(1, self.output_slot)
        if hasattr(self, "decoder_weight"):
            y = torch.addmm(self.decoder_bias, y, self.decoder_weight.t())
        return y

    @staticmethod
    def _activate(z: Tensor, size: int, hidden: int, act: Activation, output_act: Activation) -> Tensor:
        """The first ``hidden`` columns of ``z`` are hidden neurons, the rest outputs."""
        if hidden == size:
            return act(z)
        if hidden == 0:
            return output_act(z)
        zh, zo = z.split([hidden, size - hidden], 1)
        return torch.cat([act(zh), output_act(zo)], 1)

    def extra_repr(self) -> str:
        edges = self.hidden_weight.numel() + (self.input_weight.numel() if hasattr(self, "input_weight") else 0)
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, neurons={self.num_slots}, "
            f"edges={edges}, generations={len(self.blocks)}"
        )


def _check_net(net: object) -> FreeNet:
    if not isinstance(net, FreeNet):
        raise NCGError(f"net must be a FreeNet, got {type(net).__name__}")
    return net


def to_module(net: FreeNet) -> FreeNetModule:
    """A plain PyTorch module that computes exactly ``net(x)``, with no ncg code at run time.

    Parameters
    ----------
    net : FreeNet
        Any encoder (``graph``, ``linear`` or ``random``), decoder and activations. Its current
        weights are copied: later training of ``net`` does not change the module.

    Returns
    -------
    FreeNetModule
        In eval mode, without gradients, on the CPU, with ``net``'s dtype; its forward maps
        ``[B, in_features]`` (or ``[B, ...]``) to ``[B, out_features]``. See the module
        docstring for the layout and its cost.

    Raises
    ------
    NCGError
        ``net`` is not a FreeNet.

    Examples
    --------
    >>> import torch
    >>> from ncg import NCG, FreeNet
    >>> net = FreeNet(NCG.complete(6, num_outputs=2, seed=0), in_features=3, out_features=4, activation="tanh")
    >>> module = to_module(net)
    >>> module
    FreeNetModule(in_features=3, out_features=4, neurons=6, edges=15, generations=6)
    >>> x = torch.randn(5, 3)
    >>> torch.allclose(module(x), net(x), atol=1e-6)
    True
    """
    net = _check_net(net)
    edge_index = net.edge_index.detach().cpu()
    weight, bias = net.weight.detach().cpu(), net.neuron_bias().detach().cpu()
    n = net.num_neurons
    is_input = torch.zeros(n, dtype=torch.bool)
    is_input[net.inputs.cpu()] = True
    is_output = torch.zeros(n, dtype=torch.bool)
    is_output[net.outputs.cpu()] = True
    src, dst = edge_index
    from_input = is_input[src]
    # generations of the graph among neurons: input edges all enter through W_in
    neuron_ids = torch.nonzero(~is_input).flatten()
    m = int(neuron_ids.numel())
    local = torch.full((n,), -1, dtype=torch.long)
    local[neuron_ids] = torch.arange(m)
    generation = topological_generations(torch.stack([local[src[~from_input]], local[dst[~from_input]]]), m)
    key = (generation * 2 + is_output[neuron_ids].long()) * n + net.order_position()[neuron_ids]
    neurons = neuron_ids[torch.argsort(key)]
    slot = torch.full((n,), -1, dtype=torch.long)
    slot[neurons] = torch.arange(m)
    sizes = torch.bincount(generation, minlength=1).tolist()
    hidden_counts = torch.bincount(generation[~is_output[neuron_ids]], minlength=len(sizes)).tolist()
    size = torch.tensor(sizes)
    start = torch.cumsum(size, 0) - size
    offset = torch.cumsum(start * size, 0) - start * size  # where each generation's slab begins
    hs, hd = slot[src[~from_input]], slot[dst[~from_input]]
    g = torch.repeat_interleave(torch.arange(len(sizes)), size)[hd]
    tables: dict[str, Tensor] = {"bias": bias[neurons].clone()}
    flat = offset[g] + hs * size[g] + hd - start[g]
    tables["hidden_index"] = flat.to(_index_dtype(int((start * size).sum())))
    tables["hidden_weight"] = weight[~from_input].clone()
    if net.encoder is None:
        feature = torch.full((n,), -1, dtype=torch.long)
        feature[net.inputs.cpu()] = torch.arange(net.in_features)
        flat = feature[src[from_input]] * m + slot[dst[from_input]]
        tables["input_index"] = flat.to(_index_dtype(net.in_features * m))
        tables["input_weight"] = weight[from_input].clone()
    else:
        tables["encoder_weight"] = net.encoder.weight.detach().cpu()[neurons].t().contiguous().to(weight.dtype)
    tables["output_slot"] = slot[net.outputs.cpu()]
    if isinstance(net.decoder, nn.Linear):
        tables["decoder_weight"] = net.decoder.weight.detach().cpu().to(weight.dtype).clone()
        tables["decoder_bias"] = net.decoder.bias.detach().cpu().to(weight.dtype).clone()
    blocks = tuple(zip(sizes, hidden_counts))
    return FreeNetModule(net, blocks, tables).eval().requires_grad_(False)


def _check_path(path: str | os.PathLike, suffix: str) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise NCGError(f"path must be a str or os.PathLike ending in {suffix!r}, got {type(path).__name__}")
    path = Path(path)
    if path.suffix != suffix:
        raise NCGError(f"path must end in {suffix!r}, got {str(path)!r}")
    return path


def _example_input(net: FreeNet) -> Tensor:
    return torch.zeros(_EXAMPLE_BATCH, net.in_features, dtype=net.weight.dtype)


def export_program(net: FreeNet, path: str | os.PathLike) -> Path:
    """Save ``net`` as a ``torch.export`` program (``.pt2``) with a dynamic batch dimension.

    Load and run it without ncg: ``torch.export.load(path).module()(x)`` with ``x``
    ``[B, in_features]``.

    Parameters
    ----------
    net : FreeNet
    path : str or os.PathLike
        The file to write; must end in ``.pt2``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NCGError
        ``net`` is not a FreeNet, or ``path`` does not end in ``.pt2``.

    Examples
    --------
    >>> import tempfile
    >>> import torch
    >>> from ncg import NCG, FreeNet
    >>> net = FreeNet(NCG.complete(4, num_outputs=2, seed=0), in_features=3)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     program = torch.export.load(export_program(net, Path(folder) / "net.pt2")).module()
    >>> x = torch.randn(7, 3)
    >>> torch.allclose(program(x), net(x), atol=1e-6)
    True
    """
    net = _check_net(net)
    path = _check_path(path, ".pt2")
    batch = torch.export.Dim("batch")
    program = torch.export.export(to_module(net), (_example_input(net),), dynamic_shapes=({0: batch},))
    torch.export.save(program, path)
    return path


def export_onnx(net: FreeNet, path: str | os.PathLike, opset_version: int = 17) -> Path:
    """Save ``net`` as an ONNX model with a dynamic batch dimension (needs the ``onnx`` package).

    The graph's input is ``x`` (``[batch, in_features]``, the net's float dtype), its output
    ``y`` (``[batch, out_features]``); run it with
    ``onnxruntime.InferenceSession(path).run(None, {"x": x})[0]``.

    Parameters
    ----------
    net : FreeNet
    path : str or os.PathLike
        The file to write; must end in ``.onnx``.
    opset_version : int, default 17
        ONNX opset; at least 11 (``ScatterElements``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    NCGError
        ``net`` is not a FreeNet, ``path`` does not end in ``.onnx``, or ``opset_version`` is
        not an int >= 11.
    ModuleNotFoundError
        The ``onnx`` package is not installed (``pip install "ncg[export]"``).

    Examples
    --------
    >>> export_onnx(None, "net.onnx")
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: net must be a FreeNet, got NoneType
    """
    net = _check_net(net)
    path = _check_path(path, ".onnx")
    if not isinstance(opset_version, int) or opset_version < 11:
        raise NCGError(f"opset_version must be an int >= 11, got {opset_version!r}")
    if importlib.util.find_spec("onnx") is None:
        raise ModuleNotFoundError('export_onnx needs the onnx package: pip install "ncg[export]"')
    with warnings.catch_warnings():  # the deprecated TorchScript exporter, chosen on purpose
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx\._internal\.torchscript_exporter")
        torch.onnx.export(
            to_module(net),
            (_example_input(net),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
            opset_version=opset_version,
            do_constant_folding=False,
        )
    return path
