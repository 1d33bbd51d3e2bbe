"""ncg: layer-free neural networks (FreeNets) over Neural Connectivity Graphs.

Examples
--------
>>> import torch
>>> import ncg
>>> net = ncg.FreeNet(ncg.NCG.complete(8, num_outputs=2, seed=0), in_features=3)
>>> net(torch.zeros(4, 3)).shape
torch.Size([4, 2])
"""
from ncg.checkpoint import load_freenet, save_freenet
from ncg.errors import NCGError
from ncg.graph import NCG
from ncg.model import FreeNet, SquareReLU
from ncg.schedule import build_plan, topological_generations

__all__ = [
    "NCG",
    "FreeNet",
    "SquareReLU",
    "NCGError",
    "build_plan",
    "topological_generations",
    "save_freenet",
    "load_freenet",
]

__version__ = "0.1.0"
