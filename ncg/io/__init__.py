"""Readers, writers and interop: networkx, PyTorch Geometric, GraphML, and a size summary.

Conversions keep everything an :class:`~ncg.graph.NCG` holds (edges in column order, weights,
biases, outputs in decoder order, topological order, stable neuron ids), so a round trip gives
back the same graph. GraphML files hold a whole :class:`~ncg.model.FreeNet`: the graph as nodes
and edges, the dense encoder / decoder weights in a side ``.npz`` file (or inline), and the model
config, so ``read_graphml(path)`` rebuilds a model with identical outputs.

Examples
--------
>>> from ncg import NCG
>>> from ncg.io import from_networkx, summary, to_networkx
>>> g = NCG.complete(4, num_outputs=1, seed=0)
>>> G = to_networkx(g)
>>> G.nodes[3]["role"], round(G.edges[0, 1]["weight"], 4)
('output', -0.0075)
>>> from_networkx(G).edge_index.tolist() == g.edge_index.tolist()
True
>>> summary(g)["density"]
1.0

Modules
-------
``ncg.io.nx``: :func:`to_networkx`, :func:`from_networkx`.
``ncg.io.pyg``: :func:`to_pyg`, :func:`from_pyg`.
``ncg.io.summary``: :func:`summary`.
``ncg.io.graphml``: :func:`write_graphml`, :func:`read_graphml`, ``GRAPHML_FORMAT``, ``GRAPHML_VERSION``.
``ncg.io.export``: :func:`to_module`, :func:`export_program`, ``FreeNetModule`` (a learned network
as a torch.export program, for runtimes without ncg).
``ncg.io.onnx_export``: :func:`to_onnx_module`, :func:`export_onnx`, ``OnnxFreeNetModule`` (the
same for ONNX Runtime).
``ncg.io.export_c``: :func:`export_c` (a learned network as dependency-free C99, for embedded and WebAssembly).
"""
from __future__ import annotations

from ncg.io.export import FreeNetModule, export_program, to_module
from ncg.io.export_c import export_c
from ncg.io.onnx_export import OnnxFreeNetModule, export_onnx, to_onnx_module
from ncg.io.graphml import GRAPHML_FORMAT, GRAPHML_VERSION, read_graphml, write_graphml
from ncg.io.nx import from_networkx, to_networkx
from ncg.io.pyg import from_pyg, to_pyg
from ncg.io.summary import summary

__all__ = [
    "to_module",
    "export_program",
    "export_onnx",
    "to_onnx_module",
    "OnnxFreeNetModule",
    "export_c",
    "FreeNetModule",
    "to_networkx",
    "from_networkx",
    "to_pyg",
    "from_pyg",
    "summary",
    "write_graphml",
    "read_graphml",
    "GRAPHML_FORMAT",
    "GRAPHML_VERSION",
]
