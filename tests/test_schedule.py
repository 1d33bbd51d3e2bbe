from __future__ import annotations

import networkx as nx
import pytest
import torch
from hypothesis import given

from ncg.errors import CycleError
from ncg.schedule import build_plan, find_cycle, topological_generations
from strategies import dags


@given(dags())
def test_generations_match_networkx(graph):
    g = nx.DiGraph()
    g.add_nodes_from(range(graph.num_neurons))
    g.add_edges_from(graph.edge_index.t().tolist())
    expected = {v: i for i, gen in enumerate(nx.topological_generations(g)) for v in gen}
    got = topological_generations(graph.edge_index, graph.num_neurons).tolist()
    assert got == [expected[v] for v in range(graph.num_neurons)]


@given(dags())
def test_plan_is_a_valid_schedule(graph):
    plan = build_plan(graph.edge_index, graph.num_neurons, block_size=5)
    n = graph.num_neurons
    assert sorted(plan.perm.tolist()) == list(range(n))
    assert torch.equal(plan.position[plan.perm], torch.arange(n))
    assert bool((plan.src_pos < plan.dst_pos).all())
    # blocks tile the positions and never split... their lo/hi bounds cover every edge
    covered = [p for s, e, _, _ in plan.blocks for p in range(s, e)]
    assert covered == list(range(n))
    for s, e, lo, hi in plan.blocks:
        into = (plan.dst_pos >= s) & (plan.dst_pos < e) & (plan.src_pos < s)
        assert bool((plan.src_pos[into] >= lo).all())
        out = (plan.src_pos >= s) & (plan.src_pos < e) & (plan.dst_pos >= e)
        assert bool((plan.dst_pos[out] < hi).all())
        assert e - s <= 5 or len(set(plan.generation[plan.perm[s:e]].tolist())) == 1


def test_complete_dag_has_one_neuron_per_generation():
    src, dst = torch.triu_indices(10, 10, offset=1)
    plan = build_plan(torch.stack([src, dst]), 10, block_size=4)
    assert plan.num_generations == 10
    assert [b[:2] for b in plan.blocks] == [(0, 4), (4, 8), (8, 10)]


def test_cycle_is_named():
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 1]])
    with pytest.raises(CycleError, match=r"\[1, 2, 3\]"):
        topological_generations(edge_index, 4)
    assert find_cycle(torch.tensor([[0], [1]]), 2) is None


def test_block_size_must_be_positive():
    with pytest.raises(ValueError, match="block_size"):
        build_plan(torch.zeros(2, 0, dtype=torch.long), 3, block_size=0)
