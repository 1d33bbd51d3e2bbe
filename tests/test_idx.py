"""Tests for ncg/idx.py: the IDX reader and writer, their declared-size checks and checksums."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncg.errors import ChecksumError, IDXError, NCGError
from ncg.idx import read_idx, write_idx


# --- read_idx / write_idx -------------------------------------------------------------------


def test_read_idx_hand_written_big_endian_bytes(tmp_path: Path) -> None:
    header = bytes([0, 0, 0x0B, 2]) + (2).to_bytes(4, "big") + (2).to_bytes(4, "big")
    values = [1, -2, 258, -32768]
    data = b"".join(v.to_bytes(2, "big", signed=True) for v in values)
    path = tmp_path / "short-idx2"
    path.write_bytes(header + data)

    array = read_idx(path)

    assert array.dtype == np.int16 and array.dtype.isnative
    assert array.tolist() == [[1, -2], [258, -32768]]
    assert array.flags.writeable


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("name", ["array-idx3.gz", "array-idx3"])
def test_idx_round_trip(tmp_path: Path, dtype: type, name: str) -> None:
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)

    path = write_idx(tmp_path / name, array)

    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    result = read_idx(path)
    assert result.dtype == array.dtype
    np.testing.assert_array_equal(result, array)


def test_read_idx_detects_gzip_by_magic_bytes_not_extension(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    compressed = write_idx(tmp_path / "a.gz", array).rename(tmp_path / "compressed-no-suffix")
    raw = write_idx(tmp_path / "raw", array).rename(tmp_path / "raw-with-suffix.gz")

    np.testing.assert_array_equal(read_idx(compressed), array)
    np.testing.assert_array_equal(read_idx(raw), array)


def test_read_idx_wrong_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x01\x02\x08\x01" + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(IDXError, match=r"bad-magic.*wrong magic number 01 02 08 01"):
        read_idx(path)


def test_read_idx_unknown_type_code(tmp_path: Path) -> None:
    path = tmp_path / "bad-type"
    path.write_bytes(b"\x00\x00\x0a\x01" + (1).to_bytes(4, "big") + b"\x00")
    with pytest.raises(IDXError, match=r"bad-type.*wrong magic number 00 00 0a 01.*0x08"):
        read_idx(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\x00\x00", r"truncated header: expected at least 4 bytes, found 2"),
        (b"\x00\x00\x08\x03" + bytes(8), r"truncated header: 3 dimensions need 16 .*found 12"),
    ],
)
def test_read_idx_truncated_header(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "short-header"
    path.write_bytes(content)
    with pytest.raises(IDXError, match=rf"short-header.*{expected}"):
        read_idx(path)


def test_read_idx_truncated_data(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "full", np.zeros((4, 5), dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-7])
    # 12 header bytes + 4 * 5 * 4 data bytes = 92 expected; 7 cut off.
    with pytest.raises(IDXError, match=r"full: truncated data: .*needs 92 bytes.*found 85"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "long", np.zeros(3, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(IDXError, match=r"long: trailing bytes.*needs 11 bytes.*found 12"):
        read_idx(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated stream"])
def test_read_idx_corrupt_gzip(tmp_path: Path, damage: str) -> None:
    path = write_idx(tmp_path / "broken.gz", np.arange(100, dtype=np.uint8))
    content = path.read_bytes()
    path.write_bytes(content[:10] + b"not deflate data" if damage == "garbage" else content[:-12])
    with pytest.raises(IDXError, match=r"broken\.gz: corrupt gzip stream"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "train-images-idx3-ubyte.gz"
    with pytest.raises(IDXError, match=r"IDX file not found: .*nowhere"):
        read_idx(path)


def test_write_idx_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(NCGError, match=r"int64 has no IDX type code"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))

def test_a_small_gzip_that_expands_beyond_its_header_is_refused_without_decompressing_it(tmp_path):
    """A 40 MB run of zeros behind a 10 x 10 header: only the declared bytes are decompressed."""
    import gzip
    import tracemalloc

    from ncg.errors import IDXError

    path = tmp_path / "bomb-idx2-ubyte.gz"
    with gzip.open(path, "wb", compresslevel=9) as handle:
        handle.write(bytes([0, 0, 0x08, 2]) + (10).to_bytes(4, "big") * 2)
        for _ in range(40):
            handle.write(bytes(1_000_000))
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match="trailing bytes after the data"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


def test_a_header_that_declares_terabytes_is_refused_without_allocating_them(tmp_path):
    from ncg.errors import IDXError

    raw = tmp_path / "huge-idx2-ubyte"
    raw.write_bytes(bytes([0, 0, 0x08, 2]) + (1_000_000).to_bytes(4, "big") * 2 + bytes(10))
    with pytest.raises(IDXError, match="truncated data"):
        read_idx(raw)

def test_read_idx_checks_a_given_sha256(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "a-idx1-ubyte.gz", np.arange(5, dtype=np.uint8))
    digest = hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest()

    assert read_idx(path, sha256=digest.upper()).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ChecksumError, match=rf"a-idx1-ubyte\.gz: checksum mismatch: expected "
                                            rf"sha256 {'0' * 64} .*found {digest}$"):
        read_idx(path, sha256="0" * 64)

# --- declared sizes are checked before anything is allocated --------------------------------


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "raw"])
def test_a_header_declaring_2_31_items_in_a_tiny_file_fails_fast(
    tmp_path: Path, compressed: bool
) -> None:
    import time
    import tracemalloc

    content = bytes([0, 0, 0x08, 1]) + (2**31).to_bytes(4, "big") + bytes(10)
    path = tmp_path / ("huge-idx1-ubyte.gz" if compressed else "huge-idx1-ubyte")
    path.write_bytes(gzip.compress(content) if compressed else content)

    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(IDXError, match=rf"{path.name}: truncated data: the header declares "
                                           r"shape \(2147483648,\) of uint8, which needs "
                                           r"2147483656 bytes .*found 18$"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1
    assert peak < 2_000_000  # one read chunk (1 MiB) at most, not the declared 2 GiB


@settings(max_examples=60, deadline=None)
@given(
    declared=st.integers(0, 2**32 - 1),
    present=st.integers(0, 64),
    compressed=st.booleans(),
)
def test_declared_and_present_sizes_must_agree(
    tmp_path_factory: pytest.TempPathFactory, declared: int, present: int, compressed: bool
) -> None:
    """Any item count in the header, any number of bytes present: the array when they agree,
    else an IDXError naming both, never a MemoryError."""
    content = bytes([0, 0, 0x0C, 1]) + declared.to_bytes(4, "big") + bytes(present)
    path = tmp_path_factory.mktemp("sizes") / "x-idx1-int"
    path.write_bytes(gzip.compress(content) if compressed else content)
    if present == 4 * declared:
        assert read_idx(path).tolist() == [0] * declared
    else:
        with pytest.raises(IDXError, match=rf"needs {8 + 4 * declared} bytes .*found "
                                           rf"{8 + present if present < 4 * declared else ''}"):
            read_idx(path)
