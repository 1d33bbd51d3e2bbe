"""Arrays whose size a file declares, read only once the bytes present agree with it.

A file names the shape of what it stores (a ``.npy`` header, the ``shape`` of an encoded array);
trusted as it stands, a few bytes declaring ``10**10`` values would make the reader allocate
that much before it notices the data is missing. The readers here compare every declared size
with the bytes actually present first (or, for compressed data, with the most that many
compressed bytes can inflate to: :data:`DEFLATE_MAX_RATIO`), and refuse with an
:class:`~ncg.errors.NCGError` that names the file and both sizes. Memory then grows with the
file, never with what it claims.

Examples
--------
>>> import zlib
>>> inflate(zlib.compress(bytes(8)), 8, "demo").hex()
'0000000000000000'
>>> inflate(zlib.compress(bytes(8)), 10**10, "demo")
Traceback (most recent call last):
...
ncg.errors.NCGError: demo declares 10000000000 bytes, more than its 11 compressed bytes can hold (at most 11416)
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ncg.errors import NCGError

__all__ = ["DEFLATE_MAX_RATIO", "NUMERIC_KINDS", "declared_size", "inflate", "read_npz"]

DEFLATE_MAX_RATIO = 1032
"""The most bytes one compressed byte of a deflate stream inflates to (258 bytes per 2-bit
code in the densest stream), the bound on what compressed data may declare."""

NUMERIC_KINDS = "biuf"
"""The numpy dtype kinds an ncg file stores: booleans, integers, floats."""


def declared_size(shape: Any, dtype: Any, what: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """The shape, dtype and byte count a file declares, checked for form (no allocation).

    Parameters
    ----------
    shape : sequence of int
        The declared shape; every entry a non-negative int.
    dtype : numpy dtype or str
        The declared dtype; must be of a kind in :data:`NUMERIC_KINDS`.
    what : str
        Names the array in errors (a file and a field).

    Returns
    -------
    (tuple of int, numpy.dtype, int)
        The shape, the dtype and ``prod(shape) * itemsize`` (exact, in Python ints).

    Raises
    ------
    NCGError
        A shape that is no list of non-negative ints, or a dtype that is unknown or not numeric.

    Examples
    --------
    >>> declared_size([2, 3], "<f4", "x")[2]
    24
    >>> declared_size([2, -3], "<f4", "x")
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: x: declared shape [2, -3] is not a list of non-negative ints
    """
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise NCGError(f"{what}: declared shape {shape!r} is not a list of non-negative ints")
    try:
        dtype = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise NCGError(f"{what}: declared dtype {dtype!r} is not a numpy dtype ({exc})") from None
    if dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
        raise NCGError(f"{what}: dtype {dtype.str!r} is not numeric (expected a bool, int or float dtype)")
    shape = tuple(int(s) for s in shape)
    return shape, dtype, math.prod(shape) * dtype.itemsize


def inflate(data: bytes, size: int, what: str) -> bytes:
    """Inflate zlib ``data`` that must hold exactly ``size`` bytes, never producing more.

    Parameters
    ----------
    data : bytes
        A zlib stream.
    size : int
        The byte count the file declares for it.
    what : str
        Names the data in errors.

    Returns
    -------
    bytes
        The ``size`` inflated bytes.

    Raises
    ------
    NCGError
        ``size`` is more than ``data`` can inflate to (refused before inflating), the stream is
        damaged, shorter than ``size`` or longer.
    """
    bound = DEFLATE_MAX_RATIO * len(data) + 64
    if size > bound:
        raise NCGError(f"{what} declares {size} bytes, more than its {len(data)} compressed bytes can hold "
                       f"(at most {bound})")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(data, size) if size else b""  # a max_length of 0 would not bound it
        rest = inflater.decompress(inflater.unconsumed_tail if size else data, 1)
    except zlib.error as exc:
        raise NCGError(f"{what} is not valid zlib data ({exc})") from None
    if len(raw) < size:
        raise NCGError(f"{what} declares {size} bytes but inflates to {len(raw)}")
    if rest or not inflater.eof:
        raise NCGError(f"{what} declares {size} bytes but inflates to more")
    return raw


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file (stored or deflated), each header checked against the
    bytes present before its array is allocated.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    dict of str to numpy.ndarray
        The arrays by name (the member name without ``.npy``).

    Raises
    ------
    NCGError
        The file is no zip archive, a member is no ``.npy`` array, holds objects or another
        non-numeric dtype, declares more bytes than its member holds (or can inflate to), or is
        damaged (CRC mismatch, truncated); the message names the file and the member.

    Examples
    --------
    >>> import io, tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "a.npz"
    >>> np.savez_compressed(path, x=np.arange(3))
    >>> read_npz(path)["x"].tolist()
    [0, 1, 2]
    """
    path = Path(path)
    file_size = path.stat().st_size
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                what = f"{path}: member {info.filename!r}"
                if not info.filename.endswith(".npy"):
                    raise NCGError(f"{what} is no .npy array")
                if info.compress_size > file_size:
                    raise NCGError(f"{what} declares {info.compress_size} compressed bytes, the file has {file_size}")
                with archive.open(info) as member:
                    arrays[info.filename[:-4]] = _read_npy(member, info, what)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise NCGError(f"{path} is not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    return arrays


def _read_npy(member: Any, info: zipfile.ZipInfo, what: str) -> np.ndarray:
    """One ``.npy`` member: its header, checked against the member's bytes, then its data."""
    try:
        version = np.lib.format.read_magic(member)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}.get(version)
        if read_header is None:
            raise NCGError(f"{what} has .npy format version {version}, expected 1.0 or 2.0")
        shape, fortran_order, dtype = read_header(member)
    except ValueError as exc:
        raise NCGError(f"{what} has no valid .npy header ({exc})") from None
    shape, dtype, size = declared_size(shape, dtype, what)
    ratio = 1 if info.compress_type == zipfile.ZIP_STORED else DEFLATE_MAX_RATIO
    if size > ratio * info.compress_size:
        raise NCGError(f"{what} declares shape {list(shape)} ({size} bytes), more than its "
                       f"{info.compress_size} stored bytes can hold")
    raw = member.read(size + 1)
    if len(raw) != size:
        raise NCGError(f"{what} declares shape {list(shape)} ({size} bytes) but holds {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran_order else "C").copy()
