from __future__ import annotations

import pytest
import torch

from ncg import NCG, FreeNet, load_freenet, save_freenet
from ncg.checkpoint import atomic_save
from ncg.errors import CheckpointError


@pytest.fixture
def net():
    graph = NCG.random_dag(30, density=0.3, num_outputs=4, seed=0)
    return FreeNet(graph, in_features=6, out_features=3, activation="square_relu", seed=0)


def test_round_trip_gives_identical_outputs(tmp_path, net):
    path = tmp_path / "model.pt"
    save_freenet(net, path, extra={"round": 2})
    loaded, extra = load_freenet(path)
    x = torch.randn(9, 6)
    assert torch.equal(loaded(x), net(x))
    assert extra == {"round": 2}
    assert loaded.config() == net.config()
    assert torch.equal(loaded.edge_index, net.edge_index)


def test_truncated_file_is_a_clear_error(tmp_path, net):
    path = tmp_path / "model.pt"
    save_freenet(net, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, damaged or not a torch checkpoint"):
        load_freenet(path)


def test_foreign_files_are_rejected(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_freenet(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(CheckpointError, match="not an ncg FreeNet checkpoint"):
        load_freenet(other)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_freenet(tmp_path / "missing.pt")


def test_wrong_version_is_named(tmp_path, net):
    path = tmp_path / "model.pt"
    save_freenet(net, path)
    payload = torch.load(path, weights_only=True)
    payload["version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="format version 99"):
        load_freenet(path)


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "state.pt"
    atomic_save({"a": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"a": Unpicklable()}, path)
    assert torch.load(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_float64_model_round_trips_in_float64(tmp_path, net):
    net = net.double()
    path = tmp_path / "model.pt"
    save_freenet(net, path)
    loaded, _ = load_freenet(path)
    assert loaded.weight.dtype == torch.float64
    x = torch.randn(3, 6, dtype=torch.float64)
    assert torch.equal(loaded(x), net(x))


def _rewrite(path, change):
    """Load a checkpoint's payload, apply ``change`` to it and save it back (checksum kept)."""
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)


def _resealed(change):
    """``change``, then a recomputed checksum: corruption that the checksum cannot see."""
    from ncg.checkpoint import payload_checksum

    def apply(payload):
        change(payload)
        payload["checksum"] = payload_checksum(payload)

    return apply


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["state_dict"]["weight"].__setitem__(0, 1e35), "checksum does not match"),
        (lambda p: p["extra"].__setitem__("round", 7), "checksum does not match"),
        (_resealed(lambda p: p["state_dict"]["weight"].__setitem__(0, float("nan"))), "state_dict\\['weight'\\] holds NaN"),
        (_resealed(lambda p: p["state_dict"]["encoder.weight"].__setitem__((0, 0), float("inf"))), "encoder.weight"),
        (_resealed(lambda p: p["state_dict"].__setitem__("edge_index", p["state_dict"]["edge_index"] * 0 + 99)),
         "state_dict\\['edge_index'\\] differs from the graph section"),
        (_resealed(lambda p: p["state_dict"].__setitem__("weight", p["state_dict"]["weight"].half())),
         "has dtype torch.float16"),
        (_resealed(lambda p: p.__setitem__("dtype", "bfloat16")), "dtype 'bfloat16' is not one of"),
    ],
)
def test_altered_checkpoints_are_refused_naming_the_field(tmp_path, net, change, message):
    path = tmp_path / "model.pt"
    save_freenet(net, path, extra={"round": 2})
    _rewrite(path, change)
    with pytest.raises(CheckpointError, match=message):
        load_freenet(path)


def test_version_1_files_without_checksum_still_load(tmp_path, net):
    path = tmp_path / "model.pt"
    save_freenet(net, path)

    def downgrade(payload):
        payload["version"] = 1
        del payload["checksum"]
        del payload["state_dict"]["inputs"]
        del payload["graph"]["inputs"]

    _rewrite(path, downgrade)
    loaded, _ = load_freenet(path)
    x = torch.randn(3, 6)
    assert torch.equal(loaded(x), net(x))
