"""Crash-safe file writes: write a temporary file beside the target, fsync, rename over it.

A reader sees either the old file or the complete new one, never a half-written file, and once a
write returns the new file survives a power cut (the file and then its folder are fsynced). A new
file gets the permissions ``open()`` would give it (``0o666`` less the umask), not the ``0o600``
of :func:`tempfile.mkstemp`.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> atomic_write(folder / "note.txt", lambda handle: handle.write(b"hello"))
>>> (folder / "note.txt").read_bytes()
b'hello'
>>> atomic_write_json(folder / "row.json", {"seed": 0})
>>> (folder / "row.json").read_text()
'{\\n  "seed": 0\\n}'
"""
from __future__ import annotations

import csv
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Sequence

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_write_csv"]

_TRIES = 100
"""Temporary names tried before giving up (as :data:`tempfile.TMP_MAX` bounds mkstemp)."""


def _create_beside(path: Path) -> tuple[int, Path]:
    """Create and open an empty temporary file ``.<name>.<random>.tmp`` beside ``path``.

    ``os.open`` with mode ``0o666`` lets the kernel apply the umask (and a folder's default ACL)
    exactly as for an ordinary new file; reading the umask instead would mean setting it, which
    races with other threads.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(_TRIES):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path} after {_TRIES} tries")


def _fsync_folder(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX; Windows cannot open a folder)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``.

    Parameters
    ----------
    path : str or PathLike
        The file to (re)write; its folder is created if needed.
    write : callable
        Gets the binary handle of the temporary file and writes the whole content.

    Notes
    -----
    The temporary file is fsynced before the rename and the folder after it. A new ``path`` gets
    ``0o666`` less the umask, as with ``open()``. On any error (in ``write`` too) the temporary
    file is removed and the previous ``path`` (if any) is left untouched.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "sub" / "data.bin"
    >>> atomic_write(path, lambda handle: handle.write(bytes([1, 2])))
    >>> list(path.read_bytes())
    [1, 2]
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` with :func:`atomic_write`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "table.md"
    >>> atomic_write_text(path, "| a |\\n")
    >>> path.read_text()
    '| a |\\n'
    """
    data = text.encode()
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: str | os.PathLike, value: Any, end: str = "") -> None:
    """Write ``value`` as JSON indented by 2, followed by ``end`` (such as a newline), with
    :func:`atomic_write`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "rows.json"
    >>> atomic_write_json(path, [1, 2], end="\\n")
    >>> path.read_text()
    '[\\n  1,\\n  2\\n]\\n'
    """
    atomic_write_text(path, json.dumps(value, indent=2) + end)


def atomic_write_csv(path: str | os.PathLike, rows: Iterable[dict], fields: Sequence[str],
                     lineterminator: str = "\r\n") -> None:
    """Write ``rows`` as CSV with the columns ``fields`` (keys outside them are left out) with
    :func:`atomic_write`; ``lineterminator`` defaults to the :mod:`csv` module's ``"\\r\\n"``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "runs.csv"
    >>> atomic_write_csv(path, [{"seed": 0, "loss": 0.5, "note": "x"}], ["seed", "loss"], lineterminator="\\n")
    >>> path.read_text()
    'seed,loss\\n0,0.5\\n'
    """
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(fields), extrasaction="ignore", lineterminator=lineterminator)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())
