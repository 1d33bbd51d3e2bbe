"""What the readers, writers and figures share: the NCG of an argument that may be a graph or a
model (:func:`graph_of`, also read by ``viz`` and :func:`ncg.io.summary`), the node attributes
of the networkx conversion and the GraphML writer, and the argument checks of the exporters
(:func:`check_net`, :func:`check_path`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ncg.errors import NCGError
from ncg.graph import NCG
from ncg.model import FreeNet
from ncg.schedule import topological_generations

ROLE_NAMES = {NCG.HIDDEN: "hidden", NCG.OUTPUT: "output", NCG.INPUT: "input"}


def node_attributes(graph: NCG) -> list[dict[str, Any]]:
    n = graph.num_neurons
    output_index = [-1] * n
    for k, v in enumerate(graph.outputs.tolist()):
        output_index[v] = k
    input_index = [-1] * n
    for f, v in enumerate(graph.inputs.tolist()):
        input_index[v] = f
    roles = graph.roles.tolist()
    generation = topological_generations(graph.edge_index, n).tolist()
    position = graph.position.tolist()
    bias = graph.bias.double().tolist()
    ids = graph.neuron_ids.tolist()
    attributes = [
        {
            "role": ROLE_NAMES[roles[v]],
            "output_index": output_index[v],
            "generation": generation[v],
            "topo_index": position[v],
            "bias": bias[v],
            "neuron_id": ids[v],
        }
        for v in range(n)
    ]
    if graph.num_inputs:  # only graphs with input nodes carry the attribute
        for v, attrs in enumerate(attributes):
            attrs["input_index"] = input_index[v]
    if graph.layer is not None:  # only graphs with a topology constraint carry the attribute
        for attrs, layer in zip(attributes, graph.layer.tolist()):
            attrs["layer"] = layer
    return attributes


def graph_of(value: Any, function: str) -> NCG:
    """The NCG of ``value``: an NCG itself, or a FreeNet's :attr:`~ncg.model.FreeNet.graph` snapshot.

    Parameters
    ----------
    value : NCG or FreeNet
    function : str
        The public function that received ``value``, named in the error.

    Raises
    ------
    NCGError
        If ``value`` is neither, naming ``function`` and the type found.

    Examples
    --------
    >>> from ncg import NCG, FreeNet
    >>> graph = NCG.complete(3)
    >>> graph_of(graph, "f") is graph, graph_of(FreeNet(graph, in_features=2), "f").num_edges
    (True, 3)
    >>> graph_of("x", "draw_topology")
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: draw_topology expects an NCG or a FreeNet, got str
    """
    if isinstance(value, NCG):
        return value
    graph = getattr(value, "graph", None)
    if isinstance(graph, NCG) and hasattr(value, "encoder"):
        return graph
    raise NCGError(f"{function} expects an NCG or a FreeNet, got {type(value).__name__}")


def check_net(net: object) -> FreeNet:
    """``net`` if it is a FreeNet, else an :class:`~ncg.errors.NCGError` naming the argument."""
    if not isinstance(net, FreeNet):
        raise NCGError(f"net must be a FreeNet, got {type(net).__name__}")
    return net


def check_path(path: str | os.PathLike, suffix: str) -> Path:
    """``path`` as a Path if it is one ending in ``suffix``, else an :class:`~ncg.errors.NCGError`."""
    if not isinstance(path, (str, os.PathLike)):
        raise NCGError(f"path must be a str or os.PathLike ending in {suffix!r}, got {type(path).__name__}")
    path = Path(path)
    if path.suffix != suffix:
        raise NCGError(f"path must end in {suffix!r}, got {str(path)!r}")
    return path
