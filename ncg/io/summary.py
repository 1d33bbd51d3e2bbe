"""Size and shape numbers of an NCG or a FreeNet."""
from __future__ import annotations

from ncg.graph import NCG
from ncg.io._common import graph_of
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
        the longest path) and ``generations`` (``depth + 1``); ``graph_parameters`` and
        ``parameters``, described below.

    The two parameter counts answer different questions:

    * ``graph_parameters`` = ``edges + neurons``: the graph's own numbers, one weight per edge
      and one bias per node, *input nodes included* (an NCG stores a bias for every node, though
      an input node's is never used: its value is the input feature; ``FreeNet.graph`` holds 0).
    * ``parameters``: for an NCG, the same number. For a FreeNet, PyTorch's count
      ``sum(p.numel() for p in model.parameters())`` (:meth:`FreeNet.num_parameters`): the edge
      weights and the biases of the non-input neurons (input nodes hold no bias parameter),
      plus a learned dense encoder's ``neurons x in_features`` weights and a linear decoder's
      weights and biases; a fixed ``encoder="random"`` projection is a buffer, not counted.

    So for a FreeNet whose inputs are graph nodes and whose decoder is the identity,
    ``graph_parameters - parameters`` is the number of input nodes (e.g. 13 vs 10 with 3 input
    nodes); with a learned dense encoder (no input nodes) ``parameters`` is the larger, by the
    encoder's weights; a linear decoder adds its weights and biases to ``parameters`` alone.

    Examples
    --------
    >>> from ncg import NCG, FreeNet
    >>> summary(NCG.complete(5, num_outputs=2))
    {'neurons': 5, 'edges': 10, 'outputs': 2, 'complete_edges': 10, 'density': 1.0, 'sparsity': 0.0,
     'depth': 4, 'generations': 5, 'graph_parameters': 15, 'parameters': 15}
    >>> summary(FreeNet(NCG.complete(5, num_outputs=2), in_features=3))["parameters"]   # + 5 x 3 encoder
    30
    >>> from ncg.build import sparse_start
    >>> numbers = summary(FreeNet(sparse_start(3, 2, 1, fan_in=2, seed=0), in_features=3))
    >>> numbers["graph_parameters"], numbers["parameters"]   # 7 edges + 6 biases; minus 3 input biases
    (13, 10)
    """
    graph = graph_of(graph_or_model, "summary")
    parameters = graph.num_edges + graph.num_neurons if graph is graph_or_model else graph_or_model.num_parameters()
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
