"""What a forward pass costs: multiply-adds per sample, counted as the evaluators spend them.

One home for the count that the experiment runner turns into training FLOPs, the benchmarks into
arithmetic rates and the training loop into its thread policy (:mod:`ncg.threads`).

Examples
--------
>>> from torch import nn
>>> from ncg import NCG, FreeNet
>>> macs_per_sample(nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 10)))
39700
>>> net = FreeNet(NCG.complete(4, num_outputs=2, seed=0), in_features=3)
>>> macs_per_sample(net)  # 4 x 3 encoder entries + 6 edges (identity decoder)
18
"""
from __future__ import annotations

from torch import nn

from ncg.model import FreeNet

__all__ = ["macs_per_sample", "freenet_macs"]


def macs_per_sample(model: nn.Module) -> int:
    """Multiply-adds of one sample's forward pass: a FreeNet's encoder entries, edges and
    decoder weights (edges counted as the sparse evaluator spends them); every
    ``nn.Linear`` weight of any other module (its other layers, e.g. convolutions, are not
    counted)."""
    if isinstance(model, FreeNet):
        return freenet_macs(model, model.num_neurons, int(model.edge_index.shape[1]))
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))


def freenet_macs(model: FreeNet, neurons: int, edges: int) -> int:
    """Multiply-adds per sample of ``model`` when it had ``neurons`` neurons and ``edges`` edges:
    the encoder (none when the inputs are graph nodes; a fixed random projection counts), the
    edges, the decoder.

    >>> from ncg import NCG, FreeNet
    >>> freenet_macs(FreeNet(NCG.complete(4, num_outputs=2), in_features=3), neurons=3, edges=2)
    11
    """
    encoder = 0 if model.encoder_kind == "graph" else model.in_features * neurons
    decoder = sum(p.numel() for n, p in model.decoder.named_parameters() if n == "weight")
    return encoder + edges + decoder
