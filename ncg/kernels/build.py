"""Building and loading ncg's C++ extensions, once per checkout, environment and torch version.

:func:`extension` compiles a C++ source with :func:`torch.utils.cpp_extension.load` on first use
and imports it; torch caches the build between processes. Three things are added to torch's build:

* A build folder of its own for every checkout and environment. torch keys a build by its name
  alone, and its build files name the source's path and the torch headers' folder, so two
  checkouts or virtual environments sharing one name would rebuild each other at every switch.
  :func:`extension_name` hashes everything the build depends on into the name: the source's text
  and absolute path, the compiler flags and compiler, and the Python and torch installation
  (``sys.prefix``, torch's folder and version). Each checkout then builds once and reuses its
  build from then on, whatever the others do.
* A lock that cannot outlive its process. torch guards a build with a ``lock`` file created with
  ``O_EXCL``, and other processes wait until it disappears: a build killed mid-way leaves it behind
  and every later import waits forever. Every ncg builder therefore also holds an OS file lock
  (``fcntl.flock`` on ``ncg-build.lock`` in the build directory), which the kernel releases when
  its holder dies, however it dies. Whoever holds it knows that no live ncg build owns torch's
  ``lock`` file and removes it. Without ``fcntl`` (Windows) a ``lock`` older than
  :data:`STALE_LOCK_SECONDS` is taken for stale instead.
* A line on stderr for every build that really happens (not when the cached library is reused),
  since a first build takes 20-30 s: before it when the library is missing or older than the
  source, after it in every case that compiled (see :func:`load`).

``NCG_DISABLE_CPP=1`` skips the build; :func:`extension` then returns None, as it does (with a
warning) when the build fails.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import torch

try:
    import fcntl
except ImportError:  # Windows: no flock, the lock falls back to its age
    fcntl = None

__all__ = [
    "STALE_LOCK_SECONDS",
    "extension",
    "load",
    "extension_name",
    "build_context",
    "build_lock",
    "clear_stale_lock",
    "LOCK_FILE",
]

STALE_LOCK_SECONDS = 600
"""Without ``fcntl``: a torch ``lock`` older than this was left by a killed build (a build takes
15-80 s), and is removed."""

LOCK_FILE = "ncg-build.lock"
"""The file in a build directory that ncg builders ``flock``; it holds the holder's pid."""

# GCC flags that keep the tile loops of sweep.cpp vectorised, none of which changes results:
# unroll-and-jam would fuse two edges into one scalar loop; complete peeling of loops of up to
# 16 iterations (float64 tiles) would break them into scalar statements before vectorisation;
# trapping math would keep the branch-free float32 tanh/sigmoid from being if-converted.
_GCC_FLAGS = [
    "-fno-loop-unroll-and-jam",
    "--param=max-completely-peel-times=8",
    "-fno-trapping-math",
]

# Serialises builds within a process: functools.cache would let two threads both build, and
# torch's in-memory record of its builds is not thread-safe either.
_thread_lock = threading.Lock()


def build_context(source: str | os.PathLike[str]) -> list[str]:
    """What a build of ``source`` depends on besides its text and flags: its absolute path, the
    compiler, and the Python and torch installation it compiles against.

    Examples
    --------
    >>> build_context("sweep.cpp")[0] == str(Path("sweep.cpp").resolve())
    True
    """
    return [
        str(Path(source).resolve()),
        os.environ.get("CXX", "c++"),
        sys.prefix,
        sys.version,
        str(Path(torch.__file__).resolve().parent),
        torch.__version__,
    ]


def extension_name(stem: str, source: bytes, flags: Sequence[str], context: Sequence[str]) -> str:
    """The build's name: ``stem`` plus a hash of the source text, the flags and the
    :func:`build_context`, so that two checkouts, environments or torch versions on one machine
    build into folders of their own and never rebuild each other.

    Examples
    --------
    >>> extension_name("ncg_x", b"a", ["-O3"], ["/a/x.cpp"]) == extension_name("ncg_x", b"a", ["-O3"], ["/b/x.cpp"])
    False
    >>> extension_name("ncg_x", b"a", ["-O3"], ["/a/x.cpp"])[:6]
    'ncg_x_'
    """
    parts = [*flags, "\1", *context]  # the separator keeps a flag from passing for a context entry
    digest = hashlib.sha256(source + b"\0" + "\0".join(parts).encode()).hexdigest()
    return f"{stem}_{digest[:16]}"


def clear_stale_lock(build_directory: str | os.PathLike[str], max_age: float = STALE_LOCK_SECONDS) -> bool:
    """Remove torch's ``lock`` file of ``build_directory`` if it is older than ``max_age``
    seconds (left by a build that was killed, which would block every later build); True if
    removed.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "lock").write_text("")
    ...     with warnings.catch_warnings(record=True):
    ...         clear_stale_lock(d), clear_stale_lock(d, max_age=-math.inf)
    (False, True)
    """
    lock = Path(build_directory) / "lock"
    try:
        if time.time() - lock.stat().st_mtime <= max_age:
            return False
        lock.unlink()
    except FileNotFoundError:
        return False
    warnings.warn(f"ncg: removed a stale build lock {lock} left by an interrupted build", RuntimeWarning, stacklevel=2)
    return True


@contextlib.contextmanager
def build_lock(build_directory: str | os.PathLike[str]) -> Iterator[None]:
    """Hold ncg's build lock of ``build_directory``; on entry, no torch ``lock`` file is stale.

    With ``fcntl``, an exclusive ``flock`` on :data:`LOCK_FILE`, waited for (saying so once on
    stderr) while another live process holds it; then torch's ``lock`` is removed if present,
    since only a dead builder can have left it. Without ``fcntl``, nothing is held and only a
    ``lock`` older than :data:`STALE_LOCK_SECONDS` is removed.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = (Path(d) / "lock").write_text("")         # left by a killed build
    ...     with warnings.catch_warnings(record=True), build_lock(d):
    ...         (Path(d) / "lock").exists()
    False
    """
    directory = Path(build_directory)
    if fcntl is None:
        clear_stale_lock(directory)
        yield
        return
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            print(f"ncg: waiting for process {holder}, which is building in {directory}", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        clear_stale_lock(directory, max_age=-math.inf)
        try:
            yield
        finally:
            # So that a waiter never names a process that is done. The file itself stays: a
            # waiter may hold it open, and unlinking would let the next builder lock a new one.
            os.ftruncate(fd, 0)
            # Explicitly: a child forked meanwhile shares the open file and would keep the lock
            # past our close (a death releases it either way).
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def load(source: str | os.PathLike[str]) -> ModuleType:
    """Build ``source`` unless torch has a build of it, then import it (raises if it cannot).

    The extension is named ``ncg_<file stem>_<hash>`` (:func:`extension_name`) and built with
    ``-O3 -fopenmp`` (plus flags that keep the loops vectorised under GCC) in torch's extension
    directory (``TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``), under
    :func:`build_lock`.

    Notes
    -----
    A build says so on stderr, before it starts when the library is missing or older than the
    source, and after it whenever the library was written anew (whatever ninja found out of
    date); loading a cached build prints nothing::

        ncg: building the C++ sweep kernel (first use only, ~30 s)...
        ncg: C++ sweep kernel built in 24.1 s
    """
    from torch.utils import cpp_extension  # imported on first build only: ~0.15 s

    source = Path(source).resolve()
    cflags = ["-O3", "-fopenmp"]  # OpenMP: at::parallel_for is inlined from the headers
    is_gcc = getattr(cpp_extension, "check_compiler_is_gcc", lambda compiler: False)
    if is_gcc(os.environ.get("CXX", "c++")):
        cflags += _GCC_FLAGS
    name = extension_name(f"ncg_{source.stem}", source.read_bytes(), cflags, build_context(source))
    build_directory = Path(cpp_extension._get_build_directory(name, verbose=False))
    library = build_directory / f"{name}{cpp_extension.LIB_EXT}"
    with build_lock(build_directory):
        # What ninja will decide, cheaply: the name hashes all the build depends on but the
        # source's time, so the library is rebuilt only if absent or older than the source.
        before = _stamp(library)
        building = before is None or before[0] < source.stat().st_mtime_ns
        if building:
            print(f"ncg: building the C++ {source.stem} kernel (first use only, ~30 s)...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        module = cpp_extension.load(
            name=name,
            sources=[str(source)],
            extra_cflags=cflags,
            extra_ldflags=["-fopenmp"],
            build_directory=str(build_directory),
            verbose=False,
        )
        if building or _stamp(library) != before:  # the second: a rebuild ninja decided on its own
            seconds = time.perf_counter() - start
            print(f"ncg: C++ {source.stem} kernel built in {seconds:.1f} s", file=sys.stderr, flush=True)
    return module


def _stamp(path: Path) -> tuple[int, int] | None:
    """The modification time (ns) and inode of ``path``, None if it does not exist: a rebuilt
    library changes it."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_mtime_ns, status.st_ino


def extension(source: str | os.PathLike[str]) -> ModuleType | None:
    """The compiled extension of ``source`` (:func:`load`, once per process), or None when
    ``NCG_DISABLE_CPP=1`` is set or the build failed (which warns once).
    """
    with _thread_lock:
        return _extension(source)  # no Path() here: the kernels call this on every sweep


@functools.cache
def _extension(source: str | os.PathLike[str]) -> ModuleType | None:
    if os.environ.get("NCG_DISABLE_CPP") == "1":
        return None
    try:
        return load(source)
    except Exception as exc:  # no compiler, no ninja, a read-only cache, ...: run in PyTorch
        warnings.warn(
            f"ncg: could not build the C++ {Path(source).stem} kernel ({type(exc).__name__}: {exc}); "
            "falling back to the slower PyTorch reference",
            RuntimeWarning,
            stacklevel=4,  # past sweep._extension: the caller, such as sweep.cpp_available()
        )
        return None
