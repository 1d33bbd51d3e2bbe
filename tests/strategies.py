"""Hypothesis strategies for ncg graphs."""
from __future__ import annotations

import torch
from hypothesis import strategies as st

from ncg import NCG


@st.composite
def dags(draw, min_neurons: int = 1, max_neurons: int = 40) -> NCG:
    """Random NCGs: a random topological order, random forward edges, random outputs."""
    n = draw(st.integers(min_neurons, max_neurons))
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    density = draw(st.sampled_from([0.0, 0.1, 0.3, 0.7, 1.0]))
    order = torch.randperm(n, generator=gen)
    src, dst = torch.triu_indices(n, n, offset=1)
    keep = torch.rand(src.numel(), generator=gen) < density
    edge_index = torch.stack([order[src[keep]], order[dst[keep]]])
    num_outputs = draw(st.integers(1, n))
    outputs = torch.randperm(n, generator=gen)[:num_outputs]
    return NCG(
        edge_index,
        n,
        outputs,
        weight=torch.randn(edge_index.shape[1], generator=gen),
        bias=torch.randn(n, generator=gen) * 0.1,
        validate=False,
    )


@st.composite
def graphs_with_inputs(draw, max_hidden: int = 30, densities: tuple[float, ...] = (0.05, 0.1, 0.3, 0.7, 1.0)) -> NCG:
    """Random DAGs whose input nodes sit anywhere among the ids, in a shuffled feature order, and
    whose outputs sit anywhere in the order (some with edges out); at most ``max_hidden`` hidden
    neurons, edges kept with a probability drawn from ``densities``."""
    features, hidden, outputs = draw(st.integers(1, 8)), draw(st.integers(0, max_hidden)), draw(st.integers(1, 4))
    density = draw(st.sampled_from(densities))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    n = features + hidden + outputs
    node = torch.randperm(n, generator=gen)  # node[i] holds place i of a topological order
    src, dst = torch.triu_indices(n, n, offset=1)
    keep = (torch.rand(src.numel(), generator=gen) < density) & (dst >= features)  # none enters an input
    return NCG(
        torch.stack([node[src[keep]], node[dst[keep]]]),
        n,
        outputs=node[features:][torch.randperm(n - features, generator=gen)[:outputs]],
        inputs=node[:features][torch.randperm(features, generator=gen)],
        weight=torch.randn(int(keep.sum()), generator=gen),
        bias=torch.randn(n, generator=gen) * 0.1,
        validate=False,
    )
