"""TensorBoardCallback: the event file holds every round's scalars, histograms and figure."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

from ncg import NCG, FreeNet  # noqa: E402
from ncg.evolve import EditBudget, EvolveConfig, FreeEvolve  # noqa: E402
from ncg.tensorboard import TensorBoardCallback  # noqa: E402


def _run(log_dir, **kwargs):
    torch.manual_seed(0)
    x, y = torch.randn(200, 5), torch.randint(0, 3, (200,))
    net = FreeNet(NCG.complete(12, num_outputs=3, seed=0), in_features=5, seed=0)
    board = TensorBoardCallback(log_dir, **kwargs)
    config = EvolveConfig(rounds=2, record_samples=100, tau=0.1, stop_when_unchanged=False,
                          budget=EditBudget(prune_fraction=0.2, add_fraction=0.0))
    history = FreeEvolve(net, config, callbacks=[board]).run((x, y), (x[:50], y[:50]))
    board.close()
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0, "images": 0})
    events.Reload()
    return history, events


def test_scalars_per_round_read_back(tmp_path):
    history, events = _run(tmp_path)
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "val/loss", "val/accuracy", "graph/edges", "graph/neurons",
            "graph/depth", "edits/prune_edge", "edits/add_edge", "timing/seconds_per_step"} <= tags
    rounds = history.rounds[1:]  # round 0 is the start, before any callback
    for tag, value in (("graph/edges", lambda r: r.num_edges), ("edits/prune_edge", lambda r: r.count("prune_edge")),
                       ("val/accuracy", lambda r: r.metrics["val_accuracy"]),
                       ("timing/seconds_per_step", lambda r: r.timing["seconds_per_step"])):
        read = events.Scalars(tag)
        assert [e.step for e in read] == [r.round for r in rounds]
        assert [e.value for e in read] == pytest.approx([value(r) for r in rounds], rel=1e-6)
    assert history.rounds[1].count("prune_edge") > 0
    assert {"weights/weight", "weights/bias"} <= set(events.Tags()["histograms"])


@pytest.mark.slow
def test_figure_per_round(tmp_path):
    pytest.importorskip("matplotlib")
    from viz import draw_topology

    history, events = _run(tmp_path, histograms=False, figure=draw_topology)
    assert [e.step for e in events.Images("topology")] == [r.round for r in history.rounds[1:]]
    assert events.Tags()["histograms"] == []


def test_training_metrics_per_epoch(tmp_path):
    history, events = _run(tmp_path)
    read = events.Scalars("epoch/train_loss")
    per_round, final = EvolveConfig().epochs_per_round, EvolveConfig().final_epochs
    ends = [per_round, 2 * per_round, 2 * per_round + final]  # two rounds, then the fine-tuning
    assert [e.step for e in read] == list(range(1, ends[-1] + 1))
    by_step = {e.step: e.value for e in read}  # a round's training metric is its last epoch's
    assert [by_step[end] for end in ends] == pytest.approx([r.metrics["train_loss"] for r in history.rounds[1:]])
