from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given

from ncg import NCG
from ncg.errors import (
    CycleError,
    DuplicateEdgeError,
    EdgeIndexError,
    NCGError,
    NonFiniteError,
    SelfLoopError,
    UnreachableNeuronError,
    UnreachableNeuronWarning,
)
from strategies import dags


def test_complete_dag_edges_and_outputs():
    g = NCG.complete(5, num_outputs=2, seed=1)
    assert g.num_edges == 10
    assert g.outputs.tolist() == [3, 4]
    assert g.roles.tolist() == [0, 0, 0, 1, 1]
    assert bool((g.edge_index[0] < g.edge_index[1]).all())
    assert repr(g) == "NCG(neurons=5, edges=10, outputs=2)"


def test_complete_is_seeded():
    assert torch.equal(NCG.complete(9, seed=3).weight, NCG.complete(9, seed=3).weight)
    assert not torch.equal(NCG.complete(9, seed=3).weight, NCG.complete(9, seed=4).weight)


def test_random_dag_density_and_edges():
    g = NCG.random_dag(50, density=0.1, num_outputs=5, seed=0)
    assert g.num_edges == round(0.1 * 50 * 49 / 2)
    assert NCG.random_dag(10, num_edges=7, seed=2).num_edges == 7
    with pytest.raises(NCGError, match="exactly one"):
        NCG.random_dag(10)
    with pytest.raises(NCGError, match="density must be in"):
        NCG.random_dag(10, density=1.5)


def _graph(edges, n=4, outputs=(3,), **kw):
    return NCG(torch.tensor(edges, dtype=torch.long).reshape(2, -1), n, torch.tensor(outputs), **kw)


def test_cycle_error_names_nodes():
    with pytest.raises(CycleError, match=r"neurons \[0, 1, 2\]"):
        _graph([[0, 1, 2, 2], [1, 2, 0, 3]])


def test_self_loop_error():
    with pytest.raises(SelfLoopError, match="2 -> 2"):
        _graph([[0, 2], [1, 2]])


def test_out_of_range_error():
    with pytest.raises(EdgeIndexError, match="neuron 7, out of range for num_neurons=4"):
        _graph([[0, 7], [1, 3]])
    with pytest.raises(EdgeIndexError, match="shape \\[2, E\\]"):
        NCG(torch.zeros(3, 2, dtype=torch.long), 4, torch.tensor([3]))
    with pytest.raises(EdgeIndexError, match="LongTensor"):
        NCG(torch.zeros(2, 2), 4, torch.tensor([3]))
    with pytest.raises(EdgeIndexError, match="outputs refers to neuron 9"):
        _graph([[0], [3]], outputs=(9,))


def test_duplicate_edge_error():
    with pytest.raises(DuplicateEdgeError, match="0 -> 3 2 times"):
        _graph([[0, 0, 1], [3, 3, 3]])


def test_non_finite_weight_error():
    with pytest.raises(NonFiniteError, match=r"weight\[1\] is nan"):
        _graph([[0, 1], [3, 3]], weight=torch.tensor([1.0, float("nan")]))
    with pytest.raises(NonFiniteError, match=r"bias\[0\] is inf"):
        _graph([[0, 1], [3, 3]], bias=torch.tensor([float("inf"), 0, 0, 0]))


def test_order_must_be_topological():
    with pytest.raises(NCGError, match="order is not topological: edge 0 -> 3"):
        _graph([[0], [3]], order=torch.tensor([3, 0, 1, 2]))
    with pytest.raises(NCGError, match="permutation"):
        _graph([[0], [3]], order=torch.tensor([0, 0, 1, 2]))


def test_unreachable_hidden_neuron_warns_or_refuses():
    with pytest.warns(UnreachableNeuronWarning, match="cannot reach any output"):
        _graph([[0, 1], [3, 2]])
    with pytest.raises(UnreachableNeuronError, match="e.g. \\[1, 2\\]"):
        _graph([[0, 1], [3, 2]], unreachable="raise")


@given(dags())
def test_generated_graphs_validate(graph):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreachableNeuronWarning)
        graph.validate()
    clone = graph.clone()
    assert torch.equal(clone.edge_index, graph.edge_index) and clone is not graph


@given(dags())
def test_reaches_output_matches_networkx(graph):
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(range(graph.num_neurons))
    g.add_edges_from(graph.edge_index.t().tolist())
    outputs = set(graph.outputs.tolist())
    expected = [v in outputs or bool(nx.descendants(g, v) & outputs) for v in range(graph.num_neurons)]
    assert graph.reaches_output().tolist() == expected


def test_order_dtype_and_unique_ids_are_checked():
    with pytest.raises(NCGError, match="order must be a LongTensor"):
        _graph([[0], [3]], order=torch.tensor([0.0, 1.0, 2.0, 3.0]))
    with pytest.raises(NCGError, match="neuron_ids must be unique"):
        _graph([[0], [3]], neuron_ids=torch.tensor([0, 0, 1, 2]))
