"""Fuzzing the loaders: every mutated file either loads what was written or raises ncg's own error.

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
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncg import NCG, FreeNet, load_freenet, save_freenet
from ncg.build import sparse_start
from ncg.datasets import read_idx, write_idx
from ncg.errors import NCGError
from ncg.io import read_graphml, write_graphml

TRIED: dict[str, int] = {}
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


def test_report_how_many_inputs_were_tried():
    print(f"\nfuzzed inputs: {TRIED}")
    assert sum(TRIED.values()) > 0
