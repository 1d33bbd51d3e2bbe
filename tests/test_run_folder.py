"""The run folder (ncg/run_folder.py): one writer, one reader, the checks before a run writes."""
from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from ncg import NCG, FreeNet
from ncg.errors import NCGError
from ncg.evolve.coactivation import record_coactivation
from ncg.evolve.history import History
from ncg.run_folder import FAILED, FILES, FORMAT, VERSION, RunFolder, metrics_rows


@pytest.fixture
def net() -> FreeNet:
    return FreeNet(NCG.random_dag(12, density=0.4, num_outputs=3, seed=0), in_features=5, seed=0)


def write_run(folder: RunFolder, net: FreeNet) -> None:
    """Every file of a run, through the writer."""
    history = History()
    history.append_graph(net.graph, metrics={"val_accuracy": 0.5}, seconds=1.0)
    folder.write_config(args={"seed": 0, "quick": True, "out": str(folder.path)}, evolve={"rounds": 2},
                        model=net.config())
    folder.write_round(history, net, extra={"round": 0, "image_shape": []})
    folder.write_final(net, record_coactivation(net, torch.randn(32, 5)))
    folder.write_summary({"edges": 7, "test_accuracy": 0.5})
    folder.write_classes("species", "classification", ["setosa", "virginica", "versicolor"])


def test_everything_written_reads_back(tmp_path, net):
    folder = RunFolder(tmp_path / "run")
    write_run(folder, net)
    assert sorted(p.name for p in folder.path.iterdir()) == sorted(FILES)
    config = folder.read_config()
    assert (config["format"], config["version"]) == (FORMAT, VERSION)
    assert config["args"]["quick"] is True and config["model"] == net.config()
    assert folder.read_classes() == ["setosa", "virginica", "versicolor"]
    assert RunFolder(tmp_path / "images").read_classes() is None
    assert folder.stored_args()["seed"] == 0
    model, extra = folder.load_checkpoint()
    x = torch.randn(4, 5)
    assert torch.equal(model(x), net(x)) and extra == {"round": 0, "image_shape": []}
    assert folder.load_model()[2] == "model.pt"
    history = folder.load_history()
    assert len(history) == 1 and history.rounds[0].metrics == {"val_accuracy": 0.5}
    assert folder.read_metrics() == metrics_rows(history.rounds)
    assert (folder.path / "metrics.csv").read_text().splitlines()[0].startswith("round,edges,neurons")
    assert folder.load_coactivation().num_neurons == net.num_neurons
    assert folder.read_summary() == {"edges": 7, "test_accuracy": 0.5}


def test_graphml_stands_in_for_a_missing_checkpoint(tmp_path, net):
    folder = RunFolder(tmp_path)
    assert folder.load_model() == (None, {}, "")
    assert folder.load_history() is None and folder.load_coactivation() is None
    write_run(folder, net)
    folder.file("model.pt").unlink()
    model, extra, source = folder.load_model()
    assert source == "graph.graphml" and extra == {} and model.num_neurons == net.num_neurons


def test_an_old_config_without_format_or_version_reads_as_version_1(tmp_path):
    old = {"args": {"seed": 3, "quick": False}, "evolve": {"rounds": 4}, "model": {}}
    (tmp_path / "config.json").write_text(json.dumps(old, indent=2))
    folder = RunFolder(tmp_path)
    assert folder.read_config() == {**old, "format": FORMAT, "version": 1}
    assert folder.stored_args() == {"seed": 3, "quick": False}


@pytest.mark.parametrize("config, message", [
    ({"format": "ncg.run", "version": 99, "args": {}}, "has version 99; this ncg reads versions"),
    ({"format": "someone.else", "args": {}}, "has format 'someone.else', expected 'ncg.run'"),
])
def test_a_foreign_or_newer_config_is_refused(tmp_path, config, message):
    (tmp_path / "config.json").write_text(json.dumps(config))
    folder = RunFolder(tmp_path)
    for read in (folder.read_config, folder.stored_args):
        with pytest.raises(NCGError, match=message):
            read()


def test_unreadable_configs(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.stored_args() == {}  # none yet
    with pytest.raises(FileNotFoundError):
        folder.read_config()
    (tmp_path / "config.json").write_text('{"args": ')  # cut short by a crash (before atomic writes)
    with pytest.raises(NCGError, match="config.json is not valid JSON"):  # --resume must not skip its check
        folder.stored_args()
    with pytest.raises(NCGError, match="is not valid JSON"):
        folder.read_config()
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(NCGError, match="holds a JSON list, expected an object"):
        folder.read_config()
    with pytest.raises(NCGError, match="holds a JSON list, expected an object"):
        folder.stored_args()
    (tmp_path / "config.json").write_text('{"format": "ncg.run", "version": 2, "args": [1]}')
    with pytest.raises(NCGError, match=r"config.json has no 'args' object \(found \[1\]\)"):
        folder.stored_args()
    (tmp_path / "config.json").write_bytes(b'\xff\xfe{')
    with pytest.raises(NCGError, match="config.json is not valid JSON"):
        folder.stored_args()
    with pytest.raises(NCGError, match="'notes.txt' is no run folder file"):
        folder.file("notes.txt")
    (tmp_path / "summary.json").write_text("[1]")
    with pytest.raises(NCGError, match="summary.json holds a JSON list, expected an object"):
        folder.read_summary()
    (tmp_path / "metrics.json").write_text("[1]")
    with pytest.raises(NCGError, match="metrics.json holds a list whose rows are not all JSON objects"):
        folder.read_metrics()
    (tmp_path / "metrics.json").write_bytes(b"\x00")
    with pytest.raises(NCGError, match="metrics.json is not valid JSON"):
        folder.read_metrics()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600)])
def test_every_run_file_gets_the_permissions_of_the_umask(tmp_path, net, mask, expected):
    old = os.umask(mask)
    try:
        write_run(RunFolder(tmp_path), net)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {name: expected for name in FILES}


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, net):
    folder = RunFolder(tmp_path)
    write_run(folder, net)
    before = folder.file("model.pt").read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    history = folder.load_history()
    with pytest.raises(RuntimeError, match="boom"):
        folder.write_round(history, net, extra={"round": 1, "bad": Unpicklable()})
    assert folder.file("model.pt").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_new_run_refuses_a_folder_holding_a_run(tmp_path, net):
    folder = RunFolder(tmp_path)
    folder.check_new_run()  # empty: fine
    write_run(folder, net)
    with pytest.raises(NCGError, match=r"already holds a run: .*model.pt is the checkpoint of a --quick run; pass "
                                       r"--resume to continue it, --overwrite"):
        folder.check_new_run()
    folder.check_new_run(resume=True)
    folder.check_new_run(overwrite=True)
    (tmp_path / "topology.png").write_bytes(b"png")
    folder.clear()
    assert [p.name for p in tmp_path.iterdir()] == ["topology.png"]  # only the run's files go


def test_resume_needs_an_existing_folder(tmp_path):
    with pytest.raises(NCGError, match=r"--resume: the run folder .*missing does not exist, so there is no run to "
                                       r"continue; check --out, or drop --resume"):
        RunFolder(tmp_path / "missing").check_new_run(resume=True)
    RunFolder(tmp_path).check_new_run(resume=True)  # a folder without a saved round: the run starts


def test_a_stopped_run_leaves_a_resumable_run_or_no_half_written_folder(tmp_path, net):
    created = RunFolder(tmp_path / "created")
    assert created.abandon("x", created=True) == f"nothing was written to {created.path}"
    created.write_config(args={}, evolve={}, model={})
    assert "was removed" in created.abandon("RuntimeError: boom", created=True) and not created.path.exists()

    given = RunFolder(tmp_path / "given")
    given.path.mkdir()
    (given.path / "notes.txt").write_text("mine")
    assert given.abandon("x", created=False) == f"nothing was written to {given.path}"  # untouched
    given.write_config(args={}, evolve={}, model={})
    assert given.abandon("RuntimeError: boom", created=False).endswith(f"{given.path / FAILED} says why")
    assert sorted(p.name for p in given.path.iterdir()) == [FAILED, "notes.txt"]
    assert (given.path / FAILED).read_text() == "RuntimeError: boom\n"
    given.write_config(args={}, evolve={}, model={})  # the next attempt
    assert not (given.path / FAILED).exists()

    saved = RunFolder(tmp_path / "saved")
    write_run(saved, net)
    files = sorted(p.name for p in saved.path.iterdir())
    assert saved.abandon("KeyboardInterrupt: ", created=True).endswith("holds the run up to its last saved round")
    assert sorted(p.name for p in saved.path.iterdir()) == files


def test_resume_compares_the_flags_then_the_checkpoint_config(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write_config(args={"seed": 0, "out": "a", "layers": [4, 4]}, evolve={}, model={})
    same = {"seed": 0, "out": "b", "layers": (4, 4)}  # a tuple is stored as a list
    assert folder.check_resume(same, {"rounds": 2}, {"rounds": 2}, ignore=["out"]) == []
    with pytest.raises(NCGError, match=r"--resume: .* holds a run with other flags \(--seed: 0 \(stored\) vs 1 "
                                       r"\(given\)\); .*--allow-config-change"):
        folder.check_resume({**same, "seed": 1}, {}, None, ignore=["out"])
    assert folder.check_resume({**same, "seed": 1}, {}, None, ignore=["out"], allow_changes=True) == [
        "--seed: 0 (stored) vs 1 (given)"]
    assert folder.resume_changes(same, {"rounds": 3}, {"rounds": 2}, ignore=["out"]) == [
        "EvolveConfig.rounds: 2 (stored) vs 3 (given)"]


def test_metrics_rows_round_the_clock_not_the_metrics():
    history = History()
    history.append_graph(NCG.complete(3, num_outputs=1, seed=0), metrics={"val_accuracy": 0.123456789},
                         seconds=1.23456, timing={"seconds_per_step": 0.0123456789})
    row = metrics_rows(history.rounds)[0]
    assert row["seconds"] == 1.235 and row["seconds_per_step"] == 0.012346 and row["val_accuracy"] == 0.123456789
    assert (row["edges"], row["pruned"], row["added"]) == (3, 0, 0)


def test_repr():
    assert repr(RunFolder("runs/x")) == "RunFolder('runs/x')"
