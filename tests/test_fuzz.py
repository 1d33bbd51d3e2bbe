"""Fuzzing the loaders: every mutated file either loads what was written or raises ncg's own error.

A mutated table (CSV, npz, pt) may still be a valid table, so there the requirement is weaker:
an :class:`~ncg.errors.NCGError`, or splits whose every value is finite.

Each test mutates a valid file (byte flips, overwritten runs, truncation, insertions) with
hypothesis for a bounded number of examples (a few in the default run, 2,000 under
``-m slow``), and requires one of two outcomes: an
:class:`~ncg.errors.NCGError` subclass, or a result identical to the source. Never another
exception, a hang (hypothesis' deadline), a NaN model or a silently different one. The counts of
inputs tried are printed (``pytest -s tests/test_fuzz.py``).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tracemalloc
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncg import NCG, FreeNet, load_freenet, save_freenet
from ncg.build import sparse_start
from ncg.checkpoint import payload_checksum
from ncg.idx import read_idx, write_idx
from ncg.errors import NCGError
from ncg.evolve.coactivation import Coactivation
from ncg.evolve.history import History
from ncg.io import read_graphml, write_graphml
from ncg.tables import load_table

TRIED: dict[str, int] = {}
FUZZ = settings(max_examples=2000, deadline=timedelta(seconds=10), suppress_health_check=list(HealthCheck))
SIZES = settings(max_examples=40, deadline=timedelta(seconds=1), suppress_health_check=list(HealthCheck))
"""Declared-size mutations: each must be refused or loaded within a second (the deadline)."""
PEAK_BYTES = 50 * 2**20
DECLARED = st.one_of(st.integers(-2, 40), st.sampled_from([10**8, 10**10, 2**31, 2**63 - 1, 2**64]))
"""A size a mutated file may declare: small (near the true ones) or huge."""
EXAMPLES = pytest.mark.parametrize("examples", [50, pytest.param(2000, marks=pytest.mark.slow)])
"""Examples per fuzz test: 50 by default, 2,000 among the slow tests."""
PROBE = torch.linspace(-1, 1, 5 * 6).reshape(5, 6)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=timedelta(seconds=10), suppress_health_check=list(HealthCheck))


@st.composite
def mutations(draw, size: int, region: tuple[int, int] | None = None):
    """A list of edits to a byte string of ``size`` bytes: flips, overwrites, cuts, inserts."""
    low, high = region or (0, size)
    kind = draw(st.sampled_from(["flip", "overwrite", "truncate", "insert"]))
    at = draw(st.integers(low, max(low, high - 1)))
    if kind == "flip":
        return [(kind, at, draw(st.integers(1, 255)))]
    if kind == "overwrite":
        return [(kind, at, draw(st.binary(min_size=1, max_size=8)))]
    if kind == "insert":
        return [(kind, at, draw(st.binary(min_size=1, max_size=8)))]
    return [(kind, at, None)]


def mutate(data: bytes, edits) -> bytes:
    out = bytearray(data)
    for kind, at, value in edits:
        if kind == "flip":
            out[at] ^= value
        elif kind == "overwrite":
            out[at:at + len(value)] = value
        elif kind == "insert":
            out[at:at] = value
        else:
            del out[at:]
    return bytes(out)


def _same_model(a: FreeNet, b: FreeNet) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape or not torch.equal(sa[k], sb[k]) for k in sa):
        return False
    out = b(PROBE)
    return bool(torch.isfinite(out).all()) and torch.allclose(a(PROBE), out, rtol=1e-5, atol=1e-6)


def _source() -> FreeNet:
    torch.manual_seed(0)
    return FreeNet(NCG.random_dag(12, density=0.4, num_outputs=3, seed=0), in_features=6, out_features=2, seed=0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    net = _source()
    write_graphml(net, folder / "inline.graphml", inline_dense=True)
    save_freenet(net, folder / "model.pt", extra={"round": 1})
    images = np.arange(3 * 4 * 4, dtype=np.uint8).reshape(3, 4, 4)
    write_idx(folder / "raw-idx3-ubyte", images)
    (folder / "packed-idx3-ubyte.gz").write_bytes(gzip.compress((folder / "raw-idx3-ubyte").read_bytes()))
    return folder, net, images


def _attempt(name: str, load, check) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1
    try:
        result = load()
    except NCGError:
        return
    TRIED[f"{name} loaded unchanged"] = TRIED.get(f"{name} loaded unchanged", 0) + 1
    assert check(result), f"{name}: a mutated file loaded as something else"


def _attempt_bounded(name: str, load, check) -> None:
    """:func:`_attempt` under tracemalloc: a refusal or a load must stay under ``PEAK_BYTES``."""
    tracemalloc.start()
    try:
        _attempt(name, load, check)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BYTES, f"{name}: a peak of {peak / 2**20:.0f} MiB"


def _fuzz_file(name: str, source: bytes, work: Path, load, check, examples: int) -> None:
    """Write ``examples`` mutations of ``source`` to ``work`` and require ``load(work)`` to raise or
    pass ``check``."""

    @fuzz(examples)
    @given(st.data())
    def run(data):
        work.write_bytes(mutate(source, data.draw(mutations(len(source)))))
        _attempt(name, lambda: load(work), check)

    run()


@EXAMPLES
def test_mutated_graphml_loads_the_same_model_or_raises(files, tmp_path_factory, examples):
    folder, net, _ = files
    _fuzz_file("graphml", (folder / "inline.graphml").read_bytes(), tmp_path_factory.mktemp("graphml") / "net.graphml",
               read_graphml, lambda model: _same_model(net, model), examples)


@EXAMPLES
def test_mutated_checkpoints_load_the_same_model_or_raise(files, tmp_path_factory, examples):
    folder, net, _ = files
    _fuzz_file("checkpoint", (folder / "model.pt").read_bytes(), tmp_path_factory.mktemp("ckpt") / "model.pt",
               load_freenet, lambda loaded: _same_model(net, loaded[0]) and loaded[1] == {"round": 1}, examples)


@EXAMPLES
def test_mutated_idx_files_read_the_same_array_or_raise(files, tmp_path_factory, examples):
    folder, _, images = files
    packed = (folder / "packed-idx3-ubyte.gz").read_bytes()
    raw = (folder / "raw-idx3-ubyte").read_bytes()
    work = tmp_path_factory.mktemp("idx")

    digest = hashlib.sha256(raw).hexdigest()

    @fuzz(examples)
    @given(st.data())
    def run(data):
        # gzip carries a CRC and a checked file (sha256=, as the loaders pass for known files)
        # a digest, so any byte may change; an unchecked raw file has neither, so only its
        # header (magic, dimensions) and its length are fair game: changed pixels are valid data.
        compressed = data.draw(st.booleans())
        checked = data.draw(st.booleans())
        source = packed if compressed else raw
        edits = data.draw(mutations(len(source), None if compressed or checked else (0, 16)))
        if not compressed and data.draw(st.booleans()):
            edits = [("truncate", data.draw(st.integers(0, len(raw) - 1)), None)]
        path = work / ("x-idx3-ubyte.gz" if compressed else "x-idx3-ubyte")
        path.write_bytes(mutate(source, edits))
        _attempt("idx", lambda: read_idx(path, sha256=digest if checked else None),
                 lambda array: array.shape == images.shape and np.array_equal(array, images))

    run()


GRAPHML_SIZES = ("in_features", "out_features", "num_neurons", "num_edges", "num_outputs")


def test_graphml_declaring_other_sizes_loads_the_same_model_or_raises(files, tmp_path_factory):
    folder, net, _ = files
    text = (folder / "inline.graphml").read_text()
    path = tmp_path_factory.mktemp("graphml-sizes") / "net.graphml"

    @SIZES
    @given(st.data())
    def run(data):
        mutated = text
        for name in data.draw(st.lists(st.sampled_from(GRAPHML_SIZES), min_size=1, max_size=3, unique=True)):
            value = data.draw(DECLARED)
            mutated = re.sub(f'(<data key="graph_{name}">)[^<]*', rf"\g<1>{value}", mutated)
            mutated = re.sub(f'("{name}": )[0-9]+', rf"\g<1>{value}", mutated)
        for name in data.draw(st.lists(st.sampled_from(["encoder_shape", "decoder_shape"]), max_size=2, unique=True)):
            shape = data.draw(st.lists(DECLARED, max_size=3))
            mutated = re.sub(f'(<data key="graph_{name}">)[^<]*', rf"\g<1>{json.dumps(shape)}", mutated)
        path.write_text(mutated)
        _attempt_bounded("graphml sizes", lambda: read_graphml(path), lambda model: _same_model(net, model))

    run()


def test_checkpoints_declaring_other_sizes_load_the_same_model_or_raise(files, tmp_path_factory):
    folder, net, _ = files
    source = torch.load(folder / "model.pt", weights_only=True)
    path = tmp_path_factory.mktemp("ckpt-sizes") / "model.pt"

    @SIZES
    @given(config=st.dictionaries(st.sampled_from(["in_features", "out_features", "block_size"]), DECLARED,
                                  min_size=1),
           num_neurons=st.one_of(st.none(), DECLARED))
    def run(config, num_neurons):
        payload = {**source, "config": {**source["config"], **config}, "graph": dict(source["graph"])}
        if num_neurons is not None:
            payload["graph"]["num_neurons"] = num_neurons
        payload["checksum"] = payload_checksum(payload)  # recomputed, as an attacker would
        torch.save(payload, path)
        _attempt_bounded("checkpoint sizes", lambda: load_freenet(path),
                         lambda loaded: _same_model(net, loaded[0]))

    run()


def _npy(value: np.ndarray, shape: tuple[int, ...] | None = None) -> bytes:
    """``value`` as ``.npy`` bytes, its header declaring ``shape`` (default: its own)."""
    handle = io.BytesIO()
    header = {"descr": value.dtype.str, "fortran_order": False, "shape": value.shape if shape is None else shape}
    np.lib.format.write_array_header_1_0(handle, header)
    return handle.getvalue() + value.tobytes()


def test_coactivation_files_declaring_other_shapes_load_the_same_or_raise(tmp_path):
    source = Coactivation(4, 10, np.array([0.5, 0.2, 0.4, 0.0]), np.array([0, 1, 2]), np.array([3, 3, 3]),
                          np.array([0.3, 0.1, 0.0]))
    names = ("num_neurons", "num_samples", "firing_rate", "src", "dst", "joint")
    path = tmp_path / "coactivation.npz"

    @SIZES
    @given(name=st.sampled_from(names), shape=st.lists(DECLARED.filter(lambda s: 0 <= s < 2**63), max_size=2),
           compressed=st.booleans())
    def run(name, shape, compressed):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
            for member in names:
                value = np.asarray(getattr(source, member))
                archive.writestr(f"{member}.npy", _npy(value, tuple(shape) if member == name else None))
        _attempt_bounded("coactivation sizes", lambda: Coactivation.load(path),
                         lambda loaded: all(np.array_equal(getattr(loaded, m), getattr(source, m)) for m in names))

    run()


def test_histories_declaring_other_shapes_load_the_same_or_raise(tmp_path):
    history = History()
    history.append_graph(NCG.complete(4, num_outputs=2))
    data = history.to_dict()
    path = tmp_path / "history.json"

    @SIZES
    @given(name=st.sampled_from(["edges", "outputs", "order", "inputs", "num_edges", "num_neurons"]),
           shape=st.lists(DECLARED, min_size=1, max_size=2))
    def run(name, shape):
        record = dict(data["rounds"][0])
        record[name] = shape[0] if name.startswith("num_") else {**record[name], "shape": shape}
        path.write_text(json.dumps({**data, "rounds": [record]}))
        _attempt_bounded("history sizes", lambda: History.load(path),
                         lambda loaded: loaded.to_dict() == data)

    run()


@EXAMPLES
def test_arbitrary_edge_lists_build_a_valid_graph_or_raise(examples):
    @fuzz(examples)
    @given(
        edges=st.lists(st.tuples(st.integers(-3, 12), st.integers(-3, 12)), max_size=30),
        num_neurons=st.integers(-1, 10),
        outputs=st.lists(st.integers(-2, 11), max_size=4),
        inputs=st.lists(st.integers(-2, 11), max_size=3),
    )
    def run(edges, num_neurons, outputs, inputs):
        TRIED["edge list"] = TRIED.get("edge list", 0) + 1
        edge_index = torch.tensor(edges, dtype=torch.long).reshape(-1, 2).t()
        try:
            graph = NCG(edge_index, num_neurons, torch.tensor(outputs, dtype=torch.long),
                        inputs=torch.tensor(inputs, dtype=torch.long), unreachable="ignore")
            net = FreeNet(graph, in_features=max(1, graph.num_inputs), seed=0)
        except NCGError:
            return
        graph.validate(unreachable="ignore")
        assert torch.isfinite(net(torch.randn(2, net.in_features))).all()

    run()


def test_sparse_start_survives_its_own_round_trip(tmp_path):
    net = FreeNet(sparse_start(6, 5, 2, fan_in=3, seed=0), in_features=6, seed=0)
    write_graphml(net, tmp_path / "s.graphml")
    assert _same_model(net, read_graphml(tmp_path / "s.graphml"))


TABLE_TOKENS = [b"nan", b"NaN", b"inf", b"-inf", b"1e309", b"1e39", b"-3.5e38", b"", b",", b"\n", b'"', b"\r",
                b"\xff\xfe", b"\xef\xbb\xbf", b"\x00", b"setosa", b"1_0", b" "]
"""Bytes a table fuzz inserts or writes over a cell: non-finite and overflowing numbers, CSV
syntax, byte order marks, NUL, a text label."""


@st.composite
def table_mutations(draw, size: int):
    """Byte mutations, or a token of TABLE_TOKENS written into the file at a random place."""
    if draw(st.booleans()):
        return draw(mutations(size))
    return [(draw(st.sampled_from(["insert", "overwrite"])), draw(st.integers(0, max(0, size - 1))),
             draw(st.sampled_from(TABLE_TOKENS)) or b"x")]


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    """A CSV with text labels, one with numeric labels, an npz and a pt file of the same table."""
    folder = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 3)).round(3), np.arange(12) % 3
    names = np.array(["setosa", "versicolor", "virginica"])
    rows = [f"{a},{b},{c},{label}" for (a, b, c), label in zip(x.tolist(), names[y])]
    (folder / "labels.csv").write_text("a,b,c,species\n" + "\n".join(rows) + "\n")
    rows = [f"{a},{b},{c},{label}" for (a, b, c), label in zip(x.tolist(), y)]
    (folder / "numbers.csv").write_bytes(("a,b,c,species\n" + "\n".join(rows) + "\n").encode("utf-16"))
    np.savez(folder / "table.npz", x=x, y=y)
    torch.save({"x": torch.from_numpy(x), "y": torch.from_numpy(y)}, folder / "table.pt")
    return folder


def _finite_splits(splits) -> bool:
    return all(bool(torch.isfinite(t.float()).all()) for split in (splits.train, splits.val, splits.test)
               for t in split.tensors)


def fuzz_tables(folder: Path, work: Path, examples: int) -> None:
    """Mutate each table file ``examples`` times: load_table raises NCGError or loads finite splits."""
    for name in ("labels.csv", "numbers.csv", "table.npz", "table.pt"):
        source, path = (folder / name).read_bytes(), work / name

        @settings(FUZZ, max_examples=examples)
        @given(st.data())
        def run(data):
            path.write_bytes(mutate(source, data.draw(table_mutations(len(source)))))
            _attempt("table", lambda: load_table(path, target="species", standardize=data.draw(st.booleans())),
                     _finite_splits)

        run()


def test_mutated_tables_load_finite_splits_or_raise(tables, tmp_path):
    fuzz_tables(tables, tmp_path, examples=50)


@pytest.mark.slow
def test_a_thousand_mutations_of_each_table(tables, tmp_path):
    fuzz_tables(tables, tmp_path, examples=1000)


def test_report_how_many_inputs_were_tried():
    print(f"\nfuzzed inputs: {TRIED}")
    assert sum(TRIED.values()) > 0
