"""Free-Evolve: coactivation statistics, topology operators, edit application and the loop.

Examples
--------
>>> import torch
>>> from ncg import NCG, FreeNet
>>> from ncg.evolve import EvolveConfig, FreeEvolve
>>> net = FreeNet(NCG.complete(8, num_outputs=2, seed=0), in_features=3, seed=0)
>>> x, y = torch.randn(64, 3), torch.randint(0, 2, (64,))
>>> history = FreeEvolve(net, EvolveConfig(rounds=1, record_samples=32, tau=0.0)).run((x, y))
>>> [r.phase for r in history.rounds]
['start', 'evolve', 'finetune']
"""
from ncg.evolve.apply import EditMaps, apply_edits, rewire
from ncg.evolve.coactivation import Coactivation, CoactivationRecorder, record_coactivation
from ncg.evolve.edits import Edit
from ncg.evolve.history import History, RoundRecord
from ncg.evolve.loop import EditBudget, EvolveConfig, FreeEvolve
from ncg.evolve.operators import augment_edges, grow_neurons, prune_edges, remove_neurons

__all__ = [
    "FreeEvolve",
    "EvolveConfig",
    "EditBudget",
    "record_coactivation",
    "Coactivation",
    "CoactivationRecorder",
    "prune_edges",
    "augment_edges",
    "remove_neurons",
    "grow_neurons",
    "Edit",
    "apply_edits",
    "rewire",
    "EditMaps",
    "History",
    "RoundRecord",
]
