"""Crash-safe writes (ncg/atomic.py): all or nothing, durable, and the permissions of open()."""
from __future__ import annotations

import os
import stat
from contextlib import contextmanager

import pytest

from ncg.atomic import atomic_write, atomic_write_csv, atomic_write_json, atomic_write_text


@contextmanager
def umask(mask: int):
    """Run the body under ``mask`` (this test process only), then restore the old umask."""
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_of_open_under_the_umask(tmp_path, mask, expected):
    with umask(mask):
        atomic_write(tmp_path / "atomic.bin", lambda handle: handle.write(b"x"))
        (tmp_path / "plain.bin").write_bytes(b"x")
    assert mode(tmp_path / "atomic.bin") == expected == mode(tmp_path / "plain.bin")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "data.json"
    atomic_write_json(path, {"old": True})

    def half_then_fail(handle):
        handle.write(b'{"new": ')
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == '{\n  "old": true\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_the_file_and_then_its_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    atomic_write_text(tmp_path / "sub" / "note.txt", "hello")
    assert synced == (["file", "folder"] if os.name == "posix" else ["file"])
    assert (tmp_path / "sub" / "note.txt").read_text() == "hello"


def test_temporary_names_do_not_collide(tmp_path):
    for k in range(20):
        atomic_write_text(tmp_path / "same.txt", str(k))
    assert (tmp_path / "same.txt").read_text() == "19"
    assert [p.name for p in tmp_path.iterdir()] == ["same.txt"]


def test_json_and_csv_formats(tmp_path):
    atomic_write_json(tmp_path / "a.json", [1], end="\n")
    assert (tmp_path / "a.json").read_text() == "[\n  1\n]\n"
    rows = [{"b": 2, "a": 1, "extra": 0}]
    atomic_write_csv(tmp_path / "a.csv", rows, ["a", "b"])
    assert (tmp_path / "a.csv").read_bytes() == b"a,b\r\n1,2\r\n"  # the csv module's default line end
    atomic_write_csv(tmp_path / "b.csv", rows, ["a", "b"], lineterminator="\n")
    assert (tmp_path / "b.csv").read_bytes() == b"a,b\n1,2\n"
