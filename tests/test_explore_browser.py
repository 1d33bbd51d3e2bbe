"""The explorer page in a real browser: headless Chromium driven by Playwright (viz.browser).

Skipped, with the reason, where Playwright or Chromium is missing. Every number read from the
page is compared with the Python side (viz.explore.ExplorerData) or with history.json."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from explore_runs import ROUNDS, make_run
from ncg.build import layered_start, sparse_start
from ncg.evolve.history import History
from viz.browser import browser_missing, chromium, interaction_ms, open_explorer
from viz.evolution import evolution_frames
from viz.explore import _load, explorer_data, write_explorer

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=f"browser tests: {browser_missing()}")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    make_run(folder)
    model, kwargs, page = _load(folder)
    data = explorer_data(model, **kwargs)
    write_explorer(data, page)
    return folder, data, page


@pytest.fixture(scope="module")
def browser():
    with chromium() as opened:
        yield opened


@pytest.fixture
def page(run, browser):
    with open_explorer(run[2], browser) as opened:
        yield opened
        assert opened.errors == []


def set_slider(opened, selector: str, value: int) -> None:
    """Move a range input as a drag does: set its value and fire its input event."""
    opened.page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }",
                                 str(value))


def test_page_opens_from_file_without_console_errors_and_shows_the_summary(page, run):
    data = run[1]
    stats = page.settled()
    assert (stats["nodes"], stats["edges"], stats["round"]) == (data.num_nodes, data.num_edges, ROUNDS)
    rows = page.page.eval_on_selector_all("#summary tr", "rows => rows.map(r => [r.dataset.key, r.cells[1].textContent])")
    shown = dict(rows)
    assert list(shown) == list(data.summary)
    for key, value in data.summary.items():
        expected = value if isinstance(value, str) else (f"{value:,}" if isinstance(value, int) else f"{value:.4f}")
        assert shown[key] == expected, key
    assert page.stats()["firstFrameMs"] > 0


def test_hovering_a_neuron_shows_its_tooltip(page, run):
    data = run[1]
    output = int(np.flatnonzero(data.nodes["role"] == 1)[0])
    neuron_id = int(data.nodes["id"][output])
    where = page.call("screenOf", neuron_id)
    page.page.mouse.move(where["x"], where["y"])
    page.page.wait_for_selector("#tooltip:not([hidden])")
    text = page.page.inner_text("#tooltip")
    fan_in, fan_out = data.degrees()
    assert f"neuron id {neuron_id} (index {output})" in text
    assert f"output {data.nodes['output_index'][output]}" in text
    assert f"generation  {data.nodes['generation'][output]}" in text
    assert f"bias        {float(data.nodes['bias'][output]):.4g}" in text.replace("e+", "e")
    assert f"fan-in      {fan_in[output]}" in text and f"fan-out     {fan_out[output]}" in text
    assert f"firing rate {data.nodes['firing_rate'][output]:.3f}" in text
    assert page.page.inner_text("#neuron-text") == text  # the panel shows the same neuron
    assert page.page.inner_text("#field-caption").startswith("receptive field: input-edge weights")


@pytest.mark.parametrize("position", [0, 50, 200, 400, 1000])
def test_threshold_slider_draws_what_python_counts(page, run, position):
    data = run[1]
    set_slider(page, "#threshold", position)
    stats = page.settled()
    drawn, hidden, below = data.edge_counts(stats["threshold"])
    assert (stats["drawnEdges"], stats["hiddenEdges"], stats["belowThreshold"]) == (drawn, hidden, below)
    assert stats["threshold"] == pytest.approx(position / 1000 * float(np.abs(data.weight).max()), rel=1e-6)
    assert page.page.inner_text("#edge-counts").startswith(f"drawn {drawn:,} of {data.num_edges:,} edges")


def test_level_of_detail_counts_what_it_hides(page, run):
    page.page.fill("#max-edges", "25")
    page.page.press("#max-edges", "Enter")
    stats = page.settled()
    assert (stats["drawnEdges"], stats["hiddenEdges"]) == (25, run[1].num_edges - 25)


def test_round_slider_replays_every_round_of_history_json(page, run):
    history = History.load(run[0] / "history.json")
    frames = evolution_frames(history)
    page.page.focus("#round")
    page.page.keyboard.press("Home")
    for k, (record, frame) in enumerate(zip(history.rounds, frames)):
        if k:
            page.page.keyboard.press("ArrowRight")
        stats = page.settled()
        assert stats["round"] == k
        counts = page.call("roundCounts", k)
        assert (counts["edges"], counts["neurons"]) == (record.num_edges, record.num_neurons)
        assert (counts["pruned"], counts["added"]) == (frame.num_pruned, frame.num_added)
        text = page.page.inner_text("#round-counts")
        assert f"edges {record.num_edges:,}, neurons {record.num_neurons:,}, depth {record.depth}" in text
        assert f"pruned {frame.num_pruned:,}, added {frame.num_added:,} this round" in text
        dropped = frame.num_pruned - record.count("prune_edge")  # history.json's own edit counts
        assert (counts["removedNeurons"], counts["droppedWithNeurons"]) == (record.count("remove_neuron"), dropped)
        if record.count("remove_neuron"):
            assert f"neurons removed {record.count('remove_neuron')}, added 0 ({dropped} of the pruned" in text
        if k < ROUNDS:  # earlier rounds: kept, pruned and added edges, all drawn at this size
            assert stats["drawnEdges"] == record.num_edges + frame.num_pruned
    assert page.call("roundCounts", 2)["neurons"] == history.rounds[1].num_neurons - 1  # round 2 removes one


def test_search_finds_a_neuron_by_id(page, run):
    data = run[1]
    neuron_id = int(data.nodes["id"][40])
    page.page.fill("#search", str(neuron_id))
    page.page.press("#search", "Enter")
    assert page.page.inner_text("#search-result") == f"neuron {neuron_id}: generation {data.nodes['generation'][40]}"
    assert page.page.inner_text("#neuron-text").startswith(f"neuron id {neuron_id} (index 40)")
    page.page.fill("#search", "999999")
    page.page.press("#search", "Enter")
    assert page.page.inner_text("#search-result") == "no neuron with id 999999"


def test_screenshot_is_not_blank(page, tmp_path):
    image = Image.open(io.BytesIO(page.page.screenshot())).convert("L")
    graph = image.crop((0, 0, image.width - 320, image.height))
    low, high = graph.getextrema()
    assert high - low > 100
    assert np.mean(np.asarray(graph) < 250) > 0.02  # edges and neurons cover part of the view


@pytest.mark.slow
def test_main_job_sized_net_first_frame_and_interaction_times(tmp_path, browser):
    """1,291 nodes and 39,478 edges, the main job's final size: first frame within 2 s, a pan
    or zoom frame within 50 ms (medians over a drag and wheel turns)."""
    graph = sparse_start(784, 497, 10, fan_in=77, seed=0)
    page = write_explorer(explorer_data(graph, image_shape=(28, 28)), tmp_path / "main.html")
    with open_explorer(page, browser) as opened:
        stats = opened.settled()
        assert stats["drawnEdges"] == graph.num_edges
        assert stats["firstFrameMs"] <= 2000
        times = interaction_ms(opened)
        assert times["pan_ms"] <= 50 and times["zoom_ms"] <= 50, times
        assert opened.errors == []


@pytest.mark.slow
def test_a_million_edges_open_within_five_seconds_under_sixty_bytes_an_edge(tmp_path, browser):
    graph = layered_start(784, 100_000, 10, depth=8, fan_in=10, seed=0)
    page = write_explorer(explorer_data(graph, image_shape=(28, 28)), tmp_path / "big.html")
    assert page.stat().st_size / graph.num_edges < 60
    with open_explorer(page, browser) as opened:
        stats = opened.settled()
        assert stats["firstFrameMs"] <= 5000
        assert stats["drawnEdges"] + stats["hiddenEdges"] == graph.num_edges and stats["hiddenEdges"] > 0
        assert opened.errors == []
