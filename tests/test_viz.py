from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

import viz
import viz.__main__
from ncg import NCG, FreeNet, save_freenet
from ncg.build import layered_start
from ncg.errors import NCGError
from ncg.evolve.coactivation import Coactivation, record_coactivation
from ncg.evolve.edits import Edit
from ncg.evolve.history import History
from ncg.figure import new_figure
from ncg.io import write_graphml
from viz.evolution import _extent, draw_frame, evolution_frames
from viz.sample import sample_neurons

FIGSIZE, DPI = (4, 3), 50
PIXELS = (200, 150)


def assert_image(path, size=None) -> None:
    """The file opens in PIL, has ``size`` pixels if given, and is not a blank canvas."""
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as image:
        image.load()
        if size is not None:
            assert image.size == size
        low, high = image.convert("L").getextrema()
        assert high - low > 50, f"{path.name} looks blank"


def history_of(graphs: list[NCG]) -> History:
    """A history whose edits are the edge differences between consecutive graphs."""
    history = History()
    previous = None
    for k, graph in enumerate(graphs):
        edges = set(map(tuple, graph.neuron_ids[graph.edge_index].t().tolist()))
        edits = []
        if previous is not None:
            edits = [Edit("prune_edge", s, t) for s, t in sorted(previous - edges)]
            edits += [Edit("add_edge", s, t, weight=0.1) for s, t in sorted(edges - previous)]
        metrics = {} if k == 0 else {"train_accuracy": 0.5 + 0.1 * k, "val_accuracy": 0.4 + 0.1 * k,
                                     "train_loss": 1.0 / k, "val_loss": 1.2 / k}
        history.append_graph(graph, edits=edits, metrics=metrics)
        previous = edges
    return history


def evolving_graphs() -> list[NCG]:
    """Round 0: a complete DAG of 8 neurons; then prunes, one re-added edge, a removed neuron."""
    start = NCG.complete(8, num_outputs=2, seed=0)
    ei, w = start.edge_index, start.weight
    keep = (ei[1] - ei[0]) <= 3
    first = NCG(ei[:, keep], 8, start.outputs, weight=w[keep], unreachable="ignore")
    keep2 = keep & ((ei[1] - ei[0]) <= 2)
    second_ei = torch.cat([ei[:, keep2], torch.tensor([[0], [7]])], 1)
    second = NCG(second_ei, 8, start.outputs, weight=torch.cat([w[keep2], torch.tensor([0.3])]), unreachable="ignore")
    # Remove neuron 3 (stable id 3): renumber the rest, keep stable ids.
    survivors = torch.tensor([0, 1, 2, 4, 5, 6, 7])
    new_index = torch.full((8,), -1)
    new_index[survivors] = torch.arange(7)
    alive = (new_index[second.edge_index] >= 0).all(0)
    third = NCG(new_index[second.edge_index[:, alive]], 7, new_index[start.outputs],
                weight=second.weight[alive], neuron_ids=survivors, unreachable="ignore")
    return [start, first, second, third]


@pytest.fixture(scope="module")
def history() -> History:
    return history_of(evolving_graphs())


@pytest.fixture(scope="module")
def net() -> FreeNet:
    return FreeNet(NCG.random_dag(24, density=0.3, num_outputs=3, seed=0), in_features=16, seed=0)


@pytest.fixture(scope="module")
def big() -> NCG:
    """100,794 nodes (784 inputs, 10 outputs) and about a million edges, in under a second."""
    return layered_start(784, 100_000, 10, depth=8, fan_in=10, seed=0)


def pruned(graph: NCG, fraction: float, seed: int) -> NCG:
    """``graph`` without a random ``fraction`` of its edges (same neurons and order)."""
    keep = torch.from_numpy(np.random.default_rng(seed).random(graph.num_edges) >= fraction)
    return NCG(graph.edge_index[:, keep], graph.num_neurons, graph.outputs, weight=graph.weight[keep],
               order=graph.order, inputs=graph.inputs, validate=False)


# ---------------------------------------------------------------------- layout
def test_barycenter_sweeps_untangle_crossing_edges():
    edge_index = np.array([[0, 1], [3, 2]])
    x, y = viz.generation_layout(edge_index, 4, sweeps=0)
    assert x.tolist() == [0, 0, 1, 1] and y[0] < y[1] and y[2] < y[3]  # index order: edges cross
    x, y = viz.generation_layout(edge_index, 4)
    assert y[0] == y[3] and y[1] == y[2]


def test_edges_between_adjacent_generations_are_straight():
    paths = viz.edge_paths(np.array([0.0, 1.0, 3.0]), np.array([0.2, 0.8, 0.5]), np.array([0, 0]), np.array([1, 2]))
    assert paths.shape == (2, 24, 2)
    assert np.allclose(np.diff(paths[0], axis=0)[:, 1] / np.diff(paths[0], axis=0)[:, 0], 0.6)
    assert paths[1, :, 1].min() < 0.35 - 0.4  # mid height 0.35 < 0.5: arcs downwards by 0.45


# ---------------------------------------------------------------------- topology
@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_draw_topology_writes_png_and_svg(tmp_path, net, suffix):
    path = tmp_path / f"topology{suffix}"
    fig = viz.draw_topology(net, path, figsize=FIGSIZE, dpi=DPI)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "topological generation" and ax.get_ylabel().startswith("position")
    assert "24 neurons" in ax.get_title() and ax.get_legend() is not None
    if suffix == ".png":
        assert_image(path, PIXELS)
    else:
        assert "<svg" in path.read_text()[:1000]


def test_input_nodes_get_their_own_marker_and_legend_entry(tmp_path):
    from ncg.build import sparse_start
    from viz.figure import INPUT_STYLE

    graph = sparse_start(num_inputs=6, num_hidden=5, num_outputs=2, fan_in=3, seed=0)
    ax = viz.draw_topology(graph, tmp_path / "inputs.png", figsize=FIGSIZE, dpi=DPI).axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[:3] == ["input node", "hidden neuron", "output neuron"]
    squares = [c for c in ax.collections if c.get_label() == INPUT_STYLE["label"]]
    assert len(squares) == 1 and len(squares[0].get_offsets()) == 6
    hidden = [c for c in ax.collections if c.get_label() == "hidden neuron"]
    assert len(hidden[0].get_offsets()) == 5
    assert "6 input nodes" in ax.get_title()
    assert_image(tmp_path / "inputs.png", PIXELS)
    plain = viz.draw_topology(NCG.complete(6, num_outputs=2, seed=0), figsize=FIGSIZE, dpi=DPI).axes[0]
    assert "input node" not in [text.get_text() for text in plain.get_legend().get_texts()]


def test_draw_topology_caps_edges_and_says_so(tmp_path):
    graph = NCG.random_dag(300, num_edges=3000, num_outputs=5, seed=1)
    fig = viz.draw_topology(graph, tmp_path / "big.png", max_edges=500, figsize=FIGSIZE, dpi=DPI)
    assert "showing 500 of 3,000 edges (largest |w|)" in fig.axes[0].get_title()
    assert len(fig.axes[0].collections[0].get_paths()) == 500
    assert_image(tmp_path / "big.png", PIXELS)


def test_draw_topology_into_given_axes(net):
    fig, ax = new_figure(FIGSIZE, DPI)
    assert viz.draw_topology(net.graph, ax=ax, title="mine") is fig
    assert ax.get_title().startswith("mine")


def test_sample_neurons_is_seeded_and_keeps_the_outputs():
    keep = np.array([99_990, 99_999])
    first = sample_neurons(100_000, 500, keep=keep, seed=3)
    assert first.size == 500 and np.all(np.diff(first) > 0) and set(keep) <= set(first.tolist())
    assert np.array_equal(first, sample_neurons(100_000, 500, keep=keep, seed=3))
    assert not np.array_equal(first, sample_neurons(100_000, 500, keep=keep, seed=4))
    assert np.array_equal(sample_neurons(400, 500, keep=keep), np.arange(400))  # small graphs: everyone


def test_draw_topology_samples_a_large_graph(tmp_path, big):
    fig = viz.draw_topology(big, tmp_path / "big.png", max_neurons=2000, figsize=FIGSIZE, dpi=DPI)
    ax = fig.axes[0]
    title = ax.get_title().splitlines()
    assert title[1] == "a fixed random sample of 2,000 of 100,794 neurons is drawn (all outputs included)"
    lines, hidden, outputs, inputs = ax.collections[:4]
    assert inputs.get_label() == "input node" and len(inputs.get_offsets()) > 0
    assert len(hidden.get_offsets()) + len(outputs.get_offsets()) + len(inputs.get_offsets()) == 2000
    assert len(outputs.get_offsets()) == 10  # every output is drawn
    drawn = int(title[2].split()[2].replace(",", ""))
    assert title[2] == f"showing all {drawn:,} edges among them, of 1,015,424 in all"
    assert 0 < len(lines.get_paths()) == drawn < 5000
    assert_image(tmp_path / "big.png", PIXELS)
    capped = viz.draw_topology(big, max_neurons=2000, max_edges=100, figsize=FIGSIZE, dpi=DPI).axes[0]
    assert capped.get_title().splitlines()[2].startswith(f"showing 100 of the {drawn:,} edges among them (largest |w|)")
    assert np.array_equal(capped.collections[1].get_offsets(), hidden.get_offsets())  # same seed, same sample
    other = viz.draw_topology(big, max_neurons=2000, seed=1, figsize=FIGSIZE, dpi=DPI).axes[0]
    assert not np.array_equal(other.collections[1].get_offsets(), hidden.get_offsets())


def test_evolution_of_a_large_graph_draws_a_sample(tmp_path, big):
    history = History()
    for graph in (big, pruned(big, 0.05, seed=0)):
        history.append_graph(graph)
    layout = viz.evolution_layout(history, max_neurons=1500)
    assert len(layout) == 1500 and set(range(100_784, 100_794)) <= set(layout)
    assert layout == viz.evolution_layout(history, max_neurons=1500)
    frames = evolution_frames(history, neurons=np.array(list(layout)))
    assert frames[1].num_pruned == big.num_edges - history.rounds[1].num_edges and frames[1].num_added == 0
    assert frames[1].neurons.size == 1500 and set(np.unique(frames[1].kept).tolist()) <= set(layout)
    fig, ax = new_figure(FIGSIZE, DPI)
    draw_frame(ax, frames[1], layout, _extent(frames, layout))
    assert f"{frames[1].num_pruned:,} edges pruned" in ax.get_title()
    assert "a fixed random sample of 1,500 of 100,794 neurons is drawn" in ax.get_title()
    paths = viz.render_evolution(history, tmp_path, gif=False, figsize=FIGSIZE, dpi=DPI, max_neurons=1500)
    assert [p.name for p in paths] == ["frame_000.png", "frame_001.png"]
    for path in paths:
        assert_image(path, PIXELS)


def test_analysis_figures_of_a_large_graph(tmp_path, big):
    model = FreeNet(big, in_features=784, seed=0)
    src, dst = big.edge_index.numpy()
    coactivation = Coactivation(big.num_neurons, 32, np.full(big.num_neurons, 0.5), src, dst, np.full(src.size, 0.3))
    fig = viz.plot_coactivation(coactivation, big, tmp_path / "co.png", max_neurons=400, figsize=FIGSIZE, dpi=DPI)
    assert fig.axes[0].images[0].get_array().shape == (400, 400)
    assert "a fixed random sample of 400 of 100,794 neurons is drawn" in fig.axes[0].get_title()
    fig = viz.plot_receptive_fields(model, (28, 28), tmp_path / "rf.png", max_neurons=4, tile_inches=0.5)
    assert sum(ax.get_title().startswith("id ") for ax in fig.axes) == 4
    fig = viz.plot_weight_histogram(model, tmp_path / "w.png", figsize=FIGSIZE, dpi=DPI)
    assert [ax.get_title() for ax in fig.axes] == ["Edge weights", "Neuron biases"]  # no N x 784 one-hot
    viz.plot_degree_histograms(model, tmp_path / "deg.png", figsize=FIGSIZE, dpi=DPI)
    for name in ("co.png", "w.png", "deg.png"):
        assert_image(tmp_path / name, PIXELS)


# ---------------------------------------------------------------------- evolution
def test_frames_mark_pruned_and_added_edges(history):
    frames = evolution_frames(history)
    assert [f.pruned.shape[1] for f in frames] == [0, 10, 5, 4]
    assert [f.added.shape[1] for f in frames] == [0, 0, 1, 0]
    assert frames[2].added.tolist() == [[0], [7]]
    assert frames[3].removed_neurons.tolist() == [3]


def test_evolution_frames_draw_input_nodes_as_topology_does(history):
    from ncg.build import sparse_start
    from viz.figure import INPUT_STYLE

    graph = sparse_start(num_inputs=6, num_hidden=5, num_outputs=2, fan_in=3, seed=0)
    with_inputs = history_of([graph, pruned(graph, 0.5, seed=0)])
    layout = viz.evolution_layout(with_inputs)
    frames = evolution_frames(with_inputs)
    assert [frame.inputs.tolist() for frame in frames] == [list(range(6))] * 2
    fig, ax = new_figure(FIGSIZE, DPI)
    draw_frame(ax, frames[1], layout, _extent(frames, layout))
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[3:6] == ["input node", "hidden neuron", "output neuron"]
    squares = [c for c in ax.collections if c.get_label() == INPUT_STYLE["label"]]
    assert len(squares) == 1 and len(squares[0].get_offsets()) == 6
    assert len([c for c in ax.collections if c.get_label() == "hidden neuron"][0].get_offsets()) == 5
    fig, ax = new_figure(FIGSIZE, DPI)
    plain, plain_layout = evolution_frames(history), viz.evolution_layout(history)
    draw_frame(ax, plain[0], plain_layout, _extent(plain, plain_layout))
    assert "input node" not in [text.get_text() for text in ax.get_legend().get_texts()]


def test_render_evolution_gif_and_strip(tmp_path, history):
    paths = viz.render_evolution(history, tmp_path / "evo", figsize=FIGSIZE, dpi=DPI)
    gif, frames = paths[0], paths[1:]
    assert gif.name == "evolution.gif"
    assert [p.name for p in frames] == [f"frame_{k:03d}.png" for k in range(4)]
    with Image.open(gif) as image:
        assert image.n_frames == 4
        assert all(frame.size == PIXELS for frame in ImageSequence.Iterator(image))
    for path in frames:
        assert_image(path, PIXELS)
    assert viz.render_evolution(history, tmp_path / "only_gif", png_strip=False, figsize=FIGSIZE, dpi=DPI) == [
        tmp_path / "only_gif" / "evolution.gif"
    ]
    with pytest.raises(NCGError, match="at least one round"):
        viz.render_evolution(History(), tmp_path)


def test_layout_is_shared_by_every_frame(history):
    layout = viz.evolution_layout(history)
    assert sorted(layout) == list(range(8))  # neuron 3 keeps its place although it dies


def test_layout_follows_the_final_graph_not_the_complete_start(history):
    layout = viz.evolution_layout(history)
    # Round 0 is a complete DAG (one neuron per generation); x is the generation in the final graph.
    assert {v: layout[v][0] for v in (0, 1, 2, 4, 5, 6, 7)} == {0: 0, 1: 1, 2: 2, 4: 3, 5: 4, 6: 5, 7: 6}
    # Neuron 3 (removed in the last round) sits one generation after its predecessors 1 and 2 then,
    # beside neuron 4 in the same column.
    assert layout[3][0] == 3 and layout[3][1] != layout[4][1]


def test_frames_sample_each_edge_kind_at_one_rate(history):
    from viz.evolution import _sample_rates, _subsample, draw_frame, evolution_frames

    frames = evolution_frames(history)
    rates = _sample_rates(frames, max_edges=14)  # round 0 keeps all 28 edges: half are drawn
    assert rates["kept"] == rates["pruned"] == 0.5 and rates["added"] == 1.0
    drawn = [_subsample(f.kept, rates["kept"]) for f in frames]
    assert 8 <= drawn[0].shape[1] <= 20
    for before, after, frame in zip(drawn, drawn[1:], frames[1:]):  # a drawn edge stays drawn or turns red
        gone = _subsample(frame.pruned, rates["pruned"])
        assert set(map(tuple, before.T.tolist())) <= set(map(tuple, np.concatenate([after, gone], 1).T.tolist()))
    fig, ax = new_figure(FIGSIZE, DPI)
    draw_frame(ax, frames[1], viz.evolution_layout(history), (-1, 8, -1, 2, 6), rates=rates)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[:3] == ["kept edge (50% drawn)", "pruned this round (50% drawn)", "added this round (all drawn)"]
    assert "fixed random sample" in ax.get_title()


def test_plot_evolution_summary(tmp_path, history):
    fig = viz.plot_evolution_summary(history, tmp_path / "summary.png", figsize=(6, 4), dpi=DPI)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"Graph size", "Depth", "Edits per round", "Training metrics"} <= set(titles)
    assert all(ax.get_legend() is not None for ax in fig.axes if ax.get_title())
    edits = next(ax for ax in fig.axes if ax.get_title() == "Edits per round")
    assert edits.get_yscale() == "log"  # a few added edges stay visible next to many pruned
    assert [text.get_text() for text in edits.texts] == ["10", "5", "4", "1"]  # pruned by round, then added
    assert_image(tmp_path / "summary.png", (300, 200))


# ---------------------------------------------------------------------- analysis
def test_analysis_figures(tmp_path, net):
    coactivation = record_coactivation(net, torch.randn(64, 16))
    viz.plot_coactivation(coactivation, net, tmp_path / "co.png", figsize=FIGSIZE, dpi=DPI)
    viz.plot_coactivation(coactivation, net, tmp_path / "joint.png", measure="joint", figsize=FIGSIZE, dpi=DPI)
    viz.plot_degree_histograms(net, tmp_path / "deg.png", figsize=FIGSIZE, dpi=DPI)
    viz.plot_weight_histogram(net, tmp_path / "w.png", figsize=FIGSIZE, dpi=DPI)
    for name in ("co.png", "joint.png", "deg.png", "w.png"):
        assert_image(tmp_path / name, PIXELS)
    fig = viz.plot_receptive_fields(net, (4, 4), tmp_path / "rf.png", max_neurons=9, tile_inches=0.5)
    width, height = (fig.get_size_inches() * fig.dpi).round().astype(int)
    assert_image(tmp_path / "rf.png", (width, height))
    assert sum(ax.get_title().startswith("id ") for ax in fig.axes) == 9


def test_analysis_errors(net):
    coactivation = record_coactivation(FreeNet(NCG.complete(5), in_features=16), torch.randn(8, 16))
    with pytest.raises(NCGError, match="covers 5 neurons but the graph has 24"):
        viz.plot_coactivation(coactivation, net)
    with pytest.raises(NCGError, match=r"image_shape \(5, 5\) has 25 pixels but the model has in_features=16"):
        viz.plot_receptive_fields(net, (5, 5))
    for draw in (viz.draw_topology, viz.plot_degree_histograms, viz.plot_weight_histogram):
        with pytest.raises(NCGError, match=f"{draw.__name__} expects an NCG or a FreeNet, got str"):
            draw("graph.graphml")


# ---------------------------------------------------------------------- run folder and CLI
def make_run(run_dir, history) -> FreeNet:
    final = evolving_graphs()[-1]
    net = FreeNet(final, in_features=16, seed=0)
    save_freenet(net, run_dir / "model.pt", extra={"image_shape": [4, 4]})
    history.save(run_dir / "history.json")
    coactivation = record_coactivation(net, torch.randn(64, 16))
    coactivation.save(run_dir / "coactivation.npz")
    write_graphml(net, run_dir / "graph.graphml", firing_rate=coactivation.firing_rate)
    return net


@pytest.mark.slow
def test_cli_renders_a_run_folder(tmp_path, history, capsys):
    make_run(tmp_path, history)
    assert viz.__main__.main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    expected = ["topology.png", "structure.png", "weights.png", "receptive_fields.png", "coactivation.png",
                "evolution_summary.png", "evolution/evolution.gif"] + [f"evolution/frame_{k:03d}.png" for k in range(4)]
    assert printed == [str(tmp_path / name) for name in expected]
    for name in expected:
        if name.endswith(".png"):
            assert_image(tmp_path / name)
    with Image.open(tmp_path / "evolution" / "evolution.gif") as gif:
        assert gif.n_frames == len(history)


def test_run_folder_with_missing_inputs(tmp_path, history, capsys):
    make_run(tmp_path, history)
    (tmp_path / "history.json").unlink()
    (tmp_path / "model.pt").unlink()  # graph.graphml stands in for the checkpoint
    written = viz.render_run(tmp_path)
    assert "skipped evolution_summary.png and evolution/: no history.json" in capsys.readouterr().err
    assert [p.name for p in written] == ["topology.png", "structure.png", "weights.png", "receptive_fields.png",
                                         "coactivation.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert viz.render_run(empty) == []
    assert "skipped topology.png: no model.pt or graph.graphml" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="does not exist"):
        viz.render_run(tmp_path / "missing")
    assert viz.__main__.main([str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_render_run_reads_the_config_through_the_run_folder(tmp_path, history, capsys):
    import json

    make_run(tmp_path, history)
    (tmp_path / "model.pt").unlink()  # graph.graphml has no image_shape: config.json gives it
    (tmp_path / "config.json").write_text(json.dumps({"image_shape": [2, 8], "args": {}}))  # version 1: no format
    written = viz.render_run(tmp_path, verbose=False)
    assert tmp_path / "receptive_fields.png" in written
    (tmp_path / "config.json").write_text(json.dumps({"format": "ncg.run", "version": 99}))
    with pytest.raises(NCGError, match="has version 99"):
        viz.render_run(tmp_path, verbose=False)


def test_cli_help_names_the_installed_command(capsys):
    from viz.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert capsys.readouterr().out.startswith("usage: ncg-viz ")
