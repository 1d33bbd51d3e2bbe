"""Node attributes shared by the networkx conversion and the GraphML writer."""
from __future__ import annotations

from typing import Any

from ncg.graph import NCG
from ncg.schedule import topological_generations

ROLE_NAMES = {NCG.HIDDEN: "hidden", NCG.OUTPUT: "output"}


def node_attributes(graph: NCG) -> list[dict[str, Any]]:
    n = graph.num_neurons
    output_index = [-1] * n
    for k, v in enumerate(graph.outputs.tolist()):
        output_index[v] = k
    generation = topological_generations(graph.edge_index, n).tolist()
    position = graph.position.tolist()
    bias = graph.bias.double().tolist()
    ids = graph.neuron_ids.tolist()
    return [
        {
            "role": "output" if output_index[v] >= 0 else "hidden",
            "output_index": output_index[v],
            "generation": generation[v],
            "topo_index": position[v],
            "bias": bias[v],
            "neuron_id": ids[v],
        }
        for v in range(n)
    ]
