"""Building ncg's C++ extensions: a killed build never blocks a later one, a build says so.

The builds here compile a one-function pybind11 module (a few seconds), not sweep.cpp, so that
they are quick and do not depend on the real kernel.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from ncg.kernels.build import LOCK_FILE, build_lock, load

pytest.importorskip("fcntl", reason="without flock the build lock falls back to its age (test_sweep)")

TINY_SOURCE = """\
#include <pybind11/pybind11.h>
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("answer", [] { return 42; }); }
"""

# Runs in a subprocess: holds the build lock of argv[1] until it is killed or its stdin closes.
HOLD = """\
import sys
from ncg.kernels.build import build_lock
with build_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""

# Runs in a subprocess: builds and imports the extension in argv[1].
BUILD = """\
import sys
from ncg.kernels.build import load
print(load(sys.argv[1]).answer())
"""

SECOND_BUILD_BOUND = 120
"""Seconds the build after a killed one may take (a tiny build takes ~10 s on 2 busy cores);
far below the 600 s after which the old age rule cleared the lock."""


def _can_build() -> bool:
    from torch.utils import cpp_extension

    return cpp_extension.is_ninja_available() and shutil.which(os.environ.get("CXX", "c++")) is not None


needs_compiler = pytest.mark.skipif(not _can_build(), reason="no C++ compiler or no ninja")


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    env.pop("NCG_DISABLE_CPP", None)
    return env


def test_a_leftover_torch_lock_is_removed_when_no_builder_lives(tmp_path):
    lock = tmp_path / "lock"
    lock.write_text("")  # just now: the old age rule would have kept it for 10 minutes
    with pytest.warns(RuntimeWarning, match="stale build lock"), build_lock(tmp_path):
        assert not lock.exists()
    assert (tmp_path / LOCK_FILE).read_text() == ""  # no pid left behind to be misreported


def test_a_live_builder_is_waited_for_until_it_dies(tmp_path, capsys):
    with subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env()
    ) as holder:  # on the way out, even from a failure: closes its stdin, so that it ends
        assert holder.stdout.readline() == b"held\n"
        lock = tmp_path / "lock"
        lock.write_text("")  # the live builder's own torch lock: kept while it lives
        entered = threading.Event()

        def build() -> None:
            with build_lock(tmp_path):
                entered.set()

        with pytest.warns(RuntimeWarning, match="stale build lock"):
            waiter = threading.Thread(target=build, daemon=True)
            waiter.start()
            stderr = ""

            def says_it_waits() -> bool:
                nonlocal stderr
                stderr += capsys.readouterr().err
                return "ncg: waiting" in stderr

            _wait_for(says_it_waits, 20, "the waiting message")
            assert f"waiting for process {holder.pid}," in stderr
            time.sleep(0.5)
            assert not entered.is_set() and lock.exists()
            holder.kill()  # SIGKILL: nothing of the holder runs, the kernel drops its flock
            _wait_for(entered.is_set, 20, "the lock")
        assert not lock.exists()


@pytest.mark.slow
@needs_compiler
def test_a_build_killed_midway_does_not_block_the_next_one(tmp_path, capsys, monkeypatch):
    """The acceptance test of issue 21."""
    source = tmp_path / "tiny.cpp"
    source.write_text(TINY_SOURCE)
    extensions = tmp_path / "extensions"
    env = _env(TORCH_EXTENSIONS_DIR=str(extensions))

    # Its own session, so that killing its group also kills ninja and the compiler under it.
    with subprocess.Popen(
        [sys.executable, "-c", BUILD, str(source)], env=env, start_new_session=True, stderr=subprocess.PIPE
    ) as first:
        try:
            # torch writes build.ninja under its lock, right before it runs ninja
            def compiling() -> bool:
                return any(extensions.glob("*/lock")) and any(extensions.glob("*/build.ninja"))

            _wait_for(compiling, 60, "the build to start")
            time.sleep(0.5)  # into the compiler, which takes seconds on this source
        finally:
            os.killpg(first.pid, signal.SIGKILL)
        assert b"ncg: building the C++ tiny kernel" in first.stderr.read()
    [build_directory] = extensions.iterdir()
    assert (build_directory / "lock").exists(), "the first build ended before it could be killed"
    assert not any(build_directory.glob("*.so"))

    second = subprocess.run(
        [sys.executable, "-c", BUILD, str(source)], env=env, capture_output=True, text=True,
        timeout=SECOND_BUILD_BOUND,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout == "42\n"
    assert "ncg: building the C++ tiny kernel (first use only" in second.stderr
    assert "ncg: C++ tiny kernel built in" in second.stderr
    assert "waiting" not in second.stderr

    # A cached load says nothing.
    capsys.readouterr()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions))
    assert load(source).answer() == 42
    assert "ncg:" not in capsys.readouterr().err


def test_two_checkouts_environments_or_torch_versions_build_apart(tmp_path, monkeypatch):
    import torch

    from ncg.kernels.build import build_context, extension_name

    def name(source) -> str:
        return extension_name("ncg_tiny", TINY_SOURCE.encode(), ["-O3"], build_context(source))

    first, second = tmp_path / "a" / "tiny.cpp", tmp_path / "b" / "tiny.cpp"
    names = {name(first), name(second)}
    assert len(names) == 2  # one text, two checkouts
    assert name(tmp_path / "a" / ".." / "a" / "tiny.cpp") == name(first)  # one checkout, however it is named
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "venv"))
    names.add(name(first))
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    names.add(name(first))
    assert len(names) == 4


@pytest.mark.slow
@needs_compiler
def test_two_checkouts_alternating_build_once_each(tmp_path, capsys, monkeypatch):
    """Two copies of one source (two checkouts) share one extensions folder: each builds once,
    says so once, and later loads in any order reuse the builds."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    sources = []
    for checkout in ("a", "b"):
        (tmp_path / checkout).mkdir()
        sources.append(tmp_path / checkout / "tiny.cpp")
        sources[-1].write_text(TINY_SOURCE)
    said = []
    for source in [*sources, *sources, *sources]:
        assert load(source).answer() == 42
        said.append(capsys.readouterr().err.count("ncg: C++ tiny kernel built in"))
    assert said == [1, 1, 0, 0, 0, 0]
    libraries = sorted((tmp_path / "extensions").glob("*/*.so"))
    assert len(libraries) == 2
