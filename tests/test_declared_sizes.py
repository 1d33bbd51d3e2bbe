"""Sizes declared in a file are checked against its content before anything is allocated.

Every loader gets a small hostile file that declares a huge shape (an ``in_features`` of 10^8 or
10^10 in a GraphML file or a checkpoint, a ``.npy`` header or an encoded array of 10^9 values):
each must raise an :class:`~ncg.errors.NCGError` within a second and under 50 MB of traced peak
memory (numpy and Python allocations; torch's allocator is not traced, and the time bound is
what catches a tensor of that size being filled).
"""
from __future__ import annotations

import base64
import io
import json
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ncg import NCG, FreeNet, load_freenet, save_freenet
from ncg.bounded import DEFLATE_MAX_RATIO, declared_size, inflate, read_npz
from ncg.checkpoint import payload_checksum
from ncg.errors import CheckpointError, GraphMLError, NCGError
from ncg.evolve.coactivation import Coactivation
from ncg.evolve.edits import EditSet, decode_array, encode_array
from ncg.evolve.history import History
from ncg.io import read_graphml, write_graphml
from ncg.run_folder import RunFolder

SECONDS, PEAK_BYTES = 1.0, 50 * 2**20


def refused(load, error: type[NCGError] = NCGError, match: str | None = None) -> str:
    """Run ``load()`` and require ``error`` quickly and in little memory; its message."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error, match=match) as caught:
            load()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < SECONDS, f"refused after {seconds:.2f} s"
    assert peak < PEAK_BYTES, f"refused after a peak of {peak / 2**20:.0f} MiB"
    return str(caught.value)


def lying_npy(declared: tuple[int, ...], data: bytes, dtype: str = "<f8") -> bytes:
    """A ``.npy`` file whose header declares ``declared`` but whose data is ``data``."""
    handle = io.BytesIO()
    np.lib.format.write_array_header_1_0(handle, {"descr": dtype, "fortran_order": False, "shape": declared})
    return handle.getvalue() + data


def write_npz(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, content in members.items():
            archive.writestr(f"{name}.npy", content)


@pytest.fixture(scope="module")
def net() -> FreeNet:
    return FreeNet(NCG.complete(4, num_outputs=2, seed=0), in_features=3, seed=0)


# ---------------------------------------------------------------- ncg.bounded
@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=2000), level=st.integers(0, 9), change=st.integers(-3, 3))
def test_inflate_returns_exactly_the_declared_bytes_or_raises(data, level, change):
    packed = zlib.compress(data, level)
    assert inflate(packed, len(data), "x") == data
    if change:
        size = max(0, len(data) + change)
        if size != len(data):
            with pytest.raises(NCGError, match="declares"):
                inflate(packed, size, "x")


def test_inflate_refuses_a_size_the_data_cannot_hold_before_inflating():
    packed = zlib.compress(bytes(10**6), 9)  # about 1 KB of zeros' stream
    message = refused(lambda: inflate(packed, 10**12, "field 'edges'"))
    assert message.startswith(f"field 'edges' declares {10**12} bytes, more than its {len(packed)} compressed bytes")
    assert len(inflate(packed, 10**6, "x")) == 10**6  # the densest stream there is stays within the bound
    assert 10**6 <= DEFLATE_MAX_RATIO * len(packed)
    with pytest.raises(NCGError, match="is not valid zlib data"):
        inflate(b"not zlib", 3, "x")


def test_declared_size_refuses_bad_shapes_and_dtypes():
    assert declared_size((2, 3), "<i8", "x") == ((2, 3), np.dtype("<i8"), 48)
    for shape in ([-1], [1.5], "12", [True]):
        with pytest.raises(NCGError, match="is not a list of non-negative ints"):
            declared_size(shape, "<f4", "x")
    with pytest.raises(NCGError, match="is not numeric"):
        declared_size([1], "O", "x")
    with pytest.raises(NCGError, match="is not a numpy dtype"):
        declared_size([1], "nonsense", "x")


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_read_npz_reads_what_numpy_writes(tmp_path, compression):
    arrays = {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.asfortranarray(np.eye(3)), "c": np.float32(2)}
    path = tmp_path / "x.npz"
    (np.savez_compressed if compression == zipfile.ZIP_DEFLATED else np.savez)(path, **arrays)
    read = read_npz(path)
    assert read.keys() == arrays.keys()
    for name, array in arrays.items():
        assert read[name].dtype == np.asarray(array).dtype and np.array_equal(read[name], array)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_read_npz_refuses_a_header_that_declares_more_than_the_member_holds(tmp_path, compression):
    path = tmp_path / "x.npz"
    write_npz(path, {"x": lying_npy((10**9,), bytes(80))}, compression)
    assert "declares shape [1000000000]" in refused(lambda: read_npz(path))
    write_npz(path, {"x": lying_npy((11,), bytes(80))}, compression)  # within the bound, but short
    assert "(88 bytes) but holds 80 bytes" in refused(lambda: read_npz(path))


def test_read_npz_refuses_objects_and_foreign_members(tmp_path):
    path = tmp_path / "x.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    assert "is not numeric" in refused(lambda: read_npz(path))
    write_npz(path, {"x": b"\x93NUMPY\x03\x00junk"})
    assert "has .npy format version (3, 0)" in refused(lambda: read_npz(path))
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    assert "'readme.txt' is no .npy array" in refused(lambda: read_npz(path))
    path.write_bytes(b"PK\x03\x04 not a zip")
    assert "is not a readable .npz archive" in refused(lambda: read_npz(path))


# ---------------------------------------------------------------- GraphML
def _declare_in_features(text: str, in_features: int) -> str:
    for old, new in (('"graph_in_features">3<', f'"graph_in_features">{in_features}<'),
                     ('"in_features": 3', f'"in_features": {in_features}'),
                     ('"graph_encoder_shape">[4, 3]<', f'"graph_encoder_shape">[4, {in_features}]<')):
        assert old in text
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("in_features", [10**8, 10**10])
@pytest.mark.parametrize("inline", [True, False])
def test_graphml_declaring_a_huge_encoder_is_refused(tmp_path, net, in_features, inline):
    path = tmp_path / "net.graphml"
    write_graphml(net, path, inline_dense=inline)
    path.write_text(_declare_in_features(path.read_text(), in_features))
    message = refused(lambda: read_graphml(path), GraphMLError)
    assert "shape [4, 3]" in message or "holds 12 values" in message
    if not inline:  # a side file that declares the same size, and holds 12 values
        write_npz(tmp_path / "net.weights.npz", {"encoder_weight": lying_npy((4, in_features), bytes(48), "<f4")})
        assert "declares shape [4, " in refused(lambda: read_graphml(path), GraphMLError)


def test_graphml_declaring_a_huge_linear_decoder_is_refused(tmp_path):
    model = FreeNet(NCG.complete(4, num_outputs=2, seed=0), in_features=3, out_features=5, seed=0)
    path = tmp_path / "net.graphml"
    write_graphml(model, path, inline_dense=True)
    text = path.read_text()
    for old, new in (('"graph_out_features">5<', f'"graph_out_features">{10**9}<'),
                     ('"out_features": 5', f'"out_features": {10**9}')):
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    assert "the config and the nodes need" in refused(lambda: read_graphml(path), GraphMLError)


# ---------------------------------------------------------------- checkpoints
def _resave(path: Path, change) -> None:
    """Load the payload at ``path``, let ``change`` alter it, recompute the checksum, save it."""
    payload = torch.load(path, weights_only=True)
    change(payload)
    payload["checksum"] = payload_checksum(payload)  # an attacker recomputes it
    torch.save(payload, path)


@pytest.mark.parametrize("field, value", [("in_features", 10**8), ("in_features", 10**10),
                                          ("out_features", 10**9)])
def test_a_checkpoint_declaring_a_huge_model_is_refused_though_its_checksum_matches(tmp_path, net, field, value):
    path = tmp_path / "net.pt"
    save_freenet(net, path)
    _resave(path, lambda payload: payload["config"].update({field: value, "decoder": "auto"}))
    message = refused(lambda: load_freenet(path), CheckpointError)
    assert "the config and graph need shape" in message or "does not build a FreeNet" in message


def test_a_checkpoint_whose_config_is_no_dict_is_refused(tmp_path, net):
    path = tmp_path / "net.pt"
    save_freenet(net, path)
    _resave(path, lambda payload: payload.update(config=[1, 2]))
    assert "config must be a dict, got list" in refused(lambda: load_freenet(path), CheckpointError)


# ---------------------------------------------------------------- coactivation
def _coactivation_members() -> dict[str, bytes]:
    members = {}
    for name, value in (("num_neurons", np.int64(3)), ("num_samples", np.int64(10)),
                        ("firing_rate", np.array([0.5, 0.2, 0.4])), ("src", np.array([0, 1])),
                        ("dst", np.array([2, 2])), ("joint", np.array([0.3, 0.1]))):
        handle = io.BytesIO()
        np.save(handle, value)
        members[name] = handle.getvalue()
    return members


def test_coactivation_files_are_checked_against_their_arrays(tmp_path):
    path = tmp_path / "coactivation.npz"
    write_npz(path, _coactivation_members(), zipfile.ZIP_DEFLATED)
    assert Coactivation.load(path).num_pairs == 2
    hostile = {
        "firing_rate": (lying_npy((10**9,), bytes(24)), "declares shape [1000000000]"),
        "num_neurons": (np.int64(10**12), "num_neurons is 1000000000000 but firing_rate has shape [3]"),
        "src": (np.array([0, 7]), "src must hold neuron indices 0 .. 2"),
        "joint": (np.array([0.3, np.nan]), "joint must hold rates in"),
        "dst": (np.array([2]), "must be 1-D of one length"),
        "num_samples": (np.array([1, 2]), "num_samples must be a non-negative int"),
    }
    for name, (value, match) in hostile.items():
        members = _coactivation_members()
        if not isinstance(value, bytes):
            handle = io.BytesIO()
            np.save(handle, value)
            value = handle.getvalue()
        members[name] = value
        write_npz(path, members, zipfile.ZIP_DEFLATED)
        assert match in refused(lambda: Coactivation.load(path)), name
    del members["joint"]
    write_npz(path, members)
    assert "lacks the arrays ['joint']" in refused(lambda: Coactivation.load(path))
    assert "does not exist" in refused(lambda: Coactivation.load(tmp_path / "none.npz"))


# ---------------------------------------------------------------- edits, history, run folder
def test_encoded_arrays_declaring_a_huge_shape_are_refused():
    encoded = encode_array(np.arange(4))
    assert "more than its" in refused(lambda: decode_array({**encoded, "shape": [10**9]}, "edges"))
    assert "declares 40 bytes but inflates to 32" in refused(lambda: decode_array({**encoded, "shape": [5]}, "x"))
    assert "is not numeric" in refused(lambda: decode_array({**encoded, "dtype": "O"}, "x"))
    assert "lacks its 'zlib' text" in refused(lambda: decode_array({"shape": [4]}, "x"))
    assert "is a list of" in refused(lambda: decode_array(["a", "b"], "x"))
    columns = EditSet.empty().to_dict()
    columns["source"] = {**columns["source"], "shape": [10**10]}
    assert "edit column 'source' declares" in refused(lambda: EditSet.from_dict(columns))


def test_histories_declaring_more_than_their_arrays_are_refused(tmp_path):
    history = History()
    history.append_graph(NCG.complete(3))
    path = tmp_path / "history.json"
    data = history.to_dict()
    record = data["rounds"][0]
    for change, match in (
        ({"edges": {**record["edges"], "shape": [2, 10**9]}}, "round 0: edges declares"),
        ({"num_edges": 10**9}, "round 0: num_edges is 1000000000 but its arrays hold 3"),
        ({"num_neurons": 7}, "num_neurons is 7 but its arrays hold 3"),
        ({"extra_field": 1}, "a round record must be a dict with the fields"),
    ):
        path.write_text(json.dumps({**data, "rounds": [{**record, **change}]}))
        message = refused(lambda: RunFolder(tmp_path).load_history())
        assert match in message and str(path) in message
    path.write_text("{")
    assert "could not be read as JSON" in refused(lambda: History.load(path))
    path.write_text(json.dumps(data))
    assert History.load(path).rounds[0].num_edges == 3


def test_base64_of_the_encoded_arrays_is_checked():
    encoded = encode_array(np.arange(4))
    broken = {**encoded, "zlib": encoded["zlib"][:-4] + "!!!!"}
    assert "is not base64" in refused(lambda: decode_array(broken, "x"))
    assert base64.b64decode(encoded["zlib"])  # the field refused above is otherwise valid
