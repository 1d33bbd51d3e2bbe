"""FreeNet: input encoder -> Neural Connectivity Graph -> decoder.

Neuron ``j`` computes ``h_j = act(b_j + enc_j(x) + sum_{i -> j} w_ij * h_i)``. The encoder feeds
every neuron; the decoder reads the output neurons. Hidden neurons use ``activation``; output
neurons use ``output_activation`` (identity by default, so they act as logits).

Examples
--------
>>> import torch
>>> from ncg import NCG, FreeNet
>>> net = FreeNet(NCG.complete(16, num_outputs=3, seed=0), in_features=5)
>>> net
FreeNet(in_features=5, neurons=16, edges=120, outputs=3, out_features=3, activation='relu')
>>> net(torch.randn(8, 5)).shape
torch.Size([8, 3])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ncg.activations import ACTIVATIONS, SquareReLU, needs_preactivation
from ncg.build import mlp_graph
from ncg.errors import NCGError
from ncg.graph import NCG
from ncg.kernels.blocked import blocked_forward, graph_input_forward
from ncg.kernels.reference import reference_forward
from ncg.kernels.sparse import csr_infer, graph_train_forward
from ncg.schedule import MODES, Plan, build_plan

__all__ = ["FreeNet", "SquareReLU", "EVALUATORS", "ExecutionPlan", "PATHS", "state_shapes"]

Evaluator = Callable[[Tensor, Tensor, Plan, Tensor, int], Tensor]

EVALUATORS: dict[str, Evaluator] = {
    "auto": blocked_forward, "density": blocked_forward, "dense": blocked_forward, "sparse": blocked_forward,
    "reference": reference_forward,
}
"""DAG evaluators by name; each maps ``(u [N, B], weight [E], plan, codes [N], push_from) -> h [N, B]``
(``push_from``: leading rows whose gradient nobody reads, :func:`~ncg.kernels.blocked.blocked_forward`).
``auto``, ``density``, ``dense`` and ``sparse`` are the blocked evaluator with each block's kind
chosen from its density, or forced (:func:`ncg.schedule.block_kinds`); ``reference`` is the
per-neuron loop."""

PATHS = ("auto", "blocked", "one_call")
"""What :attr:`FreeNet.path` asks of :meth:`FreeNet.forward`: the fastest path that applies
(``auto``), the blocked evaluator always (``blocked``: no compiled one-call kernel), or the
one-call kernels, raising :class:`~ncg.errors.NCGError` where they do not apply (``one_call``)."""


@dataclass(frozen=True)
class ExecutionPlan:
    """Which path :meth:`FreeNet.forward` runs, and why (:meth:`FreeNet.execution_plan`).

    Attributes
    ----------
    training : {"one_call", "blocked", "reference"}
        With autograd: one compiled call each way
        (:func:`~ncg.kernels.sparse.graph_train_forward`), the blocked evaluator
        (:func:`~ncg.kernels.blocked.blocked_forward`, fed by the input nodes or by a dense
        encoder), or the per-neuron loop.
    inference : {"one_call", "blocked", "reference"}
        Without autograd: one compiled call (:func:`~ncg.kernels.sparse.csr_infer`), or the
        same as ``training`` otherwise.
    reason : str
        Why, in words.
    path : str
        The :data:`PATHS` entry asked for.
    dense_blocks : int
        Blocks of the plan evaluated as dense slabs.

    The one-call kernels run where a compiled kernel exists for the tensors' device and dtype
    and the input needs no gradient; elsewhere ``forward`` takes the blocked path.
    """

    training: str
    inference: str
    reason: str
    path: str = "auto"
    dense_blocks: int = 0

ENCODERS = ("auto", "linear", "random", "graph")
DECODERS = ("auto", "identity", "linear")


def _check_activation(argument: str, name: str) -> None:
    if name not in ACTIVATIONS:
        raise NCGError(f"{argument} must be one of {sorted(ACTIVATIONS)}, got {name!r}")


class FreeNet(nn.Module):
    """A layer-free network over an :class:`~ncg.graph.NCG`.

    Parameters
    ----------
    graph : NCG
        Topology and initial edge weights and biases (copied into parameters).
    in_features : int
        Size of a flattened input sample.
    out_features : int, optional
        Size of the output; defaults to the number of output neurons.
    activation : str, default "relu"
        Hidden neurons' activation, a key of :data:`ncg.activations.ACTIVATIONS` (``relu``,
        ``tanh``, ``gelu``, ...).
    output_activation : str, default "identity"
        Output neurons' activation.
    encoder : {"auto", "linear", "random", "graph"}, default "auto"
        Learned linear map from the input to every neuron, a fixed random projection, or
        ``graph``: the graph's input nodes carry the features and every input connection is an
        edge (:func:`ncg.build.sparse_start`). ``auto`` is ``graph`` for a graph with input
        nodes and ``linear`` otherwise.
    decoder : {"auto", "identity", "linear"}, default "auto"
        ``identity`` reads the output neurons as the result; ``linear`` adds a learned
        ``Linear(num_outputs, out_features)``; ``auto`` picks identity when the sizes match.
    block_size : int, default 64
        Largest sequential block of the evaluation plan.
    evaluator : str, default "auto"
        A key of :data:`EVALUATORS`: ``auto`` evaluates each block dense (GEMM + compiled sweep)
        or sparse (a pass over its edges) from its density; ``dense`` / ``sparse`` force one.
    seed : int, optional
        Seeds the encoder / decoder initialisation.
    init_scale : float, optional
        Multiplies the graph's edge weights at construction. Default: 0.5 when the hidden
        activation is ``square_relu``, 1 otherwise: ``relu(z)^2`` compounds along a deep DAG, and
        with fan-in scaled weights a complete DAG of 1,024 such neurons overflows to inf on
        standard-normal inputs; halved weights keep its activations bounded. Pass 1.0 to keep
        the graph's weights exactly.

    Attributes
    ----------
    activation_hook : callable or None
        If set, called by :meth:`forward` with the detached activations ``[B, N]`` (neuron-id
        order); Free-Evolve uses it to record coactivation during training at no extra pass.
    path : {"auto", "blocked", "one_call"}
        Which path :meth:`forward` follows (:data:`PATHS`); :meth:`execution_plan` says which
        runs and why.
    """

    def __init__(
        self,
        graph: NCG,
        in_features: int,
        out_features: int | None = None,
        activation: str = "relu",
        output_activation: str = "identity",
        encoder: str = "auto",
        decoder: str = "auto",
        block_size: int = 64,
        evaluator: str = "auto",
        seed: int | None = None,
        init_scale: float | None = None,
        path: str = "auto",
    ) -> None:
        super().__init__()
        if not isinstance(graph, NCG):
            raise NCGError(f"graph must be an NCG, got {type(graph).__name__}")
        if not isinstance(in_features, int) or in_features < 1:
            raise NCGError(f"in_features must be a positive int, got {in_features!r}")
        _check_activation("activation", activation)
        _check_activation("output_activation", output_activation)
        if encoder not in ENCODERS:
            raise NCGError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if encoder == "auto":
            encoder = "graph" if graph.num_inputs else "linear"
        if (encoder == "graph") != bool(graph.num_inputs):
            raise NCGError(
                f"encoder={encoder!r} needs a graph {'with' if encoder == 'graph' else 'without'} input nodes; "
                f"this graph has {graph.num_inputs}"
            )
        if encoder == "graph" and graph.num_inputs != in_features:
            raise NCGError(f"the graph has {graph.num_inputs} input nodes but in_features={in_features}")
        if decoder not in DECODERS:
            raise NCGError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        if evaluator not in EVALUATORS:
            raise NCGError(f"evaluator must be one of {sorted(EVALUATORS)}, got {evaluator!r}")
        if not isinstance(block_size, int) or block_size < 1:
            raise NCGError(f"block_size must be an int >= 1, got {block_size!r}")
        if out_features is not None and (not isinstance(out_features, int) or out_features < 1):
            raise NCGError(f"out_features must be a positive int, got {out_features!r}")
        num_outputs = graph.num_outputs
        out_features = num_outputs if out_features is None else out_features
        if decoder == "auto":
            decoder = "identity" if out_features == num_outputs else "linear"
        if decoder == "identity" and out_features != num_outputs:
            raise NCGError(
                f"decoder='identity' needs out_features == number of output neurons ({num_outputs}), "
                f"got out_features={out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.activation, self.output_activation = activation, output_activation
        self.encoder_kind, self.decoder_kind = encoder, decoder
        self.block_size, self.evaluator = block_size, evaluator
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        # The graph encoder has no weights (input node f holds feature f): nothing of size N x F.
        self.encoder: nn.Linear | None = None
        if encoder != "graph":
            self.encoder = nn.Linear(in_features, graph.num_neurons, bias=False)
            self._init_encoder_rows(self.encoder.weight.data, gen)
            if encoder == "random":  # fixed: a buffer, so parameters() holds only what is trained
                rows = self.encoder.weight.detach()
                del self.encoder.weight
                self.encoder.register_buffer("weight", rows)
        self.decoder: nn.Module = nn.Identity()
        if decoder == "linear":
            self.decoder = nn.Linear(num_outputs, out_features)
            bound = num_outputs ** -0.5
            with torch.no_grad():
                self.decoder.weight.uniform_(-bound, bound, generator=gen)
                self.decoder.bias.uniform_(-bound, bound, generator=gen)
        self._cached: _Cached | None = None
        self._path = "auto"
        self.activation_hook: Callable[[Tensor], None] | None = None
        self.init_scale = ACTIVATIONS[activation].init_scale if init_scale is None else float(init_scale)
        self._load_graph(graph)
        if self.init_scale != 1.0:
            with torch.no_grad():
                self.weight.mul_(self.init_scale)
        self.path = path

    def _init_encoder_rows(self, rows: Tensor, generator: torch.Generator | None) -> None:
        with torch.no_grad():
            if self.encoder_kind == "random":
                rows.normal_(0.0, self.in_features ** -0.5, generator=generator)
            else:
                bound = self.in_features ** -0.5
                rows.uniform_(-bound, bound, generator=generator)

    # ------------------------------------------------------------------ graph state
    def encoder_rows(self) -> Tensor:
        """``[N, in_features]``: the weight from each input feature to each neuron. The graph
        encoder's is the fixed one-hot map onto the input nodes, built on demand (it is not
        stored: use it on small models only).

        Examples
        --------
        >>> from ncg.build import sparse_start
        >>> FreeNet(sparse_start(3, 2, 1, fan_in=2, seed=0), in_features=3).encoder_rows().sum(0)
        tensor([1., 1., 1.])
        """
        if self.encoder is not None:
            return self.encoder.weight
        rows = self.bias.new_zeros(self.num_neurons, self.in_features)
        rows[self.inputs, torch.arange(self.in_features, device=rows.device)] = 1.0
        return rows

    def _load_graph(self, graph: NCG) -> None:
        reference = self.encoder.weight if self.encoder is not None else getattr(self, "bias", None)
        device = reference.device if reference is not None else torch.device("cpu")
        dtype = reference.dtype if reference is not None else torch.get_default_dtype()
        self.weight = nn.Parameter(graph.weight.to(device, dtype).clone())
        self.bias = nn.Parameter(graph.bias[_non_inputs(graph.num_neurons, graph.inputs)].to(device, dtype))
        for name in ("edge_index", "outputs", "order", "neuron_ids", "inputs"):
            self.register_buffer(name, getattr(graph, name).to(device).clone())
        # The topology constraint (ncg.layers) is read by the graph edits alone, on the CPU; it is
        # not in the state_dict (checkpoints and GraphML store it with the graph).
        self.layer, self.allowed_layers = (None if t is None else t.cpu().clone() for t in graph.constraint.values())
        self._cached = None

    @property
    def num_neurons(self) -> int:
        """Number of neurons ``N``."""
        return int(self.order.numel())

    @property
    def bias_neurons(self) -> Tensor:
        """LongTensor ``[N - F]``: the neuron of each entry of the parameter ``bias``, the
        non-input neurons in increasing id. An input node has no bias (its value is its feature),
        so ``bias[k]`` is the bias of neuron ``bias_neurons[k]``; with no input nodes it is
        ``arange(N)``.

        Examples
        --------
        >>> from ncg.build import sparse_start
        >>> net = FreeNet(sparse_start(3, 2, 1, fan_in=2, seed=0), in_features=3)
        >>> net.inputs.tolist(), net.bias_neurons.tolist(), net.bias.shape
        ([0, 1, 2], [3, 4, 5], torch.Size([3]))
        """
        return _non_inputs(self.num_neurons, self.inputs)

    def neuron_bias(self) -> Tensor:
        """``[N]``: every neuron's bias in neuron-id order, 0 at the input nodes; differentiable
        (its gradient flows into the parameter ``bias``).

        Examples
        --------
        >>> from ncg.build import sparse_start
        >>> FreeNet(sparse_start(3, 2, 1, fan_in=2, seed=0), in_features=3).neuron_bias().shape
        torch.Size([6])
        """
        return self.bias.new_zeros(self.num_neurons).index_put((self.bias_neurons,), self.bias)

    @property
    def graph(self) -> NCG:
        """A detached snapshot of the current topology, weights and biases."""
        return NCG(
            self.edge_index.detach().cpu().clone(),
            self.num_neurons,
            self.outputs.cpu().clone(),
            weight=self.weight.detach().cpu().clone(),
            bias=self.neuron_bias().detach().cpu(),
            order=self.order.cpu().clone(),
            neuron_ids=self.neuron_ids.cpu().clone(),
            validate=False,
            inputs=self.inputs.cpu().clone(),
            layer=self.layer,
            allowed_layers=self.allowed_layers,
        )

    def set_graph(self, graph: NCG, neuron_map: Tensor | None = None) -> None:
        """Replace the topology (and edge weights / biases) with ``graph``.

        Parameters
        ----------
        graph : NCG
            The new graph; its number of outputs must equal the current one.
        neuron_map : Tensor, optional
            LongTensor ``[N_new]``: for each new neuron, the old neuron whose encoder row it
            keeps, or ``-1`` for a new neuron (freshly initialised row). Required when the
            number of neurons changes.

        Notes
        -----
        The parameters ``weight`` and ``bias`` (and the encoder's weight when neurons change)
        become new tensors: rebuild or remap the optimiser (see :func:`ncg.evolve.apply.rewire`).
        """
        if not isinstance(graph, NCG):
            raise NCGError(f"graph must be an NCG, got {type(graph).__name__}")
        if graph.num_inputs != self.inputs.numel():
            raise NCGError(f"the new graph has {graph.num_inputs} input nodes, the model has {self.inputs.numel()}")
        if graph.num_outputs != self.graph_num_outputs:
            raise NCGError(
                f"the new graph has {graph.num_outputs} outputs, the model reads {self.graph_num_outputs}"
            )
        if neuron_map is None and graph.num_neurons != self.num_neurons:
            raise NCGError(
                f"neuron_map is required when the number of neurons changes ({self.num_neurons} -> "
                f"{graph.num_neurons})"
            )
        if neuron_map is not None:
            neuron_map = torch.as_tensor(neuron_map, dtype=torch.long)
            if neuron_map.shape != (graph.num_neurons,):
                raise NCGError(
                    f"neuron_map must have shape [{graph.num_neurons}], got {list(neuron_map.shape)}"
                )
        if neuron_map is not None and self.encoder is not None:
            old = self.encoder.weight.data
            rows = old.new_empty(graph.num_neurons, self.in_features)
            self._init_encoder_rows(rows, None)
            kept = neuron_map >= 0
            rows[kept.to(old.device)] = old[neuron_map[kept].to(old.device)]
            self.encoder.weight = nn.Parameter(rows) if self.encoder_kind == "linear" else rows
            self.encoder.out_features = graph.num_neurons
        self._load_graph(graph)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load parameters and buffers; a state_dict of another topology (an evolved model)
        first resizes this model to the stored graph, as :meth:`set_graph` does.

        Examples
        --------
        >>> from ncg.evolve import Edit, apply_edits
        >>> net = FreeNet(NCG.complete(5, num_outputs=2), in_features=3)
        >>> small, _ = apply_edits(net.graph, [Edit("remove_neuron", 0, -1)])
        >>> evolved = FreeNet(small, in_features=3)
        >>> _ = net.load_state_dict(evolved.state_dict())
        >>> net.num_neurons, net.edge_index.shape[1]
        (4, 6)

        Files of versions that stored a bias for every neuron, input nodes included, load too:
        their input nodes' (unused) entries are dropped.
        """
        order, inputs = state_dict.get("order", self.order), state_dict.get("inputs", self.inputs)
        bias = state_dict.get("bias")
        if isinstance(bias, Tensor) and inputs.numel() and bias.shape == order.shape:  # the older [N] bias
            state_dict = {**state_dict, "bias": bias[_non_inputs(order.numel(), inputs.to(bias.device))]}
        stored = state_dict.get("edge_index"), state_dict.get("bias")
        if all(isinstance(t, Tensor) for t in stored) and (
            stored[0].shape != self.edge_index.shape or stored[1].shape != self.bias.shape
            or not torch.equal(stored[0].cpu(), self.edge_index.cpu())
        ):
            try:
                num_neurons, inputs = int(state_dict["order"].numel()), state_dict.get("inputs", self.inputs).cpu()
                bias = torch.zeros(num_neurons, dtype=stored[1].dtype)
                bias[_non_inputs(num_neurons, inputs)] = stored[1].detach().cpu()
                graph = NCG(
                    state_dict["edge_index"].cpu(), num_neurons, state_dict["outputs"].cpu(),
                    weight=state_dict["weight"].detach().cpu(), bias=bias, order=state_dict["order"].cpu(),
                    neuron_ids=state_dict["neuron_ids"].cpu(), inputs=inputs, unreachable="ignore",
                )
            except (KeyError, RuntimeError, NCGError) as exc:
                raise NCGError(
                    f"this state_dict holds another topology that cannot be rebuilt ({exc}); "
                    "save and load whole models with ncg.save_freenet / ncg.load_freenet"
                ) from exc
            changed = graph.num_neurons != self.num_neurons
            self.set_graph(graph, neuron_map=torch.full((graph.num_neurons,), -1) if changed else None)
        if self.encoder is None and "encoder.weight" in state_dict:  # the stored one-hot of older versions
            state_dict = {k: v for k, v in state_dict.items() if k != "encoder.weight"}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def graph_num_outputs(self) -> int:
        """Number of output neurons the decoder reads."""
        return int(self.outputs.numel())

    def plan(self) -> tuple[Plan, Tensor]:
        """The evaluation plan and per-position activation codes, cached until the graph, the
        block size, the evaluator or an activation changes."""
        cached = self._state()
        return cached.plan, cached.codes

    def execution_plan(self) -> ExecutionPlan:
        """Which path :meth:`forward` runs on this topology, with and without autograd, and why.

        Examples
        --------
        >>> from ncg.build import sparse_start
        >>> net = FreeNet(sparse_start(6, 4, 2, fan_in=2, seed=0), in_features=6)
        >>> net.execution_plan().training
        'one_call'
        >>> net.path = "blocked"
        >>> net.execution_plan().training, net.execution_plan().reason
        ('blocked', "path='blocked' asked for")
        >>> FreeNet(NCG.complete(4, num_outputs=2), in_features=3).execution_plan().inference
        'blocked'
        """
        return self._state().execution

    @property
    def path(self) -> str:
        """The :data:`PATHS` entry :meth:`forward` follows; set it to force a path (benchmarks,
        tests). ``one_call`` raises :class:`~ncg.errors.NCGError` on a net it does not apply to."""
        return self._path

    @path.setter
    def path(self, value: str) -> None:
        if value not in PATHS:
            raise NCGError(f"path must be one of {PATHS}, got {value!r}")
        self._path, self._cached = value, None
        if value != "auto":
            self.execution_plan()

    def _state(self) -> _Cached:
        ei = self.edge_index
        key = (id(ei), ei._version, id(self.outputs), self.outputs._version, id(self.inputs), ei.device,
               self.block_size, self.evaluator, self.activation, self.output_activation, self._path)
        if self._cached is None or self._cached.key != key:
            # Normal tensors even under torch.inference_mode(): the plan outlives the call, and
            # training after an inference-mode evaluation must be able to save them for backward.
            with torch.inference_mode(False):
                mode = self.evaluator if self.evaluator in MODES else "auto"
                plan = build_plan(ei, self.num_neurons, self.block_size, tie_break=self.order_position(), mode=mode)
                codes = torch.full((self.num_neurons,), ACTIVATIONS[self.activation].code, dtype=torch.uint8)
                codes[self.outputs.cpu()] = ACTIVATIONS[self.output_activation].code
                codes[self.inputs.cpu()] = ACTIVATIONS["identity"].code
                plan, codes = plan.to(ei.device), codes[plan.perm].to(ei.device)
                fast = _FastPaths.of(plan, codes, self.inputs, self.outputs)
                execution = _execution(fast, plan, self.encoder_kind, self.evaluator, self._path)
                self._cached = _Cached(key, plan, codes, fast, execution)
        return self._cached

    def order_position(self) -> Tensor:
        """``position[v]``: neuron ``v``'s place in the stored topological order."""
        position = torch.empty_like(self.order)
        position[self.order] = torch.arange(self.num_neurons, device=self.order.device)
        return position.cpu()

    # ------------------------------------------------------------------ evaluation
    def _flatten(self, x: Tensor) -> Tensor:
        x = x.flatten(1) if x.dim() > 1 else x.reshape(1, -1)
        if x.shape[1] != self.in_features:
            raise NCGError(
                f"input has {x.shape[1]} features per sample, the model expects in_features={self.in_features}"
            )
        return x

    def _neuron_states(
        self, x: Tensor, input_grads: bool = False, outputs_only: bool = False,
    ) -> tuple[Tensor | None, Tensor, Plan]:
        """``(u, h, plan)``: external input ``u`` (encoder + bias) and activations ``h``, both
        ``[N, B]`` in position order. The backward skips the input nodes' gradient unless ``x``
        needs it or ``input_grads`` asks for their rows of ``u.grad``; without ``input_grads``, a
        network with input nodes builds no ``u`` (None is returned in its place), and with
        ``outputs_only`` its ``h`` is the output neurons' rows alone (in decoder order)."""
        cached = self._state()
        plan, codes, fast = cached.plan, cached.codes, cached.fast
        x = self._flatten(x)
        push_from = 0 if input_grads or x.requires_grad else fast.leading_inputs
        dtype = self.weight.dtype
        bias = fast.position_bias(self.bias, plan)
        if self.encoder_kind == "graph" and not input_grads and self.evaluator != "reference":
            with torch.autocast(device_type=x.device.type, enabled=False):
                h = graph_input_forward(x, bias, self.weight, plan, codes, fast.input_pos, push_from,
                                        fast.inputs_in_order, fast.out_pos if outputs_only else None)
            return None, h, plan
        if self.encoder_kind == "graph":  # input node f holds feature f; its bias is unused
            u = bias.unsqueeze(1).expand(-1, x.shape[0])
            u = u.index_copy(0, fast.input_pos, x.to(dtype).t().contiguous())
        else:
            enc = self.encoder.weight if plan.identity else self.encoder.weight[plan.perm]
            u = torch.addmm(bias.unsqueeze(1), enc, x.to(enc.dtype).t()).to(dtype)
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = EVALUATORS[self.evaluator](u, self.weight, plan, codes, push_from)
        return u, h, plan

    def forward_states(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(output, u, h)`` with gradients: the output, each neuron's external input ``u``
        (encoder + bias) and activation ``h``, both ``[N, B]`` in position order
        (``plan().position[v]`` is neuron ``v``'s row).

        ``u`` enters the pre-activation additively (``z = u + W^T h``), so after
        ``u.retain_grad()`` and a backward pass ``u.grad`` is ``dL/dz``; the gradient of a
        missing edge ``i -> j`` at weight 0 is then ``h_i . (dL/dz_j)`` (RigL's grow score).

        Examples
        --------
        >>> import torch
        >>> from ncg import NCG, FreeNet
        >>> out, u, h = FreeNet(NCG.complete(4, num_outputs=2), in_features=3).forward_states(torch.ones(5, 3))
        >>> out.shape, u.shape, h.shape
        (torch.Size([5, 2]), torch.Size([4, 5]), torch.Size([4, 5]))
        """
        u, h, plan = self._neuron_states(x, input_grads=True)
        return self.decoder(h[plan.position[self.outputs]].t()), u, h

    def forward(self, x: Tensor) -> Tensor:
        """Map a batch ``[B, ...]`` (flattened to ``[B, in_features]``) to ``[B, out_features]``.

        Without autograd (``torch.inference_mode()`` or ``torch.no_grad()``), a network whose
        input nodes are graph nodes and whose plan is all sparse (a pruned whole-network
        FreeNet) runs in one compiled call (:func:`~ncg.kernels.sparse.csr_infer`): its cost
        follows its edges, with no ``[N, B]`` tensor and no Python per block. With autograd, such
        a network whose input nodes lead the position order in feature order (and whose
        activations' derivatives are functions of ``h``) trains in one compiled call each way
        (:func:`~ncg.kernels.sparse.graph_train_forward`). :meth:`execution_plan` names the path
        and why; :attr:`path` forces one.
        """
        if not torch.is_grad_enabled() and self.activation_hook is None:
            out = self._infer(x)
            if out is not None:
                return self.decoder(out)
        one_call = self._one_call(x, states=self.activation_hook is not None)
        if one_call is not None:
            out, h = one_call
            if h is not None:
                self.activation_hook(h[self.plan()[0].position].t())
            return self.decoder(out.t())
        outputs_only = self.activation_hook is None and self.encoder_kind == "graph" and self.evaluator != "reference"
        _, h, plan = self._neuron_states(x, outputs_only=outputs_only)
        if outputs_only:
            return self.decoder(h.t())
        if self.activation_hook is not None:
            self.activation_hook(h.detach()[plan.position].t())
        return self.decoder(h[plan.position[self.outputs]].t())

    def _one_call(self, x: Tensor, states: bool) -> tuple[Tensor, Tensor | None] | None:
        """``(out, h)`` from the one-call training kernel: the output rows ``[K, B]`` (decoder
        order) and, with ``states``, every row's ``h`` (``[N, B]``, position order, no gradient;
        else None); or None where it does not apply (a dense encoder, a dense block, input nodes
        out of feature order, an activation that needs ``z``, ``x`` that needs a gradient,
        another device or dtype)."""
        cached = self._state()
        if cached.execution.training != "one_call":
            return None
        plan, codes, fast = cached.plan, cached.codes, cached.fast
        x = self._flatten(x)
        if x.requires_grad:
            return None
        result = graph_train_forward(x.to(self.weight.dtype), self.bias, self.weight, plan, codes, fast.bias_pos,
                                     fast.out_pos, check=not fast.train_checked, states=states)
        if result is None:
            return None
        fast.train_checked = True
        return result if states else (result, None)

    def _infer(self, x: Tensor) -> Tensor | None:
        """The output neurons' ``[B, K]`` from the one-call inference kernel, or None where it
        does not apply (a dense encoder, dense blocks, another device or dtype)."""
        cached = self._state()
        if cached.execution.inference != "one_call":
            return None
        plan, codes, fast = cached.plan, cached.codes, cached.fast
        x = self._flatten(x)
        if x.dtype != self.weight.dtype or not x.is_contiguous():
            x = x.to(self.weight.dtype).contiguous()
        bias, w_csr = fast.parameters(self.bias, self.weight, plan)
        out = csr_infer(x, plan, bias, w_csr, codes, fast.input_pos, fast.out_pos, check=not fast.checked)
        fast.checked = fast.checked or out is not None
        return out

    @torch.no_grad()
    def neuron_activations(self, x: Tensor) -> Tensor:
        """Activations of every neuron, ``[B, N]`` in neuron-id order (no gradient).

        Examples
        --------
        >>> import torch
        >>> from ncg import NCG, FreeNet
        >>> FreeNet(NCG.complete(4), in_features=2).neuron_activations(torch.ones(3, 2)).shape
        torch.Size([3, 4])
        """
        _, h, plan = self._neuron_states(x)
        return h[plan.position].t()

    # ------------------------------------------------------------------ bridges
    @classmethod
    def from_mlp(cls, mlp: nn.Sequential, **kwargs) -> FreeNet:
        """A FreeNet that computes exactly what a layered MLP computes.

        ``mlp`` is an ``nn.Sequential`` of ``nn.Linear`` layers, each optionally followed by one
        activation module of :data:`ncg.activations.ACTIVATIONS` (ReLU, Tanh, GELU, ... or
        :class:`SquareReLU`) with its default arguments (GELU's exact form, ELU's alpha 1,
        LeakyReLU's slope 0.01). Every unit
        becomes a neuron; layer ``l`` feeds layer ``l + 1`` through edges carrying the weights;
        the encoder holds the first layer's weights (zero rows for deeper neurons); the last
        layer's units are the outputs. The graph is :func:`ncg.build.mlp_graph`'s.

        Examples
        --------
        >>> import torch
        >>> from torch import nn
        >>> mlp = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
        >>> net = FreeNet.from_mlp(mlp)
        >>> x = torch.randn(5, 4)
        >>> torch.allclose(net(x), mlp(x), atol=1e-6)
        True
        """
        read = mlp_graph(mlp)
        kwargs.setdefault("activation", read.activation or "relu")
        kwargs.setdefault("init_scale", 1.0)  # the MLP's weights, exactly
        kwargs.setdefault("output_activation", read.output_activation)
        net = cls(read.graph, read.in_features, **kwargs)
        with torch.no_grad():
            net.encoder.weight.zero_()
            net.encoder.weight[: read.first_weight.shape[0]] = read.first_weight
        return net

    def num_parameters(self) -> int:
        """PyTorch's count, ``sum(p.numel() for p in self.parameters())``: the edge weights, the
        biases of the non-input neurons (an input node has none: its value is its feature), a
        learned dense encoder's ``N x in_features`` weights and a linear decoder's weights and
        biases. A fixed encoder (``random``, a buffer; ``graph``, nothing stored) adds nothing.

        Examples
        --------
        >>> FreeNet(NCG.complete(5, num_outputs=2), in_features=3).num_parameters()  # 10 + 5 + 5 x 3
        30
        >>> from ncg.build import sparse_start
        >>> FreeNet(sparse_start(3, 2, 1, fan_in=2, seed=0), in_features=3).num_parameters()  # 7 + 3
        10
        """
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, neurons={self.num_neurons}, edges={self.edge_index.shape[1]}, "
            f"outputs={self.graph_num_outputs}, out_features={self.out_features}, activation={self.activation!r}"
        )

    def __repr__(self) -> str:
        return f"FreeNet({self.extra_repr()})"

    def config(self) -> dict:
        """The constructor arguments that, with a graph, rebuild this model."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "activation": self.activation,
            "output_activation": self.output_activation,
            "encoder": self.encoder_kind,
            "decoder": self.decoder_kind,
            "block_size": self.block_size,
            "evaluator": self.evaluator,
            "init_scale": self.init_scale,
        }


def state_shapes(graph: NCG, config: dict) -> dict[str, tuple[int, ...]]:
    """The shape of every ``state_dict`` entry of ``FreeNet(graph, **config)``, found without
    allocating its parameters (the model is built on the ``meta`` device).

    A loader compares these with the arrays a file actually holds before it builds the model,
    so a config declaring ``in_features=10**10`` is refused instead of allocated.

    Parameters
    ----------
    graph : NCG
    config : dict
        Keyword arguments of :class:`FreeNet` (as :meth:`FreeNet.config` returns them).

    Raises
    ------
    NCGError
        ``config`` is no dict, names an unknown argument or a value :class:`FreeNet` refuses.

    Examples
    --------
    >>> state_shapes(NCG.complete(3), {"in_features": 10**10})["encoder.weight"]
    (3, 10000000000)
    """
    if not isinstance(config, dict):
        raise NCGError(f"a FreeNet config must be a dict, got {type(config).__name__}")
    try:
        with torch.device("meta"):
            model = FreeNet(graph, **config)
    except TypeError as exc:  # an unknown or missing argument
        raise NCGError(f"config {config} does not build a FreeNet: {exc}") from None
    except (RuntimeError, OverflowError) as exc:  # a size past what a tensor can hold
        raise NCGError(f"config {config} declares a model larger than a tensor can hold: {exc}") from None
    return {name: tuple(value.shape) for name, value in model.state_dict().items()}


@dataclass
class _FastPaths:
    """What the fast paths need of one plan, computed once per topology: whether every block is
    sparse, the rows of the input nodes and outputs, how many leading rows are input nodes
    (whether they are rows ``0..F-1`` in feature order); and what they learn on the way: whether
    the compiled kernels have validated the plan's structure, and the weights gathered in CSR
    order."""

    all_sparse: bool
    input_pos: Tensor
    bias_pos: Tensor
    out_pos: Tensor
    leading_inputs: int
    inputs_in_order: bool
    trains_in_one_call: bool
    checked: bool = False
    train_checked: bool = False
    _versions: tuple = ()
    _parameters: tuple[Tensor, Tensor] | None = None

    def parameters(self, bias: Tensor, weight: Tensor, plan: Plan) -> tuple[Tensor, Tensor]:
        """``bias`` (the parameter: one entry per non-input neuron) as ``[N]`` in position order,
        0 at the input nodes, and ``weight`` in CSR slot order, gathered again only after either
        changed (an optimiser step bumps a tensor's version; an edit, ``.to()`` or
        ``.double()`` replaces its storage): at batch 1 the gather of 40k weights costs more
        than the network's multiply-adds."""
        versions = tuple((id(t), t._version, t.data_ptr(), t.dtype) for t in (bias, weight))
        if self._versions != versions or self._parameters is None:
            with torch.no_grad():
                self._parameters = (self.position_bias(bias.detach(), plan), weight.detach()[plan.csr_edge])
            self._versions = versions
        return self._parameters

    def position_bias(self, bias: Tensor, plan: Plan) -> Tensor:
        """The parameter ``bias`` (one entry per non-input neuron) as ``[N]`` in position order,
        0 in the input nodes' rows; differentiable."""
        if self.input_pos.numel():
            return bias.new_zeros(plan.perm.numel()).index_put((self.bias_pos,), bias)
        return bias if plan.identity else bias[plan.perm]

    @classmethod
    def of(cls, plan: Plan, codes: Tensor, inputs: Tensor, outputs: Tensor) -> _FastPaths:
        """``codes``: the activation code of each position."""
        input_pos = plan.position[inputs].contiguous()
        count = input_pos.numel()
        lead = count if count and int(input_pos.max()) == count - 1 else 0
        in_order = bool(lead) and torch.equal(input_pos, torch.arange(count, device=input_pos.device))
        bias_pos = plan.position[_non_inputs(plan.perm.numel(), inputs)].contiguous()
        all_sparse = all(kind == "sparse" for kind in plan.kinds)
        one_call = all_sparse and in_order and not needs_preactivation(codes[count:])
        return cls(all_sparse, input_pos, bias_pos, plan.position[outputs].contiguous(), lead, in_order, one_call)


@dataclass(frozen=True)
class _Cached:
    """The plan of one topology and configuration (``key``), with what the paths need of it."""

    key: tuple
    plan: Plan
    codes: Tensor
    fast: _FastPaths
    execution: ExecutionPlan


def _execution(fast: _FastPaths, plan: Plan, encoder: str, evaluator: str, path: str) -> ExecutionPlan:
    """The :class:`ExecutionPlan` of a plan whose fast-path facts are ``fast``."""
    dense = plan.kinds.count("dense")
    if evaluator == "reference":
        chosen = ExecutionPlan("reference", "reference", "evaluator='reference': the per-neuron loop", path, dense)
    elif encoder != "graph":
        chosen = ExecutionPlan("blocked", "blocked", f"a {encoder} encoder feeds every neuron: one matrix product, "
                               "then the blocked evaluator", path, dense)
    elif path == "blocked":
        chosen = ExecutionPlan("blocked", "blocked", "path='blocked' asked for", path, dense)
    elif not fast.all_sparse:
        chosen = ExecutionPlan("blocked", "blocked", f"{dense} of {len(plan.kinds)} blocks dense: the one-call "
                               "kernels need every block sparse", path, dense)
    elif not fast.inputs_in_order:
        chosen = ExecutionPlan("blocked", "one_call", "every block sparse, but the input nodes do not lead the "
                               "position order in feature order, which training in one call needs", path, dense)
    elif not fast.trains_in_one_call:
        chosen = ExecutionPlan("blocked", "one_call", "every block sparse, but an activation's derivative needs "
                               "its pre-activation, which training in one call does not keep", path, dense)
    else:
        chosen = ExecutionPlan("one_call", "one_call", "every block sparse and the input nodes leading in feature "
                               "order: one compiled call each way", path, dense)
    if path == "one_call" and chosen.training != "one_call":
        raise NCGError(f"path='one_call' does not apply to this net: {chosen.reason}")
    return chosen


def _non_inputs(num_neurons: int, inputs: Tensor) -> Tensor:
    """The neurons other than ``inputs``, in increasing id: those that hold a bias."""
    keep = torch.ones(num_neurons, dtype=torch.bool, device=inputs.device)
    keep[inputs] = False
    return keep.nonzero().squeeze(1)
