"""The explorer page's data (viz.explore): layout, level of detail, per-round counts, the file.

No browser here: tests/test_explore_browser.py opens the pages."""
from __future__ import annotations

import base64
import json
import re
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import viz.__main__
from explore_runs import IMAGE, REMOVED, ROUNDS, evolving_graphs, history_of, make_run
from ncg import NCG, FreeNet
from ncg.build import layered_start
from ncg.errors import NCGError
from ncg.evolve.history import History
from ncg.run_folder import RunFolder
from viz.evolution import evolution_frames
from viz.explore import ExplorerData, MAX_DRAWN_EDGES, _load, _pack, explore, explorer_data, write_explorer
from viz.browser import browser_missing
from viz.layout import generation_layout


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    model = make_run(folder)
    return folder, model


@pytest.fixture(scope="module")
def data(run) -> ExplorerData:
    return explore_data_of(run[0])


def explore_data_of(folder) -> ExplorerData:
    model, kwargs, _ = _load(folder)
    return explorer_data(model, **kwargs)


def edge_set(src, dst, ids) -> set[tuple[int, int]]:
    return set(zip(ids[src].tolist(), ids[dst].tolist()))


def unpack(packed: dict) -> np.ndarray:
    values = np.frombuffer(zlib.decompress(base64.b64decode(packed["z"])), dtype=packed["type"].lower())
    return np.cumsum(values) if packed["delta"] else values


# ---------------------------------------------------------------------- layout
@given(st.integers(2, 30), st.floats(0.1, 0.9), st.integers(0, 2**31 - 1))
def test_pinned_nodes_stay_and_free_nodes_share_their_generations_slots(n, density, seed):
    graph = NCG.random_dag(n, density=density, seed=seed)
    edge_index = graph.edge_index.numpy()
    rng = np.random.default_rng(seed)
    fixed = np.where(rng.random(n) < 0.3, rng.random(n), np.nan)
    x, y = generation_layout(edge_index, n, fixed_y=fixed)
    pinned = ~np.isnan(fixed)
    assert np.array_equal(y[pinned], fixed[pinned])
    for g in np.unique(x):
        free = (x == g) & ~pinned
        assert np.allclose(np.sort(y[free]), (np.arange(free.sum()) + 0.5) / max(free.sum(), 1))


def test_input_nodes_form_the_image_grid_left_of_the_neurons(data, run):
    model = run[1]
    graph = model.graph
    x, y = data.nodes["x"], data.nodes["y"]
    inputs = graph.inputs.numpy()
    height, width = IMAGE
    feature = np.arange(inputs.size)
    rows, cols = feature // width, feature % width
    assert np.all(np.diff(x[inputs].reshape(height, width), axis=1) > 0)  # columns left to right
    assert np.all(np.diff(y[inputs].reshape(height, width), axis=0) > 0)  # rows top to bottom
    assert np.unique(y[inputs][cols == 0]).size == height and np.unique(x[inputs][rows == 0]).size == width
    others = np.setdiff1d(np.arange(data.num_nodes), inputs)
    assert x[inputs].max() < x[others].min()
    generation = data.nodes["generation"][others]
    step = np.unique(np.round(x[others] / np.maximum(generation, 1), 6)[generation > 0])
    assert step.size == 1  # one column per generation


def test_barycenter_order_shortens_edges_against_the_index_order(data):
    x, y, g = data.nodes["x"], data.nodes["y"].astype(np.float64), data.nodes["generation"]
    src, dst = data.src[: data.num_edges], data.dst[: data.num_edges]
    naive = y.copy()
    for k in np.unique(g):
        members = np.flatnonzero((g == k) & (data.nodes["role"] != NCG.INPUT))
        naive[members] = (np.arange(members.size) + 0.5) / members.size
    assert np.abs(y[src] - y[dst]).sum() < np.abs(naive[src] - naive[dst]).sum()


# ---------------------------------------------------------------------- nodes and edges
def test_nodes_are_the_final_neurons_then_the_removed_one(data, run):
    graph = run[1].graph
    n = graph.num_neurons
    assert data.num_nodes == n + 1 and data.nodes["id"][n] == REMOVED
    assert np.array_equal(data.nodes["id"][:n], graph.neuron_ids.numpy())
    assert np.array_equal(data.nodes["role"][:n], graph.roles.numpy())
    assert (data.nodes["born"][n], data.nodes["died"][n]) == (0, 2)
    assert np.all(data.nodes["died"][:n] == ROUNDS + 1) and np.all(data.nodes["born"] == 0)
    assert np.isnan(data.nodes["bias"][n]) and np.isnan(data.nodes["firing_rate"][n])
    assert np.allclose(data.nodes["bias"][:n], run[1].neuron_bias().detach().numpy())
    rate = RunFolder(run[0]).load_coactivation().firing_rate
    assert np.allclose(data.nodes["firing_rate"][:n], rate)
    assert np.array_equal(data.nodes["output_index"][graph.outputs.numpy()], np.arange(graph.num_outputs))


def test_final_edges_come_strongest_first_with_their_weights(data, run):
    graph = run[1].graph
    ids = data.nodes["id"]
    weight = np.abs(data.weight)
    assert np.all(np.diff(weight) <= 0)
    src, dst = data.src[: data.num_edges], data.dst[: data.num_edges]
    expected = dict(zip(map(tuple, graph.neuron_ids[graph.edge_index].t().tolist()), graph.weight.tolist()))
    found = dict(zip(zip(ids[src].tolist(), ids[dst].tolist()), data.weight.tolist()))
    assert found.keys() == expected.keys()
    assert all(np.isclose(found[k], expected[k]) for k in expected)
    fan_in, fan_out = data.degrees()
    assert np.array_equal(fan_in[: graph.num_neurons], np.bincount(graph.edge_index[1].numpy(), minlength=graph.num_neurons))
    assert np.array_equal(fan_out[: graph.num_neurons], np.bincount(graph.edge_index[0].numpy(), minlength=graph.num_neurons))


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.2, 0.6, 10.0])
@pytest.mark.parametrize("budget", [MAX_DRAWN_EDGES, 40, 0])
def test_level_of_detail_draws_the_strongest_and_counts_the_rest(run, threshold, budget):
    data = explorer_data(run[1], max_drawn_edges=budget)
    drawn, hidden, below = data.edge_counts(threshold)
    passing = int((np.abs(run[1].graph.weight.numpy()) >= threshold).sum())
    assert (drawn, hidden, below) == (min(passing, budget), passing - min(passing, budget), data.num_edges - passing)


def test_every_round_replays_exactly_from_the_edit_lists(data, run):
    history = RunFolder(run[0]).load_history()
    frames = evolution_frames(history)
    ids = data.nodes["id"]
    assert len(data.rounds) == len(history) == ROUNDS + 1
    for k, (record, frame) in enumerate(zip(history.rounds, frames)):
        present = data.round_edges(k)
        assert edge_set(data.src[present], data.dst[present], ids) == set(map(tuple, record.edges.T.tolist()))
        got = data.rounds[k]
        assert (len(got["pruned"]), len(got["added"])) == (frame.num_pruned, frame.num_added)
        assert got["num_edges"] == record.num_edges == present.size
        assert edge_set(data.src[got["added"]], data.dst[got["added"]], ids) == set(map(tuple, frame.added.T.tolist()))
        assert edge_set(data.src[got["pruned"]], data.dst[got["pruned"]], ids) == set(map(tuple, frame.pruned.T.tolist()))
        alive = (data.nodes["born"] <= k) & (k < data.nodes["died"])
        assert alive.sum() == record.num_neurons


def test_summary_panel_takes_the_run_summary_and_the_graph_sizes(data, run):
    graph = run[1].graph
    assert data.summary["data set"] == "synthetic" and data.summary["test accuracy"] == 0.8125
    assert (data.summary["edges"], data.summary["neurons"]) == (graph.num_edges, graph.num_neurons)
    assert data.summary["parameters"] == run[1].num_parameters() and data.summary["rounds"] == ROUNDS + 1
    assert data.summary["depth"] == RunFolder(run[0]).load_history().rounds[-1].depth


def test_a_dense_encoder_ships_its_rows_as_receptive_fields():
    net = FreeNet(NCG.complete(12, num_outputs=2, seed=0), in_features=16, seed=0)
    data = explorer_data(net, image_shape=(4, 4))
    assert data.encoder.shape == (12, 16) and data.image_shape == (4, 4)
    assert explorer_data(net).encoder is None


def test_errors_name_what_does_not_match(run):
    model = run[1]
    with pytest.raises(NCGError, match=r"image_shape \(5, 5\) must be \(height, width\) with height \* width = 36"):
        explorer_data(model, image_shape=(5, 5))
    with pytest.raises(NCGError, match="firing_rate has 3 values, the graph 69 neurons"):
        explorer_data(model, firing_rate=np.zeros(3))
    with pytest.raises(NCGError, match=r"the history's last round \(round 0, 274 edges\) is not the graph given \(114 edges\)"):
        explorer_data(model, history=history_of(evolving_graphs()[:1]))
    with pytest.raises(NCGError, match="needs a path"):
        explore(model)
    with pytest.raises(NCGError, match="neither a run folder"):
        explore(run[0] / "config.json")


# ---------------------------------------------------------------------- the file
def test_the_page_is_one_self_contained_file(run, tmp_path, data):
    page = explore(run[0], tmp_path / "page.html")
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing loaded from the network
    assert "<script src" not in text and "<link" not in text
    payload = json.loads(re.search(r'<script type="application/json" id="ncg-data">(.*?)</script>', text, re.S)
                         .group(1).replace("<\\/", "</"))
    assert payload["numEdges"] == data.num_edges and payload["summary"] == json.loads(json.dumps(data.summary))
    assert np.array_equal(unpack(payload["src"]), data.src) and np.array_equal(unpack(payload["weight"]), data.weight)
    for got, expected in zip(payload["rounds"], data.rounds):
        assert np.array_equal(unpack(got["pruned"]), expected["pruned"])
        assert np.array_equal(unpack(got["added"]), expected["added"])


def test_pack_round_trips_sorted_lists_by_their_differences():
    values = np.array([3, 9, 9, 40, 1000], dtype=np.int32)
    assert np.array_equal(unpack(_pack(values, delta=True)), values)
    assert np.array_equal(unpack(_pack(values.astype(np.float32))), values)


def test_explore_a_run_folder_a_checkpoint_and_a_graphml(run, tmp_path):
    folder, _ = run
    assert explore(folder) == folder / "explorer.html"
    assert explore(folder / "model.pt") == folder / "model.html"
    assert explore(folder / "graph.graphml", tmp_path / "g.html") == tmp_path / "g.html"
    assert explore(NCG.random_dag(9, density=0.5, seed=1), tmp_path / "n.html").is_file()
    assert History.load(folder / "history.json").rounds[-1].num_edges == explore_data_of(folder).num_edges


def test_cli_writes_the_page_and_reports_errors(run, tmp_path, capsys):
    assert viz.__main__.main(["explore", str(run[0]), "-o", str(tmp_path / "cli.html")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cli.html")
    assert (tmp_path / "cli.html").stat().st_size > 1000
    assert viz.__main__.main(["explore", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_file_size_per_edge_stays_small(tmp_path):
    graph = layered_start(784, 4000, 10, depth=4, fan_in=10, seed=0)
    data = explorer_data(graph, image_shape=(28, 28))
    page = write_explorer(data, tmp_path / "big.html")
    assert page.stat().st_size / graph.num_edges < 60
    assert data.edge_counts(0.0) == (graph.num_edges, 0, 0)
    assert torch.equal(torch.as_tensor(np.sort(data.nodes["id"])), torch.arange(graph.num_neurons))


def test_without_a_browser_the_browser_tests_say_why(monkeypatch):
    monkeypatch.delenv("NCG_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "")
    assert browser_missing() in ("no chromium on the PATH (apt-get install chromium) and no $NCG_CHROMIUM",
                                 "no playwright: pip install 'ncg[browser]'")
    monkeypatch.setenv("NCG_CHROMIUM", "/nowhere/chromium")
    assert browser_missing() in ("no executable at $NCG_CHROMIUM=/nowhere/chromium",
                                 "no playwright: pip install 'ncg[browser]'")
