"""Size and shape numbers of an NCG or a FreeNet."""
from __future__ import annotations

from ncg.errors import NCGError
from ncg.graph import NCG
from ncg.model import FreeNet
from ncg.schedule import topological_generations

__all__ = ["summary"]


def summary(graph_or_model: NCG | FreeNet) -> dict[str, int | float]:
    """Size and shape numbers of an NCG or a FreeNet.

    Returns
    -------
    dict
        ``neurons``, ``edges``, ``outputs``; ``complete_edges`` = ``N (N - 1) / 2`` (the complete
        DAG's edge count); ``density`` = ``edges / complete_edges`` (1.0 for a single neuron,
        which is its own complete DAG) and ``sparsity`` = ``1 - density``; ``depth`` (edges on
        the longest path) and ``generations`` (``depth + 1``); ``graph_parameters`` = edges +
        biases; ``parameters``: the same for an NCG, every trainable parameter of the model
        (encoder, decoder included; :meth:`FreeNet.num_parameters`) for a FreeNet.

    Examples
    --------
    >>> from ncg import NCG, FreeNet
    >>> summary(NCG.complete(5, num_outputs=2))
    {'neurons': 5, 'edges': 10, 'outputs': 2, 'complete_edges': 10, 'density': 1.0, 'sparsity': 0.0,
     'depth': 4, 'generations': 5, 'graph_parameters': 15, 'parameters': 15}
    >>> summary(FreeNet(NCG.complete(5, num_outputs=2), in_features=3))["parameters"]
    30
    """
    if isinstance(graph_or_model, FreeNet):
        graph = graph_or_model.graph
        parameters = graph_or_model.num_parameters()
    elif isinstance(graph_or_model, NCG):
        graph = graph_or_model
        parameters = graph.num_edges + graph.num_neurons
    else:
        raise NCGError(f"summary expects an NCG or a FreeNet, got {type(graph_or_model).__name__}")
    n, e = graph.num_neurons, graph.num_edges
    complete = n * (n - 1) // 2
    density = e / complete if complete else 1.0
    generations = int(topological_generations(graph.edge_index, n).max()) + 1
    return {
        "neurons": n,
        "edges": e,
        "outputs": graph.num_outputs,
        "complete_edges": complete,
        "density": density,
        "sparsity": 1.0 - density,
        "depth": generations - 1,
        "generations": generations,
        "graph_parameters": e + n,
        "parameters": int(parameters),
    }
