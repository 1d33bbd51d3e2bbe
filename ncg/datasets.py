"""The data sets ncg trains on: MNIST, Fashion-MNIST, EMNIST and digits.

Every loader returns a :class:`DataSplits`: three ``TensorDataset`` splits of flattened images
scaled to [0, 1] with ``int64`` labels. Each split is fixed and documented; none is random except
:func:`digits`, which uses a fixed seed.

Where the IDX files are looked for
----------------------------------
A data set lives in a folder of its own (``mnist/``, ``fashion-mnist/``, ``emnist/``) under a
data root. With an explicit ``root`` argument, ``root/<folder>/`` is the only place searched, so a
wrong path fails loudly instead of silently loading other data. Without one, the loaders search
``$NCG_DATA_DIR/<folder>/`` and then the copy shipped inside the package (``ncg/data/``; only
MNIST ships). Each file may be gzip-compressed (``NAME.gz``) or raw (``NAME``).

Checksums
---------
Like torchvision after a download, the loaders check each file they know against the digest of
the published file, so a flipped pixel or a cut-off file is an error that names the file, the
expected and the found digest, and where to re-download it (:class:`~ncg.errors.ChecksumError`).
``IDX_SHA256`` holds the sha256 of the *uncompressed* bytes of the MNIST files and of the
Fashion-MNIST training files, so ``NAME`` and ``NAME.gz`` (however compressed) are checked
alike. Of the Fashion-MNIST t10k files only the md5 of the published ``.gz`` is known
(``IDX_GZ_MD5``), so only that ``.gz`` is checked. Files of any other name (EMNIST's: no per-file
digests are published) are read unchecked. Pass ``verify=False`` to a loader to read a copy you
modified on purpose. The check hashes the bytes already read: about 30 ms for MNIST's 47 MB of
training images, which take about 180 ms to decompress.

The IDX format itself (:func:`~ncg.idx.read_idx`, :func:`~ncg.idx.write_idx`) lives in
:mod:`ncg.idx`, and tables of your own (:func:`~ncg.tables.load_table`) in :mod:`ncg.tables`;
both can be imported from here as well.

Examples
--------
>>> from ncg.datasets import digits
>>> splits = digits()
>>> splits
DataSplits('digits', train=1257, val=270, test=270, num_features=64, num_classes=10, ...)
>>> x, y = splits.train[0]
>>> x.shape, x.dtype, y.dtype
(torch.Size([64]), torch.float32, torch.int64)
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from ncg.errors import ChecksumError, IDXError, NCGError
from ncg.idx import check_digest, read_idx, write_idx

__all__ = [
    "DATA_DIR_ENV",
    "SHIPPED_DATA_DIR",
    "FASHION_MNIST_HELDOUT_SIZE",
    "EMNIST_NUM_CLASSES",
    "DIGITS_SEED",
    "IDX_SHA256",
    "IDX_GZ_MD5",
    "DataSplits",
    "mnist",
    "fashion_mnist",
    "emnist",
    "digits",
    "load_dataset",
]

DATA_DIR_ENV = "NCG_DATA_DIR"
SHIPPED_DATA_DIR = Path(__file__).resolve().parent / "data"
FASHION_MNIST_HELDOUT_SIZE = 10_000
EMNIST_NUM_CLASSES = {
    "balanced": 47,
    "byclass": 62,
    "bymerge": 47,
    "digits": 10,
    "letters": 26,
    "mnist": 10,
}
DIGITS_SEED = 0

IDX_SHA256: dict[str, str] = {
    "mnist/train-images-idx3-ubyte":
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "mnist/train-labels-idx1-ubyte":
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "mnist/t10k-images-idx3-ubyte":
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "mnist/t10k-labels-idx1-ubyte":
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "fashion-mnist/train-images-idx3-ubyte":
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "fashion-mnist/train-labels-idx1-ubyte":
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}
"""sha256 of the *uncompressed* bytes of each known IDX file (the published content), keyed
``"<folder>/<name>"``: it holds for ``NAME`` and ``NAME.gz`` alike, however the file was
compressed (see ``ncg/data/README.md``)."""
IDX_GZ_MD5: dict[str, str] = {
    "fashion-mnist/t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
"""md5 of the ``.gz`` files as published (the digests torchvision checks), for the known files
whose uncompressed digest is not published: only the original ``.gz`` file can be checked, and a
raw or recompressed copy of such a file is read unchecked."""
_DOWNLOADS: dict[str, tuple[str, str]] = {
    "mnist": (
        "MNIST",
        "https://ossci-datasets.s3.amazonaws.com/mnist/ "
        "(torchvision's mirror of http://yann.lecun.com/exdb/mnist/)",
    ),
    "fashion-mnist": (
        "Fashion-MNIST",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ "
        "(see https://github.com/zalandoresearch/fashion-mnist)",
    ),
}

_MNIST_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_MNIST_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True, repr=False)
class DataSplits:
    """A data set cut into fixed train, validation and test splits.

    Each split is a ``TensorDataset`` of ``(x, y)``: ``x`` float32 of shape
    ``[n, num_features]`` with values in [0, 1], ``y`` int64 of shape ``[n]`` in
    ``[0, num_classes)``.

    Attributes
    ----------
    name : str
        Data set name, e.g. ``"mnist"`` or ``"emnist-balanced"``.
    train, val, test : TensorDataset
        The three splits.
    num_features : int
        Length of one flattened image.
    num_classes : int
        Number of label values.
    image_shape : tuple of int or None
        ``(height, width)`` to reshape a row of ``x`` into an image.
    test_split : str
        Where the test split came from, to label every reported result with.

    Examples
    --------
    >>> from ncg.datasets import digits
    >>> splits = digits()
    >>> splits.image_shape, splits.test_split
    ((8, 8), 'held-out split (fixed permutation, seed 0): 270 of 1,797 samples')
    """

    name: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_features: int
    num_classes: int
    image_shape: tuple[int, int] | None
    test_split: str

    def __repr__(self) -> str:
        return (
            f"DataSplits({self.name!r}, train={len(self.train)}, val={len(self.val)}, "
            f"test={len(self.test)}, num_features={self.num_features}, "
            f"num_classes={self.num_classes}, test_split={self.test_split!r})"
        )

def _search_dirs(folder: str, root: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    if root is not None:
        return [(Path(root) / folder, "root argument")]
    dirs = []
    env_root = os.environ.get(DATA_DIR_ENV)
    if env_root:
        dirs.append((Path(env_root) / folder, f"${DATA_DIR_ENV}"))
    dirs.append((SHIPPED_DATA_DIR / folder, "shipped with ncg"))
    return dirs


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def _locate(
    title: str, folder: str, stems: Sequence[str], root: str | os.PathLike[str] | None
) -> tuple[Path, list[Path]]:
    """The first search directory holding every file in ``stems``, and those files."""
    looked = []
    for directory, origin in _search_dirs(folder, root):
        found = [_find_idx(directory, stem) for stem in stems]
        if all(path is not None for path in found):
            return directory, found
        missing = ", ".join(stem for stem, path in zip(stems, found) if path is None)
        looked.append(f"  {directory} ({origin}): missing {missing}")
    raise NCGError(
        f"{title} IDX files not found (each as NAME.gz or NAME). Looked in:\n"
        + "\n".join(looked)
        + f"\nPut the files in ROOT/{folder}/ and pass root=ROOT, or set {DATA_DIR_ENV}=ROOT."
    )


def _read_checked(path: Path, folder: str, verify: bool) -> np.ndarray:
    """``read_idx(path)``, checked against the published digest of ``folder/<file name>``
    (``IDX_SHA256``, else ``IDX_GZ_MD5``) unless ``verify`` is false; a file of unknown name is
    read unchecked. Errors in a known file say where to get a good copy."""
    sha256 = IDX_SHA256.get(f"{folder}/{path.name.removesuffix('.gz')}") if verify else None
    gz_md5 = IDX_GZ_MD5.get(f"{folder}/{path.name}") if verify else None
    try:
        if gz_md5 is not None:
            check_digest(path, "md5", gz_md5, [path.read_bytes()], "of the published .gz file")
        return read_idx(path, sha256=sha256)
    except IDXError as err:
        if sha256 is None and gz_md5 is None:
            raise
        title, url = _DOWNLOADS[folder]
        advice = f"It should be the published {title} file: re-download it from {url}"
        if SHIPPED_DATA_DIR in path.resolve().parents:
            advice += " or reinstall ncg, which ships this copy"
        if isinstance(err, ChecksumError):
            advice += ", or pass verify=False to read a copy you changed on purpose"
        raise type(err)(f"{err}. {advice}.") from None


def _read_labelled_images(
    images_path: Path,
    labels_path: Path,
    num_classes: int,
    *,
    read: Callable[[Path], np.ndarray],
    first_label: int = 0,
    transposed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Flattened images in [0, 1], labels shifted to start at 0, and the image shape."""
    images, labels = read(images_path), read(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise IDXError(
            f"{images_path}: expected uint8 images of shape [n, height, width], "
            f"found {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise IDXError(
            f"{labels_path}: expected integer labels of shape [n], "
            f"found {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise IDXError(
            f"{images_path} holds {len(images)} images but {labels_path} holds "
            f"{len(labels)} labels"
        )
    if len(labels) and (labels.min() < first_label or labels.max() >= first_label + num_classes):
        raise IDXError(
            f"{labels_path}: labels must lie in [{first_label}, {first_label + num_classes - 1}], "
            f"found values from {labels.min()} to {labels.max()}"
        )
    if transposed:
        images = images.transpose(0, 2, 1)
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= 255
    y = labels.astype(np.int64) - first_label
    return torch.from_numpy(x), torch.from_numpy(y), (images.shape[1], images.shape[2])


def _check_split_sizes(n: int, **sizes: int) -> int:
    """The training split's size once the named held-out ``sizes`` are taken from ``n``."""
    for argument, size in sizes.items():
        if size < 0:
            raise NCGError(f"{argument} must be non-negative, got {size}")
    n_train = n - sum(sizes.values())
    if n_train <= 0:
        given = ", ".join(f"{argument}={size}" for argument, size in sizes.items())
        raise NCGError(f"{given} leave no training images out of {n}")
    return n_train


def _idx_splits(
    name: str,
    train_files: Sequence[Path],
    test_files: Sequence[Path] | None,
    *,
    num_classes: int,
    val_size: int,
    test_size: int,
    official_test: str,
    folder: str,
    verify: bool,
    first_label: int = 0,
    transposed: bool = False,
) -> DataSplits:
    """Train = the first images, val = the next ``val_size``; test from ``test_files`` if
    given, else the last ``test_size`` training images. The files, from the data set's
    ``folder``, are checked as :func:`_read_checked` says."""
    read = dict(
        read=partial(_read_checked, folder=folder, verify=verify),
        first_label=first_label,
        transposed=transposed,
    )
    x, y, image_shape = _read_labelled_images(*train_files, num_classes, **read)
    if test_files is None:
        n_train = _check_split_sizes(len(y), val_size=val_size, test_size=test_size)
        n_fit = n_train + val_size
        test = TensorDataset(x[n_fit:], y[n_fit:])
        test_split = (
            f"held-out split of train (last {test_size:,} images); "
            "the official test set was not found"
        )
    else:
        x_test, y_test, test_shape = _read_labelled_images(*test_files, num_classes, **read)
        if test_shape != image_shape:
            raise IDXError(
                f"{train_files[0]} holds {image_shape} images but {test_files[0]} holds "
                f"{test_shape} images"
            )
        n_train = _check_split_sizes(len(y), val_size=val_size)
        n_fit = n_train + val_size
        test = TensorDataset(x_test, y_test)
        test_split = official_test
    return DataSplits(
        name=name,
        train=TensorDataset(x[:n_train], y[:n_train]),
        val=TensorDataset(x[n_train:n_fit], y[n_train:n_fit]),
        test=test,
        num_features=x.shape[1],
        num_classes=num_classes,
        image_shape=image_shape,
        test_split=test_split,
    )


def mnist(
    root: str | os.PathLike[str] | None = None, val_size: int = 5000, *, verify: bool = True
) -> DataSplits:
    """MNIST handwritten digits: 28x28 grey images, 10 classes.

    Split: train = the first ``60000 - val_size`` training images, val = the last
    ``val_size`` training images, test = the official 10,000-image t10k set. The package ships
    MNIST, so this works without any download.

    Parameters
    ----------
    root : str or path-like, optional
        Data root holding ``mnist/`` with ``train-images-idx3-ubyte``,
        ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``
        (each ``.gz`` or raw). Default: ``$NCG_DATA_DIR``, then the shipped copy.
    val_size : int, default 5000
        Number of training images held out for validation.
    verify : bool, default True
        Check each file against its published digest (``IDX_SHA256``) and raise
        ``ChecksumError`` on a mismatch. Pass ``False`` to read a copy you modified on purpose.

    Returns
    -------
    DataSplits

    Raises
    ------
    NCGError
        If the files are not found (the message lists every place looked) or ``val_size`` is
        out of range.
    IDXError
        If a file is malformed or the image and label counts differ.
    ChecksumError
        If ``verify`` and a file's content is not the published one: the message names the
        file, the expected and the found digest, and where to re-download it.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp()) / "mnist"
    >>> folder.mkdir()
    >>> images, labels = np.zeros((6, 28, 28), np.uint8), np.arange(6, dtype=np.uint8)
    >>> for prefix in ("train", "t10k"):
    ...     _ = write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
    ...     _ = write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    >>> mnist(root=folder.parent, val_size=2)
    Traceback (most recent call last):
    ncg.errors.ChecksumError: .../mnist/train-images-idx3-ubyte.gz: checksum mismatch: ...
    >>> mnist(root=folder.parent, val_size=2, verify=False)  # synthetic files: skip the check
    DataSplits('mnist', train=4, val=2, test=6, num_features=784, num_classes=10,
               test_split='official t10k test set')
    """
    _, files = _locate("MNIST", "mnist", _MNIST_TRAIN + _MNIST_TEST, root)
    return _idx_splits(
        "mnist",
        files[:2],
        files[2:],
        num_classes=10,
        val_size=val_size,
        test_size=0,
        official_test="official t10k test set",
        folder="mnist",
        verify=verify,
    )


def fashion_mnist(
    root: str | os.PathLike[str] | None = None,
    val_size: int = 5000,
    test_size: int = FASHION_MNIST_HELDOUT_SIZE,
    *,
    verify: bool = True,
) -> DataSplits:
    """Fashion-MNIST clothing images: 28x28 grey images, 10 classes.

    With the official t10k files present the split is MNIST's: train = the first
    ``60000 - val_size`` training images, val = the last ``val_size``, test = t10k. With only
    the training files, test = the last ``test_size`` training images, val = the ``val_size``
    images before those, train = the rest (45,000 / 5,000 / 10,000 by default), and
    ``test_split`` says so, so that results can be labelled "held-out split of train".

    Parameters
    ----------
    root : str or path-like, optional
        Data root holding ``fashion-mnist/`` with ``train-images-idx3-ubyte`` and
        ``train-labels-idx1-ubyte`` and optionally ``t10k-images-idx3-ubyte`` and
        ``t10k-labels-idx1-ubyte`` (each ``.gz`` or raw). Default: ``$NCG_DATA_DIR``.
    val_size : int, default 5000
        Number of training images held out for validation.
    test_size : int, default FASHION_MNIST_HELDOUT_SIZE (10,000)
        Number of training images held out as the test split when the t10k files are
        missing; ignored when they are present.
    verify : bool, default True
        Check each file against its published digest and raise ``ChecksumError`` on a
        mismatch: the training files' uncompressed content (``IDX_SHA256``, so ``.gz`` or raw),
        the t10k files only as the published ``.gz`` files (``IDX_GZ_MD5``; a raw or
        recompressed t10k file is read unchecked). Pass ``False`` to read a copy you modified
        on purpose.

    Returns
    -------
    DataSplits

    Raises
    ------
    NCGError
        If the training files are not found (the message lists every place looked) or the
        split sizes leave no training images.
    IDXError
        If a file is malformed or the image and label counts differ.
    ChecksumError
        If ``verify`` and a file is not the published one: the message names the file, the
        expected and the found digest, and where to re-download it.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp()) / "fashion-mnist"
    >>> folder.mkdir()
    >>> _ = write_idx(folder / "train-images-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8))
    >>> _ = write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8))
    >>> splits = fashion_mnist(root=folder.parent, val_size=2, test_size=3, verify=False)
    >>> len(splits.train), len(splits.val), len(splits.test)
    (5, 2, 3)
    >>> splits.test_split
    'held-out split of train (last 3 images); the official test set was not found'
    """
    directory, train_files = _locate("Fashion-MNIST", "fashion-mnist", _MNIST_TRAIN, root)
    test_files = [_find_idx(directory, stem) for stem in _MNIST_TEST]
    return _idx_splits(
        "fashion-mnist",
        train_files,
        test_files if all(path is not None for path in test_files) else None,
        num_classes=10,
        val_size=val_size,
        test_size=test_size,
        official_test="official t10k test set",
        folder="fashion-mnist",
        verify=verify,
    )


def emnist(
    split: str = "balanced",
    root: str | os.PathLike[str] | None = None,
    val_size: int = 5000,
    *,
    verify: bool = True,
) -> DataSplits:
    """EMNIST handwritten characters: 28x28 grey images in one of six standard splits.

    Split: train = the first ``n - val_size`` training images of the chosen EMNIST split,
    val = the last ``val_size``, test = that split's official test set. EMNIST stores each
    image transposed; the loader transposes it back so that images are upright like MNIST's.
    The ``letters`` labels 1..26 are shifted to 0..25.

    Parameters
    ----------
    split : str, default "balanced"
        One of ``EMNIST_NUM_CLASSES``: balanced (47 classes), byclass (62), bymerge (47),
        digits (10), letters (26), mnist (10).
    root : str or path-like, optional
        Data root holding ``emnist/`` with ``emnist-{split}-train-images-idx3-ubyte``,
        ``emnist-{split}-train-labels-idx1-ubyte``, ``emnist-{split}-test-images-idx3-ubyte``
        and ``emnist-{split}-test-labels-idx1-ubyte`` (each ``.gz`` or raw).
        Default: ``$NCG_DATA_DIR``.
    val_size : int, default 5000
        Number of training images held out for validation.
    verify : bool, default True
        Check files against their published digests. No per-file EMNIST digests are published
        (only the archive's), so no EMNIST file is in ``IDX_SHA256`` and the files are read
        unchecked today; the argument is there for symmetry with the other loaders.

    Returns
    -------
    DataSplits
        Named ``emnist-{split}``.

    Raises
    ------
    NCGError
        If ``split`` is unknown (the message lists the valid ones), the files are not found
        (the message lists every place looked) or ``val_size`` is out of range.
    IDXError
        If a file is malformed, the image and label counts differ, or a label is out of range.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp()) / "emnist"
    >>> folder.mkdir()
    >>> images, labels = np.zeros((4, 28, 28), np.uint8), np.array([1, 2, 25, 26], np.uint8)
    >>> for part in ("train", "test"):
    ...     _ = write_idx(folder / f"emnist-letters-{part}-images-idx3-ubyte.gz", images)
    ...     _ = write_idx(folder / f"emnist-letters-{part}-labels-idx1-ubyte.gz", labels)
    >>> splits = emnist("letters", root=folder.parent, val_size=1)
    >>> splits.num_classes, splits.test.tensors[1].tolist()
    (26, [0, 1, 24, 25])
    """
    if split not in EMNIST_NUM_CLASSES:
        raise NCGError(
            f"unknown EMNIST split {split!r}; expected one of {', '.join(EMNIST_NUM_CLASSES)}"
        )
    stems = [
        f"emnist-{split}-{part}-{kind}"
        for part in ("train", "test")
        for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")
    ]
    _, files = _locate(f"EMNIST {split}", "emnist", stems, root)
    return _idx_splits(
        f"emnist-{split}",
        files[:2],
        files[2:],
        num_classes=EMNIST_NUM_CLASSES[split],
        val_size=val_size,
        test_size=0,
        official_test=f"official EMNIST {split} test set",
        folder="emnist",
        verify=verify,
        first_label=1 if split == "letters" else 0,
        transposed=True,
    )


def digits(val_fraction: float = 0.15, test_fraction: float = 0.15) -> DataSplits:
    """scikit-learn's bundled 8x8 digits (1,797 samples, 10 classes): small and always present.

    Pixel values 0..16 are scaled to [0, 1]. The samples are reordered by the fixed permutation
    ``numpy.random.default_rng(DIGITS_SEED).permutation(1797)``; of that order, the last
    ``round(1797 * test_fraction)`` samples are the test split, the
    ``round(1797 * val_fraction)`` before them the validation split, and the rest the training
    split (1,257 / 270 / 270 by default).

    Parameters
    ----------
    val_fraction : float, default 0.15
        Fraction of the samples held out for validation.
    test_fraction : float, default 0.15
        Fraction of the samples held out for testing.

    Returns
    -------
    DataSplits

    Raises
    ------
    NCGError
        If a fraction is negative or the two sum to 1 or more, or leave no training samples.

    Examples
    --------
    >>> splits = digits(val_fraction=0.1, test_fraction=0.2)
    >>> len(splits.train), len(splits.val), len(splits.test)
    (1258, 180, 359)
    """
    # Imported here: scikit-learn takes about a second to import and only this loader needs it.
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise NCGError(
            f"val_fraction and test_fraction must be non-negative with a sum below 1, got "
            f"{val_fraction} and {test_fraction}"
        )
    n = len(labels)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = _check_split_sizes(n, val_size=n_val, test_size=n_test)
    order = np.random.default_rng(DIGITS_SEED).permutation(n)
    x = torch.from_numpy((images[order] / 16).astype(np.float32))
    y = torch.from_numpy(labels[order].astype(np.int64))
    n_fit = n_train + n_val
    return DataSplits(
        name="digits",
        train=TensorDataset(x[:n_train], y[:n_train]),
        val=TensorDataset(x[n_train:n_fit], y[n_train:n_fit]),
        test=TensorDataset(x[n_fit:], y[n_fit:]),
        num_features=x.shape[1],
        num_classes=10,
        image_shape=(8, 8),
        test_split=(
            f"held-out split (fixed permutation, seed {DIGITS_SEED}): {n_test} of {n:,} samples"
        ),
    )


_LOADERS: dict[str, Callable[..., DataSplits]] = {
    "mnist": mnist,
    "fashion-mnist": fashion_mnist,
    "fashion_mnist": fashion_mnist,
    "emnist": emnist,
    "digits": digits,
}


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, **kwargs) -> DataSplits:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of ``"mnist"``, ``"fashion-mnist"`` (or ``"fashion_mnist"``), ``"emnist"``,
        ``"digits"``.
    root : str or path-like, optional
        Data root, passed on to the loader when given (``digits`` takes none).
    **kwargs
        Further arguments of the loader, e.g. ``val_size``, ``split`` or ``verify=False``
        (``digits`` takes no ``verify``: it reads no files).

    Returns
    -------
    DataSplits

    Raises
    ------
    NCGError
        If ``name`` is unknown (the message lists the valid names), or as the loader raises.

    See Also
    --------
    mnist, fashion_mnist, emnist, digits

    Examples
    --------
    >>> load_dataset("digits", val_fraction=0.2).num_classes
    10
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise NCGError(f"unknown data set {name!r}; expected one of {', '.join(_LOADERS)}")
    if root is not None:
        kwargs["root"] = root
    return loader(**kwargs)


_TABLE_NAMES = ("TABLE_MAX_CLASSES", "TableSplits", "load_table")


def __getattr__(name: str) -> Any:
    """``load_table`` and its companions of :mod:`ncg.tables`, imported on first use (that module
    builds on :class:`DataSplits`, so importing it here at the top would be circular)."""
    if name in _TABLE_NAMES:
        from ncg import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
