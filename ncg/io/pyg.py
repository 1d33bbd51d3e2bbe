"""PyTorch Geometric interop: an NCG as a ``torch_geometric.data.Data`` and back.

``torch_geometric`` is imported only when :func:`to_pyg` is called.
"""
from __future__ import annotations

import torch

from ncg.errors import NCGError
from ncg.graph import NCG
from ncg.io._common import graph_of
from ncg.model import FreeNet

__all__ = ["to_pyg", "from_pyg"]


def to_pyg(graph: NCG | FreeNet):
    """The NCG (of a FreeNet: its graph plus the encoder rows) as a ``torch_geometric.data.Data``.

    Returns
    -------
    torch_geometric.data.Data
        ``edge_index [2, E]``, ``edge_weight [E]``, ``bias [N]``, ``is_output`` and ``is_input``
        (bool ``[N]``), ``output_index [K]`` (the outputs in decoder order; PyG offsets it when
        batching, like ``edge_index``), ``input_index [F]`` (the input nodes in feature order),
        ``order [N]``, ``neuron_ids [N]`` and ``num_nodes``; for a FreeNet also ``x``, the
        encoder rows ``[N, in_features]`` as node features.

    See Also
    --------
    from_pyg

    Examples
    --------
    >>> from ncg import NCG
    >>> data = to_pyg(NCG.complete(4, num_outputs=2))
    >>> data
    Data(edge_index=[2, 6], edge_weight=[6], bias=[4], is_output=[4], is_input=[4], output_index=[2],
         input_index=[0], order=[4], neuron_ids=[4], num_nodes=4)
    """
    from torch_geometric.data import Data

    model, graph = graph, graph_of(graph, "to_pyg")
    extra = {} if model is graph else {"x": model.encoder_rows().detach().cpu().clone()}
    return Data(
        **extra,
        edge_index=graph.edge_index.clone(),
        edge_weight=graph.weight.clone(),
        bias=graph.bias.clone(),
        is_output=graph.roles == NCG.OUTPUT,
        is_input=graph.is_input,
        output_index=graph.outputs.clone(),
        input_index=graph.inputs.clone(),
        order=graph.order.clone(),
        neuron_ids=graph.neuron_ids.clone(),
        num_nodes=graph.num_neurons,
    )


def from_pyg(data) -> NCG:
    """Build an NCG from a ``torch_geometric.data.Data`` (the inverse of :func:`to_pyg`).

    Only ``edge_index`` is required. Weights come from ``edge_weight`` (else a 1-D or ``[E, 1]``
    ``edge_attr``, else fan-in scaled random); outputs from ``output_index``, else the
    ``is_output`` mask in index order, else the sinks; ``bias``, ``order`` and ``neuron_ids``
    are used when present.

    Raises
    ------
    NCGError
        From :class:`NCG` validation (cycles, duplicate edges, bad shapes), or when the graph has
        no nodes.

    Examples
    --------
    >>> import torch
    >>> from torch_geometric.data import Data
    >>> g = from_pyg(Data(edge_index=torch.tensor([[0, 1], [1, 2]]), num_nodes=3))
    >>> g, g.outputs.tolist()
    (NCG(neurons=3, edges=2, outputs=1), [2])
    """
    n = data.num_nodes
    if not n:
        raise NCGError("from_pyg needs a graph with at least one node (data.num_nodes is 0 or None)")
    edge_index = data.edge_index.long().cpu()
    weight = data.get("edge_weight")
    if weight is None and data.get("edge_attr") is not None and data.edge_attr.numel() == edge_index.shape[1]:
        weight = data.edge_attr.reshape(-1)
    outputs = data.get("output_index")
    if outputs is None and data.get("is_output") is not None:
        outputs = torch.nonzero(data.is_output.bool()).flatten()
    if outputs is None:
        has_successor = torch.zeros(n, dtype=torch.bool)
        has_successor[edge_index[0]] = True
        outputs = torch.nonzero(~has_successor).flatten()
    return NCG(
        edge_index,
        int(n),
        outputs.long().cpu(),
        weight=None if weight is None else weight.detach().cpu(),
        bias=None if data.get("bias") is None else data.bias.detach().cpu(),
        order=None if data.get("order") is None else data.order.long().cpu(),
        neuron_ids=None if data.get("neuron_ids") is None else data.neuron_ids.long().cpu(),
        inputs=None if data.get("input_index") is None else data.input_index.long().cpu(),
    )
