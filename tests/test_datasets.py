"""Tests for ncg/datasets.py: data location, checksums of the known files, and the loaders."""
from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from ncg import datasets
from ncg.datasets import (
    DataSplits,
    digits,
    emnist,
    fashion_mnist,
    load_dataset,
    mnist,
    read_idx,
    write_idx,
)
from ncg.errors import ChecksumError, IDXError, NCGError

TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def numbered_images(n: int, shape: tuple[int, int] = (28, 28), start: int = 0) -> np.ndarray:
    """``n`` uint8 images whose first pixel is ``start + index`` (mod 256), to trace order."""
    images = np.zeros((n, *shape), dtype=np.uint8)
    images[:, 0, 0] = (start + np.arange(n)) % 256
    return images


def first_pixels(split: torch.utils.data.TensorDataset) -> list[int]:
    """The first pixel of each image in ``split`` as the byte written by ``numbered_images``."""
    return (split.tensors[0][:, 0] * 255).round().long().tolist()


def write_pair(
    folder: Path, names: tuple[str, str], images: np.ndarray, labels: np.ndarray
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / names[0], images)
    write_idx(folder / names[1], np.asarray(labels, dtype=np.uint8))


def write_mnist_like(folder: Path, n_train: int, n_test: int | None, start: int = 0) -> None:
    write_pair(folder, TRAIN, numbered_images(n_train, start=start), np.arange(n_train) % 10)
    if n_test is not None:
        write_pair(folder, TEST, numbered_images(n_test, start=200), np.arange(n_test) % 10)


@pytest.fixture
def no_data_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)


# --- validation of image / label files ------------------------------------------------------


def test_mismatched_image_and_label_counts(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_mnist_like(folder, n_train=12, n_test=4)
    write_idx(folder / TRAIN[1], np.zeros(11, dtype=np.uint8))
    with pytest.raises(IDXError, match=r"train-images.* holds 12 images but .*train-labels.* 11"):
        mnist(root=tmp_path, val_size=2, verify=False)


def test_labels_out_of_range(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_mnist_like(folder, n_train=12, n_test=4)
    write_idx(folder / TEST[1], np.array([0, 1, 10, 3], dtype=np.uint8))
    with pytest.raises(IDXError, match=r"t10k-labels.*\[0, 9\], found values from 0 to 10"):
        mnist(root=tmp_path, val_size=2, verify=False)


def test_images_must_be_three_dimensional(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    write_mnist_like(folder, n_train=12, n_test=4)
    write_idx(folder / TRAIN[0], np.zeros((12, 784), dtype=np.uint8))
    with pytest.raises(IDXError, match=r"train-images.*shape \[n, height, width\].*\(12, 784\)"):
        mnist(root=tmp_path, val_size=2, verify=False)


# --- MNIST / Fashion-MNIST splits on synthetic files ----------------------------------------


def test_mnist_split_order_on_synthetic_files(tmp_path: Path) -> None:
    write_mnist_like(tmp_path / "mnist", n_train=30, n_test=10)

    splits = mnist(root=tmp_path, val_size=5, verify=False)

    assert (len(splits.train), len(splits.val), len(splits.test)) == (25, 5, 10)
    assert first_pixels(splits.train) == list(range(25))
    assert first_pixels(splits.val) == list(range(25, 30))
    assert first_pixels(splits.test) == list(range(200, 210))
    assert splits.test_split == "official t10k test set"
    assert (splits.num_features, splits.num_classes, splits.image_shape) == (784, 10, (28, 28))


@pytest.mark.parametrize("val_size", [-1, 30])
def test_mnist_rejects_bad_val_size(tmp_path: Path, val_size: int) -> None:
    write_mnist_like(tmp_path / "mnist", n_train=30, n_test=10)
    with pytest.raises(NCGError, match=rf"val_size.*{val_size}"):
        mnist(root=tmp_path, val_size=val_size, verify=False)


def test_fashion_mnist_holds_out_end_of_train_without_t10k(tmp_path: Path) -> None:
    write_mnist_like(tmp_path / "fashion-mnist", n_train=30, n_test=None)

    splits = fashion_mnist(root=tmp_path, val_size=5, test_size=10, verify=False)

    assert (len(splits.train), len(splits.val), len(splits.test)) == (15, 5, 10)
    assert first_pixels(splits.test) == list(range(20, 30))
    assert splits.val.tensors[1].tolist() == [5, 6, 7, 8, 9]
    assert splits.test_split == (
        "held-out split of train (last 10 images); the official test set was not found"
    )


def test_fashion_mnist_uses_t10k_when_present(tmp_path: Path) -> None:
    write_mnist_like(tmp_path / "fashion-mnist", n_train=30, n_test=8)

    splits = fashion_mnist(root=tmp_path, val_size=5, test_size=10, verify=False)

    assert (len(splits.train), len(splits.val), len(splits.test)) == (25, 5, 8)
    assert splits.test_split == "official t10k test set"


def test_fashion_mnist_held_out_sizes_must_leave_training_images(tmp_path: Path) -> None:
    write_mnist_like(tmp_path / "fashion-mnist", n_train=30, n_test=None)
    with pytest.raises(NCGError, match=r"val_size=20, test_size=10 leave no training images"):
        fashion_mnist(root=tmp_path, val_size=20, test_size=10, verify=False)


# --- EMNIST on synthetic files --------------------------------------------------------------


def write_emnist(root: Path, split: str, upright: np.ndarray, labels: np.ndarray) -> None:
    """Write ``upright`` images the way EMNIST stores them: transposed."""
    stored = upright.transpose(0, 2, 1)
    for part in ("train", "test"):
        names = (
            f"emnist-{split}-{part}-images-idx3-ubyte.gz",
            f"emnist-{split}-{part}-labels-idx1-ubyte.gz",
        )
        write_pair(root / "emnist", names, stored, labels)


def test_emnist_undoes_the_transpose(tmp_path: Path) -> None:
    upright = np.zeros((3, 28, 28), dtype=np.uint8)
    upright[:, 2, :] = 255  # a horizontal bar in row 2
    upright[:, :, 20] = 128  # a vertical bar in column 20
    write_emnist(tmp_path, "balanced", upright, np.array([0, 10, 46]))

    splits = emnist("balanced", root=tmp_path, val_size=1)

    image = splits.test.tensors[0][0].reshape(splits.image_shape)
    np.testing.assert_array_equal(image.numpy(), upright[0] / np.float32(255))
    assert (splits.name, splits.num_classes) == ("emnist-balanced", 47)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (2, 1, 3)
    assert splits.test_split == "official EMNIST balanced test set"


def test_emnist_letters_labels_shift_to_zero(tmp_path: Path) -> None:
    write_emnist(tmp_path, "letters", numbered_images(4), np.array([1, 2, 25, 26]))

    splits = emnist("letters", root=tmp_path, val_size=1)

    assert splits.num_classes == 26
    assert splits.test.tensors[1].tolist() == [0, 1, 24, 25]


def test_emnist_letters_label_zero_is_out_of_range(tmp_path: Path) -> None:
    write_emnist(tmp_path, "letters", numbered_images(2), np.array([0, 5]))
    with pytest.raises(IDXError, match=r"labels must lie in \[1, 26\], found values from 0"):
        emnist("letters", root=tmp_path, val_size=1)


@pytest.mark.parametrize(
    ("split", "num_classes"),
    [("balanced", 47), ("byclass", 62), ("bymerge", 47), ("digits", 10), ("mnist", 10)],
)
def test_emnist_class_counts(tmp_path: Path, split: str, num_classes: int) -> None:
    write_emnist(tmp_path, split, numbered_images(3), np.array([0, 1, num_classes - 1]))
    assert emnist(split, root=tmp_path, val_size=1).num_classes == num_classes


def test_emnist_unknown_split_lists_valid_ones() -> None:
    with pytest.raises(NCGError, match=r"unknown EMNIST split 'bogus'.*balanced, byclass"):
        emnist("bogus")


# --- digits ---------------------------------------------------------------------------------


def test_digits_shapes_sizes_and_determinism() -> None:
    first, second = digits(), digits()

    assert (len(first.train), len(first.val), len(first.test)) == (1257, 270, 270)
    assert (first.num_features, first.num_classes, first.image_shape) == (64, 10, (8, 8))
    for a, b in zip((first.train, first.val, first.test), (second.train, second.val, second.test)):
        assert all(torch.equal(ta, tb) for ta, tb in zip(a.tensors, b.tensors))
    x = torch.cat([s.tensors[0] for s in (first.train, first.val, first.test)])
    assert x.dtype == torch.float32 and x.min() == 0 and x.max() == 1
    assert first.train.tensors[1].dtype == torch.int64


def test_digits_splits_partition_the_data() -> None:
    from sklearn.datasets import load_digits

    images, _ = load_digits(return_X_y=True)
    splits = digits(val_fraction=0.1, test_fraction=0.2)
    x = torch.cat([s.tensors[0] for s in (splits.train, splits.val, splits.test)]).double()
    # Every sample appears exactly once: the rows are a permutation of the source rows.
    assert sorted(map(tuple, (x * 16).round().tolist())) == sorted(map(tuple, images.tolist()))


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.1), (0.5, 0.5)])
def test_digits_rejects_bad_fractions(val: float, test: float) -> None:
    with pytest.raises(NCGError, match=r"val_fraction and test_fraction must be non-negative"):
        digits(val_fraction=val, test_fraction=test)


# --- load_dataset ---------------------------------------------------------------------------


def test_load_dataset_dispatches_and_accepts_underscore_alias(tmp_path: Path) -> None:
    write_mnist_like(tmp_path / "fashion-mnist", n_train=30, n_test=None)
    for name in ("fashion-mnist", "fashion_mnist"):
        splits = load_dataset(name, root=tmp_path, val_size=5, test_size=10, verify=False)
        assert splits.name == "fashion-mnist" and len(splits.test) == 10
    assert load_dataset("digits").name == "digits"


def test_load_dataset_unknown_name_lists_valid_names() -> None:
    with pytest.raises(NCGError, match=r"unknown data set 'cifar'.*mnist, fashion-mnist.*digits"):
        load_dataset("cifar")


def test_repr_is_short_and_names_the_splits(tmp_path: Path) -> None:
    write_mnist_like(tmp_path / "mnist", n_train=30, n_test=10)
    splits = mnist(root=tmp_path, val_size=5, verify=False)
    assert isinstance(splits, DataSplits)
    assert repr(splits) == (
        "DataSplits('mnist', train=25, val=5, test=10, num_features=784, num_classes=10, "
        "test_split='official t10k test set')"
    )


# --- where the files are looked for ---------------------------------------------------------


@pytest.fixture
def three_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """An explicit root, an NCG_DATA_DIR root and a stand-in for the shipped data, each with a
    synthetic MNIST of a different size so that the source of a load can be told."""
    roots = {name: tmp_path / name for name in ("explicit", "env", "shipped")}
    for n_train, root in zip((21, 22, 23), roots.values()):
        write_mnist_like(root / "mnist", n_train=n_train, n_test=4)
    monkeypatch.setattr(datasets, "SHIPPED_DATA_DIR", roots["shipped"])
    return roots


def loaded_train_size(**kwargs: object) -> int:
    splits = mnist(val_size=1, verify=False, **kwargs)
    return len(splits.train) + len(splits.val)


def test_root_order_explicit_then_env_then_shipped(
    three_roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NCG_DATA_DIR", str(three_roots["env"]))
    assert loaded_train_size(root=three_roots["explicit"]) == 21
    assert loaded_train_size() == 22

    monkeypatch.setenv("NCG_DATA_DIR", str(tmp_path / "empty"))
    assert loaded_train_size() == 23  # NCG_DATA_DIR lacks mnist/: fall back to the shipped copy

    monkeypatch.delenv("NCG_DATA_DIR")
    assert loaded_train_size() == 23


def test_explicit_root_does_not_fall_back(
    three_roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NCG_DATA_DIR", str(three_roots["env"]))
    with pytest.raises(NCGError, match=r"MNIST IDX files not found") as info:
        mnist(root=tmp_path / "typo")
    assert str(three_roots["env"]) not in str(info.value)


def test_not_found_lists_every_place_looked_and_how_to_supply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NCG_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setattr(datasets, "SHIPPED_DATA_DIR", tmp_path / "pkg")
    (tmp_path / "env" / "fashion-mnist").mkdir(parents=True)
    write_idx(tmp_path / "env" / "fashion-mnist" / TRAIN[0], numbered_images(2))

    with pytest.raises(NCGError) as info:
        fashion_mnist()

    message = str(info.value)
    looked_env = r"env/fashion-mnist \(\$NCG_DATA_DIR\): missing train-labels-idx1-ubyte$"
    looked_shipped = (
        r"pkg/fashion-mnist \(shipped with ncg\): "
        r"missing train-images-idx3-ubyte, train-labels-idx1-ubyte$"
    )
    assert re.search(looked_env, message, re.MULTILINE)
    assert re.search(looked_shipped, message, re.MULTILINE)
    assert "ROOT/fashion-mnist/" in message and "NCG_DATA_DIR=ROOT" in message


# --- the real data --------------------------------------------------------------------------


def test_shipped_mnist_matches_readme_checksums() -> None:
    readme = (datasets.SHIPPED_DATA_DIR / "README.md").read_text()
    sums = re.findall(r"^([0-9a-f]{64})  (mnist/\S+)$", readme, re.MULTILINE)
    assert len(sums) == 4
    for digest, name in sums:
        content = gzip.decompress((datasets.SHIPPED_DATA_DIR / name).read_bytes())
        assert hashlib.sha256(content).hexdigest() == digest, name


def test_shipped_mnist_loads(no_data_env: None) -> None:
    splits = mnist()

    assert (len(splits.train), len(splits.val), len(splits.test)) == (55000, 5000, 10000)
    assert (splits.num_features, splits.num_classes, splits.image_shape) == (784, 10, (28, 28))
    assert splits.test_split == "official t10k test set"
    for split in (splits.train, splits.val, splits.test):
        x, y = split.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(y), 784)
        assert x.min() == 0 and x.max() == 1
        assert set(y.unique().tolist()) == set(range(10))
    # The first training label of the published set.
    assert splits.train.tensors[1][0] == 5


SHARED_FASHION = Path("/work/shared/data/fashion-mnist")


@pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason="Fashion-MNIST is not on this machine")
def test_real_fashion_mnist_held_out_split() -> None:
    splits = fashion_mnist(root=SHARED_FASHION.parent)
    expected_test = "official t10k test set"
    if not (SHARED_FASHION / TEST[0]).exists():
        expected_test = (
            "held-out split of train (last 10,000 images); the official test set was not found"
        )
    assert splits.test_split == expected_test
    assert (len(splits.train), len(splits.val)) == (
        (45000, 5000) if "held-out" in expected_test else (55000, 5000)
    )
    assert splits.image_shape == (28, 28)



# --- checksums of the known files -----------------------------------------------------------

SHIPPED_MNIST = datasets.SHIPPED_DATA_DIR / "mnist"
LABELS = "train-labels-idx1-ubyte"


def shipped(stem: str) -> bytes:
    """The uncompressed bytes of a shipped MNIST file."""
    return gzip.decompress((SHIPPED_MNIST / f"{stem}.gz").read_bytes())


def mnist_copy(root: Path, stem: str, content: bytes, *, compressed: bool) -> Path:
    """``root/mnist/`` linking to the shipped files, except ``stem``, which holds ``content``."""
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for name in TRAIN + TEST:
        if not name.startswith(stem):
            (folder / name).symlink_to(SHIPPED_MNIST / name)
    path = folder / (f"{stem}.gz" if compressed else stem)
    path.write_bytes(gzip.compress(content, mtime=0) if compressed else content)
    return path


def flip_first_label(content: bytes) -> bytes:
    """MNIST's first training label 5 turned into 3: still a valid label, so only the checksum
    can tell."""
    assert content[8] == 5
    return content[:8] + bytes([3]) + content[9:]


@pytest.mark.parametrize("compressed", [True, False], ids=["gz", "raw"])
def test_a_flipped_byte_in_a_known_file_is_a_checksum_error_naming_the_file(
    tmp_path: Path, compressed: bool
) -> None:
    changed = flip_first_label(shipped(LABELS))
    path = mnist_copy(tmp_path, LABELS, changed, compressed=compressed)

    with pytest.raises(ChecksumError) as info:
        mnist(root=tmp_path)

    message = str(info.value)
    assert message.startswith(f"{path}: checksum mismatch: ")
    assert f"expected sha256 {datasets.IDX_SHA256['mnist/' + LABELS]} " in message
    assert f"found {hashlib.sha256(changed).hexdigest()}" in message
    assert "re-download it from https://ossci-datasets.s3.amazonaws.com/mnist/" in message
    assert "pass verify=False" in message
    assert isinstance(info.value, IDXError)


def test_verify_false_loads_a_modified_copy(tmp_path: Path) -> None:
    mnist_copy(tmp_path, LABELS, flip_first_label(shipped(LABELS)), compressed=True)

    splits = mnist(root=tmp_path, verify=False)

    assert splits.train.tensors[1][0] == 3
    assert load_dataset("mnist", root=tmp_path, verify=False).train.tensors[1][0] == 3


def test_a_truncated_known_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = mnist_copy(tmp_path, LABELS, shipped(LABELS)[:-100], compressed=False)
    with pytest.raises(IDXError, match=rf"^{re.escape(str(path))}: truncated data: .*"
                                       r"needs 60008 bytes .*found 59908\. .*re-download"):
        mnist(root=tmp_path)


def test_a_consistently_shortened_known_file_is_caught_by_its_checksum(tmp_path: Path) -> None:
    """One label fewer, and a header that says so: valid IDX, but not the published file."""
    content = shipped(LABELS)
    shortened = content[:4] + (59_999).to_bytes(4, "big") + content[8:-1]
    path = mnist_copy(tmp_path, LABELS, shortened, compressed=True)
    with pytest.raises(ChecksumError, match=rf"^{re.escape(str(path))}: checksum mismatch"):
        mnist(root=tmp_path)


def test_a_damaged_shipped_copy_says_to_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_data_env: None
) -> None:
    mnist_copy(tmp_path / "pkg", LABELS, flip_first_label(shipped(LABELS)), compressed=True)
    monkeypatch.setattr(datasets, "SHIPPED_DATA_DIR", tmp_path / "pkg")
    with pytest.raises(ChecksumError, match=r"re-download it from .* or reinstall ncg"):
        mnist()


def test_fashion_mnist_t10k_is_checked_only_as_the_published_gz(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the md5 of the published t10k .gz files is known: a .gz that is not the published
    one is refused, a raw t10k file (no published digest) is read unchecked."""
    monkeypatch.setattr(datasets, "IDX_SHA256", {})  # synthetic training files pass unchecked
    folder = tmp_path / "fashion-mnist"
    write_mnist_like(folder, n_train=30, n_test=8)
    with pytest.raises(ChecksumError) as info:
        fashion_mnist(root=tmp_path, val_size=5)
    message = str(info.value)
    assert message.startswith(f"{folder / TEST[0]}: checksum mismatch: expected md5 ")
    assert "bef4ecab320f06d8554ea6380940ec79 of the published .gz file" in message
    assert "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/" in message

    for name in TEST:
        (folder / name).with_suffix("").write_bytes(gzip.decompress((folder / name).read_bytes()))
        (folder / name).unlink()
    assert len(fashion_mnist(root=tmp_path, val_size=5).test) == 8


def test_files_of_unknown_name_are_read_unchecked(tmp_path: Path) -> None:
    changed = tmp_path / "my-train-labels-idx1-ubyte"
    changed.write_bytes(flip_first_label(shipped(LABELS)))
    assert read_idx(changed)[0] == 3  # read_idx checks only when given a digest
    write_emnist(tmp_path, "digits", numbered_images(3), np.array([0, 1, 9]))
    assert len(emnist("digits", root=tmp_path, val_size=1).test) == 3  # no EMNIST digests



def test_known_digests_match_the_published_lists() -> None:
    readme = (SHIPPED_MNIST.parent / "README.md").read_text()
    listed = re.findall(r"^([0-9a-f]{64})  (\S+?)(?:\.gz)?$", readme, re.MULTILINE)
    assert {name: digest for digest, name in listed} == datasets.IDX_SHA256
    for name, md5 in datasets.IDX_GZ_MD5.items():
        assert name.endswith(".gz") and f"`{md5}`" in readme
    shared = Path("/work/shared/data/SHA256SUMS.txt")
    if shared.is_file():
        listed = dict(
            (name, digest)
            for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)\.gz \(uncompressed\)$",
                                           shared.read_text(), re.MULTILINE)
        )
        assert listed == datasets.IDX_SHA256
