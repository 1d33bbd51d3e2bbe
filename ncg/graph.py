"""The Neural Connectivity Graph: a plain container for a DAG of neurons.

An :class:`NCG` holds structure and values only: ``edge_index`` (``[2, E]``, source -> target),
one weight per edge, one bias per neuron, the output neurons read by the decoder, a topological
order, and stable neuron ids that survive edits. Algorithms that evaluate or edit it live elsewhere
(:mod:`ncg.schedule`, :mod:`ncg.kernels`, :mod:`ncg.evolve`).

Every neuron receives the input encoder, so every neuron is reachable from the inputs. Output
neurons are the ones the decoder reads; a *hidden* neuron is any other neuron. Optionally some
nodes are *input nodes* (``inputs``): node ``inputs[f]`` carries input feature ``f`` and has no
incoming edge, so every input connection is an edge of the graph with its own weight and the
whole network is one sparse DAG (a FreeNet built on such a graph uses ``encoder="graph"``).
Optionally a graph carries a topology constraint (:mod:`ncg.layers`): a layer per neuron
(``layer``) and the layer pairs an edge may join (``allowed_layers``); edits keep it, and an
edge it forbids is an error.

Examples
--------
>>> from ncg import NCG
>>> g = NCG.complete(4, num_outputs=1, seed=0)
>>> g
NCG(neurons=4, edges=6, outputs=1)
>>> g.edge_index.tolist()
[[0, 0, 0, 1, 1, 2], [1, 2, 3, 2, 3, 3]]
"""
from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import breadth_first_order
from torch import Tensor

from ncg.errors import (
    DuplicateEdgeError,
    EdgeIndexError,
    NCGError,
    NonFiniteError,
    SelfLoopError,
    UnreachableNeuronError,
    UnreachableNeuronWarning,
)
from ncg.layers import allows
from ncg.schedule import topological_generations

__all__ = ["NCG", "init_edge_weights"]


def init_edge_weights(
    edge_index: Tensor, num_neurons: int, generator: torch.Generator | None = None
) -> Tensor:
    """Uniform weights scaled by each target's fan-in, like ``nn.Linear``'s default.

    Each edge ``i -> j`` draws from ``U(-1/sqrt(d_j), 1/sqrt(d_j))`` where ``d_j`` is the
    in-degree of ``j``.

    Examples
    --------
    >>> import torch
    >>> w = init_edge_weights(torch.tensor([[0, 1], [2, 2]]), 3, torch.Generator().manual_seed(0))
    >>> bool((w.abs() <= 2 ** -0.5).all())
    True
    """
    indeg = torch.bincount(edge_index[1], minlength=num_neurons).clamp(min=1).float()
    bound = indeg.rsqrt()[edge_index[1]]
    u = torch.rand(edge_index.shape[1], generator=generator)
    return (2 * u - 1) * bound


def _check_index_tensor(name: str, value: Tensor, num_neurons: int) -> None:
    if value.dtype != torch.long:
        raise EdgeIndexError(f"{name} must be a LongTensor, got dtype {value.dtype}")
    if value.numel() and (int(value.min()) < 0 or int(value.max()) >= num_neurons):
        bad = value[(value < 0) | (value >= num_neurons)][0].item()
        raise EdgeIndexError(
            f"{name} refers to neuron {bad}, out of range for num_neurons={num_neurons}"
        )


class NCG:
    """A Neural Connectivity Graph: a DAG of neurons with per-edge weights.

    Parameters
    ----------
    edge_index : Tensor
        LongTensor ``[2, E]``; column ``e`` is the edge ``edge_index[0, e] -> edge_index[1, e]``.
    num_neurons : int
        Number of neurons ``N`` (ids ``0 .. N-1``).
    outputs : Tensor
        LongTensor ``[K]``: the output neurons, in the order the decoder reads them.
    weight : Tensor, optional
        ``[E]`` edge weights; fan-in scaled uniform (:func:`init_edge_weights`) if omitted.
    bias : Tensor, optional
        ``[N]`` neuron biases; zeros if omitted.
    order : Tensor, optional
        A topological order (``order[p]`` is the neuron at position ``p``); computed (by
        generation, then id) if omitted. Edits that add edges only go forward in this order.
    neuron_ids : Tensor, optional
        Stable ids that follow neurons through edits; ``arange(N)`` if omitted.
    inputs : Tensor, optional
        LongTensor ``[F]``: the input nodes, ``inputs[f]`` carrying feature ``f`` (none if
        omitted). Input nodes have no incoming edges and are neither hidden nor outputs.
    layer : Tensor, optional
        LongTensor ``[N]``: each neuron's layer (input nodes in layer 0); give it together with
        ``allowed_layers`` (see :mod:`ncg.layers`).
    allowed_layers : Tensor, optional
        Bool ``[L, L]``: ``allowed_layers[a, b]`` permits edges from layer ``a`` to layer ``b``.
        Omitted (with ``layer``): no constraint, the graph is layer-free.
    validate : bool, default True
        Run :meth:`validate` on construction.
    unreachable : {"warn", "raise", "ignore"}, default "warn"
        Passed to :meth:`validate`: what to do about hidden neurons that cannot reach an output.

    Examples
    --------
    >>> import torch
    >>> g = NCG(torch.tensor([[0, 1], [1, 2]]), num_neurons=3, outputs=torch.tensor([2]))
    >>> g.order.tolist(), g.roles.tolist()
    ([0, 1, 2], [0, 0, 1])
    """

    HIDDEN: int = 0
    OUTPUT: int = 1
    INPUT: int = 2

    def __init__(
        self,
        edge_index: Tensor,
        num_neurons: int,
        outputs: Tensor,
        weight: Tensor | None = None,
        bias: Tensor | None = None,
        order: Tensor | None = None,
        neuron_ids: Tensor | None = None,
        validate: bool = True,
        unreachable: str = "warn",
        inputs: Tensor | None = None,
        layer: Tensor | None = None,
        allowed_layers: Tensor | None = None,
    ) -> None:
        if not isinstance(num_neurons, int) or num_neurons < 1:
            raise NCGError(f"num_neurons must be a positive int, got {num_neurons!r}")
        self.num_neurons = num_neurons
        self.edge_index = torch.as_tensor(edge_index)
        self.outputs = torch.as_tensor(outputs)
        self.inputs = torch.zeros(0, dtype=torch.long) if inputs is None else torch.as_tensor(inputs)
        if (layer is None) != (allowed_layers is None):
            raise NCGError("give layer and allowed_layers together (a layer per neuron and the allowed layer "
                           "pairs), or neither for a layer-free graph")
        self.layer = None if layer is None else torch.as_tensor(layer)
        self.allowed_layers = None if allowed_layers is None else torch.as_tensor(allowed_layers)
        if validate:
            self._validate_structure()
        self.weight = (
            init_edge_weights(self.edge_index, num_neurons)
            if weight is None
            else _floating(torch.as_tensor(weight))
        )
        self.bias = torch.zeros(num_neurons) if bias is None else _floating(torch.as_tensor(bias))
        if order is None:
            generation = topological_generations(self.edge_index, num_neurons)
            order = torch.sort(generation * num_neurons + torch.arange(num_neurons)).indices
        self.order = torch.as_tensor(order)
        self.neuron_ids = torch.arange(num_neurons) if neuron_ids is None else torch.as_tensor(neuron_ids)
        if validate:
            self.validate(unreachable=unreachable)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def complete(
        cls, num_neurons: int, num_outputs: int = 1, seed: int | None = None
    ) -> NCG:
        """The FreeNets start: every neuron feeds every later one.

        The last ``num_outputs`` neurons are the outputs.

        Examples
        --------
        >>> NCG.complete(10, num_outputs=3).num_edges
        45
        """
        _check_outputs_count(num_outputs, num_neurons)
        src, dst = torch.triu_indices(num_neurons, num_neurons, offset=1)
        edge_index = torch.stack([src, dst])
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        return cls._forward(edge_index, num_neurons, num_outputs, gen, unreachable="warn")

    @classmethod
    def random_dag(
        cls,
        num_neurons: int,
        num_edges: int | None = None,
        density: float | None = None,
        num_outputs: int = 1,
        seed: int | None = None,
    ) -> NCG:
        """A random DAG keeping ``num_edges`` (or a ``density`` fraction) of the complete DAG.

        Edges go forward in ``arange(num_neurons)``; the last ``num_outputs`` neurons are outputs.
        Some hidden neurons may have no path to an output (no warning is issued for them).
        ``seed=None`` draws from torch's global generator, as :meth:`complete` does.

        Examples
        --------
        >>> g = NCG.random_dag(20, density=0.5, num_outputs=2, seed=0)
        >>> g.num_edges
        95
        """
        _check_outputs_count(num_outputs, num_neurons)
        total = num_neurons * (num_neurons - 1) // 2
        if (num_edges is None) == (density is None):
            raise NCGError("give exactly one of num_edges and density")
        if density is not None:
            if not 0.0 <= density <= 1.0:
                raise NCGError(f"density must be in [0, 1], got {density}")
            num_edges = round(density * total)
        if not 0 <= num_edges <= total:
            raise NCGError(f"num_edges must be in [0, {total}] for {num_neurons} neurons, got {num_edges}")
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        src, dst = torch.triu_indices(num_neurons, num_neurons, offset=1)
        keep = torch.randperm(total, generator=gen)[:num_edges].sort().values
        edge_index = torch.stack([src[keep], dst[keep]])
        return cls._forward(edge_index, num_neurons, num_outputs, gen, unreachable="ignore")

    @classmethod
    def _forward(
        cls, edge_index: Tensor, num_neurons: int, num_outputs: int,
        generator: torch.Generator | None, unreachable: str,
    ) -> NCG:
        """A graph whose edges go forward in ``arange(N)``, the last ``num_outputs`` neurons out."""
        return cls(
            edge_index,
            num_neurons,
            outputs=torch.arange(num_neurons - num_outputs, num_neurons),
            weight=init_edge_weights(edge_index, num_neurons, generator),
            order=torch.arange(num_neurons),
            unreachable=unreachable,
        )

    # ------------------------------------------------------------------ derived views
    @property
    def num_edges(self) -> int:
        """Number of edges ``E``."""
        return int(self.edge_index.shape[1])

    @property
    def num_outputs(self) -> int:
        """Number of output neurons ``K``."""
        return int(self.outputs.numel())

    @property
    def num_inputs(self) -> int:
        """Number of input nodes ``F`` (0 when the inputs reach neurons through an encoder)."""
        return int(self.inputs.numel())

    @property
    def num_input_edges(self) -> int:
        """Edges leaving input nodes (the input connections)."""
        if not self.num_inputs:
            return 0
        return int(self.is_input[self.edge_index[0]].sum())

    @property
    def is_input(self) -> Tensor:
        """Bool ``[N]``: which nodes are input nodes."""
        flags = torch.zeros(self.num_neurons, dtype=torch.bool)
        flags[self.inputs] = True
        return flags

    @property
    def roles(self) -> Tensor:
        """Role of each neuron: ``NCG.HIDDEN`` (0), ``NCG.OUTPUT`` (1) or ``NCG.INPUT`` (2)."""
        roles = torch.full((self.num_neurons,), self.HIDDEN, dtype=torch.int8)
        roles[self.outputs] = self.OUTPUT
        roles[self.inputs] = self.INPUT
        return roles

    @property
    def position(self) -> Tensor:
        """Inverse of :attr:`order`: ``position[v]`` is neuron ``v``'s place in the order."""
        position = torch.empty_like(self.order)
        position[self.order] = torch.arange(self.num_neurons)
        return position

    @property
    def constraint(self) -> dict[str, Tensor | None]:
        """``{"layer": ..., "allowed_layers": ...}`` (None for a layer-free graph): the keyword
        arguments that give another :class:`NCG` over the same neurons this graph's constraint."""
        return {"layer": self.layer, "allowed_layers": self.allowed_layers}

    def allows(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Bool per candidate edge ``src[k] -> dst[k]`` (neuron indices): whether the topology
        constraint permits it (always, for a layer-free graph); see :func:`ncg.layers.allows`.

        Examples
        --------
        >>> from ncg.build import sparse_start
        >>> g = sparse_start(2, 2, 1, density=1.0, layers=(1, 1), seed=0)
        >>> g.allows(np.array([0, 0]), np.array([2, 3])).tolist()
        [True, False]
        """
        return allows(self.layer, self.allowed_layers, src, dst)

    def clone(self) -> NCG:
        """A deep copy (tensors cloned, no re-validation)."""
        return NCG(
            self.edge_index.clone(),
            self.num_neurons,
            self.outputs.clone(),
            weight=self.weight.clone(),
            bias=self.bias.clone(),
            order=self.order.clone(),
            neuron_ids=self.neuron_ids.clone(),
            validate=False,
            inputs=self.inputs.clone(),
            **{k: None if v is None else v.clone() for k, v in self.constraint.items()},
        )

    def __repr__(self) -> str:
        inputs = f", inputs={self.num_inputs}" if self.num_inputs else ""
        layers = "" if self.allowed_layers is None else f", layers={self.allowed_layers.shape[0]}"
        return (f"NCG(neurons={self.num_neurons}, edges={self.num_edges}, outputs={self.num_outputs}"
                f"{inputs}{layers})")

    # ------------------------------------------------------------------ validation
    def _validate_structure(self) -> None:
        ei, n = self.edge_index, self.num_neurons
        if ei.dim() != 2 or ei.shape[0] != 2:
            raise EdgeIndexError(f"edge_index must have shape [2, E], got {list(ei.shape)}")
        _check_index_tensor("edge_index", ei, n)
        loops = ei[0] == ei[1]
        if loops.any():
            v = int(ei[0][loops][0])
            raise SelfLoopError(f"edge_index has a self-loop {v} -> {v}; an NCG must be acyclic")
        keys = ei[0] * n + ei[1]
        uniq, counts = torch.unique(keys, return_counts=True)
        if (counts > 1).any():
            k = int(uniq[counts > 1][0])
            raise DuplicateEdgeError(
                f"edge_index has the edge {k // n} -> {k % n} {int(counts.max())} times; "
                "each (source, target) pair may appear once"
            )
        if self.outputs.dim() != 1 or self.outputs.numel() == 0:
            raise EdgeIndexError(f"outputs must be a non-empty 1-D LongTensor, got shape {list(self.outputs.shape)}")
        _check_index_tensor("outputs", self.outputs, n)
        if torch.unique(self.outputs).numel() != self.outputs.numel():
            raise EdgeIndexError(f"outputs lists a neuron twice: {self.outputs.tolist()}")
        if self.inputs.dim() != 1:
            raise EdgeIndexError(f"inputs must be a 1-D LongTensor, got shape {list(self.inputs.shape)}")
        _check_index_tensor("inputs", self.inputs, n)
        if self.inputs.numel():
            if torch.unique(self.inputs).numel() != self.inputs.numel():
                raise EdgeIndexError("inputs lists a node twice")
            is_input = torch.zeros(n, dtype=torch.bool)
            is_input[self.inputs] = True
            if is_input[self.outputs].any():
                v = int(self.outputs[is_input[self.outputs]][0])
                raise EdgeIndexError(f"node {v} is both an input and an output")
            entering = is_input[ei[1]]
            if entering.any():
                s, t = ei[:, int(torch.nonzero(entering)[0])].tolist()
                raise EdgeIndexError(f"edge {s} -> {t} enters input node {t}; input nodes take no incoming edges")
        if self.allowed_layers is not None:
            self._validate_constraint()

    def _validate_constraint(self) -> None:
        """``layer`` and ``allowed_layers`` well formed, input nodes in layer 0, every edge allowed."""
        layer, allowed, n = self.layer, self.allowed_layers, self.num_neurons
        if allowed.dtype != torch.bool or allowed.dim() != 2 or allowed.shape[0] != allowed.shape[1]:
            raise NCGError(f"allowed_layers must be a square bool tensor [L, L], got dtype {allowed.dtype} "
                           f"and shape {list(allowed.shape)}")
        if layer.dtype != torch.long or layer.shape != (n,):
            raise NCGError(f"layer must be a LongTensor of shape [{n}], got dtype {layer.dtype} and shape "
                           f"{list(layer.shape)}")
        if n and (int(layer.min()) < 0 or int(layer.max()) >= allowed.shape[0]):
            raise NCGError(f"layer values must be in [0, {allowed.shape[0]}) (the rows of allowed_layers), got "
                           f"[{int(layer.min())}, {int(layer.max())}]")
        if self.inputs.numel() and (layer[self.inputs] != 0).any():
            v = int(self.inputs[layer[self.inputs] != 0][0])
            raise NCGError(f"input node {v} is in layer {int(layer[v])}; input nodes are in layer 0")
        src, dst = self.edge_index.numpy()
        forbidden = ~self.allows(src, dst)
        if forbidden.any():
            k = int(np.argmax(forbidden))
            raise NCGError(f"edge {src[k]} -> {dst[k]} joins layer {int(layer[src[k]])} to layer "
                           f"{int(layer[dst[k]])}, which allowed_layers forbids")

    def validate(self, unreachable: str = "warn") -> NCG:
        """Check every invariant; raise a specific :class:`~ncg.errors.NCGError` on failure.

        Checks: ``edge_index`` shape, dtype and range; no self-loops; no duplicate edges;
        acyclicity (:class:`~ncg.errors.CycleError` names the neurons on a cycle); ``order`` is a
        permutation consistent with the edges; weights ``[E]`` and biases ``[N]`` finite; outputs
        valid. A hidden neuron with no path to an output is useless: by default
        (``unreachable="warn"``) an :class:`~ncg.errors.UnreachableNeuronWarning` is issued;
        ``"raise"`` raises :class:`~ncg.errors.UnreachableNeuronError`; ``"ignore"`` skips the check.

        Returns
        -------
        NCG
            ``self``, for chaining.

        Examples
        --------
        >>> import torch
        >>> NCG(torch.tensor([[0, 1], [1, 0]]), 2, outputs=torch.tensor([1]))
        Traceback (most recent call last):
        ...
        ncg.errors.CycleError: edge_index contains a directed cycle through neurons [0, 1]; ...
        """
        if unreachable not in ("warn", "raise", "ignore"):
            raise NCGError(f"unreachable must be 'warn', 'raise' or 'ignore', got {unreachable!r}")
        self._validate_structure()
        n, e = self.num_neurons, self.num_edges
        for name, value, size in (("weight", self.weight, e), ("bias", self.bias, n)):
            if value.shape != (size,):
                raise NCGError(f"{name} must have shape [{size}], got {list(value.shape)}")
            if not torch.isfinite(value).all():
                bad = int(torch.nonzero(~torch.isfinite(value))[0])
                raise NonFiniteError(f"{name}[{bad}] is {value[bad].item()}; all values must be finite")
        if self.order.dtype != torch.long:
            raise NCGError(f"order must be a LongTensor, got dtype {self.order.dtype}")
        if self.order.shape != (n,) or not torch.equal(torch.sort(self.order).values, torch.arange(n)):
            raise NCGError(f"order must be a permutation of 0..{n - 1}, got {self.order.tolist()[:20]}")
        pos = self.position
        backward = pos[self.edge_index[0]] >= pos[self.edge_index[1]]
        if backward.any():
            # Edges all forward in a permutation prove acyclicity; otherwise name a cycle if any.
            topological_generations(self.edge_index, n)
            k = int(torch.nonzero(backward)[0])
            s, t = self.edge_index[:, k].tolist()
            raise NCGError(f"order is not topological: edge {s} -> {t} goes backward in it")
        if self.neuron_ids.shape != (n,):
            raise NCGError(f"neuron_ids must have shape [{n}], got {list(self.neuron_ids.shape)}")
        if torch.unique(self.neuron_ids).numel() != n:
            raise NCGError("neuron_ids must be unique: they name neurons across edits")
        if unreachable == "ignore":
            return self
        dead = torch.nonzero(~self.reaches_output() & ~self.is_input).flatten()
        if dead.numel():
            msg = (
                f"{dead.numel()} hidden neuron(s) cannot reach any output, e.g. {dead[:10].tolist()}; "
                "they cannot affect the result"
            )
            if unreachable == "raise":
                raise UnreachableNeuronError(msg)
            warnings.warn(msg, UnreachableNeuronWarning, stacklevel=2)
        return self

    def reaches_output(self) -> Tensor:
        """Bool ``[N]``: whether each neuron has a path to some output (outputs included).

        Input nodes without a path are allowed (an unused input feature); the check in
        :meth:`validate` skips them.

        Examples
        --------
        >>> import torch
        >>> g = NCG(torch.tensor([[0], [2]]), 3, outputs=torch.tensor([2]), validate=False)
        >>> g.reaches_output().tolist()
        [True, False, True]
        """
        n = self.num_neurons
        src, dst = self.edge_index.numpy()
        # Breadth-first search on the reversed graph from a virtual node that points at every output.
        rows = np.concatenate([dst, np.full(self.num_outputs, n)])
        cols = np.concatenate([src, self.outputs.numpy()])
        reversed_graph = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n + 1, n + 1))
        reached = breadth_first_order(reversed_graph, n, directed=True, return_predecessors=False)
        flags = torch.zeros(n + 1, dtype=torch.bool)
        flags[torch.from_numpy(reached)] = True
        return flags[:n]


def _floating(values: Tensor) -> Tensor:
    """``values`` as they are if floating point (float64 stays float64), else float32."""
    return values if values.is_floating_point() else values.float()


def _check_outputs_count(num_outputs: int, num_neurons: int) -> None:
    if not 1 <= num_outputs <= num_neurons:
        raise NCGError(f"num_outputs must be in [1, num_neurons={num_neurons}], got {num_outputs}")
