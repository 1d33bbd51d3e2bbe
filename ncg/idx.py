"""The IDX file format (the format of the original MNIST distribution), with checksums.

:func:`read_idx` reads a raw or gzip-compressed IDX file into a numpy array, checking the sizes its
header declares against the data present before allocating them and, when given one, the sha256
of the uncompressed bytes (:class:`~ncg.errors.ChecksumError` names the file and both digests).
:func:`write_idx` writes one. The data sets built on these files, and the published digests they
are checked against, live in :mod:`ncg.datasets`.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> path = write_idx(Path(tempfile.mkdtemp()) / "tiny-idx2-ubyte.gz", np.eye(2, dtype=np.uint8))
>>> read_idx(path)
array([[1, 0],
       [0, 1]], dtype=uint8)
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterable
from math import prod
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ncg.errors import ChecksumError, IDXError, NCGError

__all__ = ["MAX_IDX_BYTES", "read_idx", "write_idx", "check_digest"]

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK_BYTES = 1 << 20
MAX_IDX_BYTES = 1 << 36
"""Largest data section an IDX header may declare (64 GiB); a corrupt header is refused early."""
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {(dtype.kind, dtype.itemsize): code for code, dtype in _IDX_DTYPES.items()}


def read_idx(path: str | os.PathLike[str], *, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (the format of the original MNIST distribution) into an array.

    The file may be gzip-compressed or raw; compression is detected from the gzip magic
    bytes, not the file name. Multi-byte values are big-endian in the file and native-endian
    in the returned array. The header's declared size is checked against the data actually
    present before the data is read: a raw file's length is compared first, and a gzip stream
    is decompressed in chunks, so a header that declares more than the file holds fails fast
    without allocating the declared size.

    Parameters
    ----------
    path : str or path-like
        The IDX file.
    sha256 : str, optional
        Expected sha256 (hex) of the *uncompressed* IDX bytes, header included: it holds for a
        file however it was compressed. Default: no check. The data set loaders pass the
        published digest of each known file (see ``IDX_SHA256``).

    Returns
    -------
    numpy.ndarray
        A writable array with the file's shape and dtype (``uint8``, ``int8``, ``int16``,
        ``int32``, ``float32`` or ``float64``).

    Raises
    ------
    IDXError
        If the file is missing, is not gzip-compressed correctly, has a wrong magic number, or
        is shorter or longer than its header says. The message names the file.
    ChecksumError
        If ``sha256`` is given and differs from the content's; the message names the file and
        both digests.

    See Also
    --------
    write_idx

    Examples
    --------
    >>> import hashlib, tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "tiny-idx2-ubyte"
    >>> header = bytes([0, 0, 0x08, 2]) + (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    >>> _ = path.write_bytes(header + bytes(range(6)))
    >>> read_idx(path)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    >>> read_idx(path, sha256=hashlib.sha256(header + bytes(range(6))).hexdigest()).shape
    (2, 3)
    >>> read_idx(path, sha256=64 * "0")
    Traceback (most recent call last):
    ncg.errors.ChecksumError: ...tiny-idx2-ubyte: checksum mismatch: expected sha256 000...000 of
    the uncompressed IDX bytes, found ef281b2f...
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise IDXError(f"IDX file not found: {path}") from None
    with handle:
        compressed = handle.read(2) == _GZIP_MAGIC
        handle.seek(0)
        try:
            if compressed:
                with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
                    head, dtype, shape, data = _read_idx_bytes(stream, path, None)
            else:
                size = os.fstat(handle.fileno()).st_size
                head, dtype, shape, data = _read_idx_bytes(handle, path, size)
        except (OSError, EOFError, zlib.error) as err:
            problem = f"corrupt gzip stream ({err})" if compressed else f"could not be read ({err})"
            raise IDXError(f"{path}: {problem}") from err
    if sha256 is not None:
        check_digest(path, "sha256", sha256, (head, data), "of the uncompressed IDX bytes")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)  # writable: data is a bytearray
    if not dtype.isnative:
        array = array.byteswap(inplace=True).view(dtype.newbyteorder("="))
    return array


def _read_idx_bytes(
    handle: BinaryIO, path: Path, file_size: int | None
) -> tuple[bytes, np.dtype, tuple[int, ...], bytearray]:
    """The header, its dtype and shape, and the data bytes of an IDX stream.

    ``file_size`` is the length of a raw file, compared with the header before any data is
    read; ``None`` for a gzip stream, which is read in chunks up to the declared size (plus one
    byte, to detect trailing data), so memory grows only with the data actually there.
    """
    head = handle.read(4)
    if len(head) < 4:
        raise IDXError(f"{path}: truncated header: expected at least 4 bytes, found {len(head)}")
    if head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES or head[3] == 0:
        codes = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise IDXError(
            f"{path}: wrong magic number {head.hex(' ')}: an IDX file starts with two zero "
            f"bytes, a type code ({codes}) and the number of dimensions (at least 1)"
        )
    dtype, ndim = _IDX_DTYPES[head[2]], head[3]
    head += handle.read(4 * ndim)
    if len(head) < 4 + 4 * ndim:
        raise IDXError(
            f"{path}: truncated header: {ndim} dimensions need {4 + 4 * ndim} header bytes, "
            f"found {len(head)}"
        )
    shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    nbytes = prod(shape) * dtype.itemsize

    def size_error(found: int | str) -> IDXError:
        short = isinstance(found, int) and found < len(head) + nbytes
        return IDXError(
            f"{path}: {'truncated data' if short else 'trailing bytes after the data'}: the "
            f"header declares shape {shape} of {dtype.name}, which needs {len(head) + nbytes} "
            f"bytes ({len(head)} header + {nbytes} data), found {found}"
        )

    if file_size is not None and file_size != len(head) + nbytes:
        raise size_error(file_size)
    if file_size is None and nbytes > MAX_IDX_BYTES:
        raise IDXError(
            f"{path}: the header declares shape {shape}, {nbytes:,} bytes of data, more than "
            f"the {MAX_IDX_BYTES:,} this reader accepts"
        )
    data = bytearray()
    while len(data) < nbytes and (chunk := handle.read(min(nbytes - len(data), _CHUNK_BYTES))):
        data += chunk
    if len(data) < nbytes:
        raise size_error(len(head) + len(data))
    if handle.read(1):
        raise size_error(f"more than {len(head) + nbytes}")
    return head, dtype, shape, data


def check_digest(
    path: Path, algorithm: str, expected: str, chunks: Iterable[bytes | bytearray], what: str
) -> None:
    """Raise :class:`~ncg.errors.ChecksumError` unless the ``algorithm`` digest (a
    :mod:`hashlib` name) of ``chunks`` is ``expected``; ``what`` says what was hashed.

    Examples
    --------
    >>> check_digest(Path("a"), "md5", "900150983cd24fb0d6963f7d28e17f72", [b"abc"], "of a")
    >>> check_digest(Path("a"), "md5", 32 * "0", [b"abc"], "of a")
    Traceback (most recent call last):
    ncg.errors.ChecksumError: a: checksum mismatch: expected md5 000...000 of a, found 9001...
    """
    digest = hashlib.new(algorithm, usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    found = digest.hexdigest()
    if found != expected.lower():
        raise ChecksumError(
            f"{path}: checksum mismatch: expected {algorithm} {expected} {what}, found {found}"
        )


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write an array as an IDX file, gzip-compressed when the name ends in ``.gz``.

    Parameters
    ----------
    path : str or path-like
        The file to write.
    array : array-like
        At least one dimension, each below 2**32; dtype ``uint8``, ``int8``, ``int16``,
        ``int32``, ``float32`` or ``float64``.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    NCGError
        If the dtype or shape cannot be stored in an IDX file.

    See Also
    --------
    read_idx

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "tiny-idx1-short.gz"
    >>> read_idx(write_idx(path, np.array([-1, 300], dtype=np.int16)))
    array([ -1, 300], dtype=int16)
    """
    path = Path(path)
    array = np.asarray(array)
    code = _IDX_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise NCGError(
            f"array dtype {array.dtype} has no IDX type code; expected one of uint8, int8, "
            f"int16, int32, float32, float64"
        )
    if not 1 <= array.ndim <= 255 or any(size >= 2**32 for size in array.shape):
        raise NCGError(
            f"array shape {array.shape} cannot be stored in IDX: expected 1 to 255 dimensions, "
            f"each below 2**32"
        )
    header = bytes([0, 0, code, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(_IDX_DTYPES[code]).tobytes()
    # mtime=0 makes the compressed bytes reproducible.
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
    return path
