"""Data of any form, read as ``(x, y)`` batches: the one place where data enters ncg.

Training (:mod:`ncg.train`), Free-Evolve (:mod:`ncg.evolve`), coactivation recording and the
gradient rules take their data as any of

* tensors ``(x, y)`` (or ``x`` alone where no target is needed): batches are index slices;
* a map-style ``torch.utils.data.Dataset`` whose items are ``(x, y)`` pairs: a batch reads only
  its own items (``dataset[i]``) and stacks them with ``default_collate``, so nothing of the
  size of the data set is held. A ``TensorDataset`` of two tensors is read as its tensors;
* a ``DataLoader`` (or any re-iterable of batches ``(x, y)``, ``[x, y]`` or ``x``): streamed
  as it comes, with its own batching and shuffling; ``batch_size`` and ``generator`` are then
  ignored.

:func:`as_batches` turns each into a :class:`Batches`, which yields batches in the order the
tensor path always used: :meth:`Batches.shuffled` draws ``torch.randperm(n, generator)`` per
epoch and cuts it into global batches; :meth:`Batches.in_order` reads the samples front to back.
A Dataset therefore gives exactly the batches of the same data as tensors, and a DataLoader does
when its sampler yields the same order (e.g. a sampler drawing ``torch.randperm`` from a
generator with the same seed).

Data-parallel runs (``torchrun``, :mod:`ncg.distributed`): tensors and Datasets are held whole
by every rank, which draws the same order and reads only its slice of each global batch
(:meth:`Batches.shuffled`) or its contiguous share of the samples (:meth:`Batches.local`). A
DataLoader cannot be split that way (its batches are already drawn), so under more than one
process it raises :class:`~ncg.errors.NCGError`: pass its Dataset instead, with the loader's
``batch_size``.

Examples
--------
>>> import torch
>>> from torch.utils.data import DataLoader, TensorDataset
>>> x, y = torch.arange(10.0).reshape(5, 2), torch.tensor([0, 1, 0, 1, 1])
>>> [b.tolist() for b, _ in as_batches(x, y).in_order(batch_size=2)]
[[[0.0, 1.0], [2.0, 3.0]], [[4.0, 5.0], [6.0, 7.0]], [[8.0, 9.0]]]
>>> [t.tolist() for _, t in as_batches(DataLoader(TensorDataset(x, y), batch_size=4)).in_order()]
[[0, 1, 0, 1], [1]]
>>> as_batches(TensorDataset(x, y)).first(3).num_samples
3
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable, Iterator, NamedTuple, Union

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, Dataset, IterableDataset, Subset, TensorDataset, default_collate

from ncg.distributed import local_slice, world
from ncg.errors import NCGError

__all__ = ["Data", "Check", "Batch", "Batches", "as_batches"]

Check = Callable[[Tensor, "Tensor | None", str], None]
"""``check(x, y, label)``: raises if ``(x, y)`` cannot be used; ``label`` names the data (and,
for streamed data, the batch)."""


class Batch(NamedTuple):
    """One training step's data on this rank: ``x`` and ``y`` (``None`` where this rank holds
    no sample of the global batch) and ``total``, the global batch's size over all ranks."""

    x: Tensor | None
    y: Tensor | None
    total: int


@dataclass(frozen=True)
class Batches:
    """Data normalised by :func:`as_batches`: exactly one of ``x`` (tensors, with ``y`` or
    ``None``), ``dataset`` (map-style) or ``loader`` (any iterable of batches) is set.

    Attributes
    ----------
    x, y : Tensor or None
        In-memory inputs and targets.
    dataset : Dataset or None
        A map-style data set of ``(x, y)`` items.
    loader : iterable or None
        A DataLoader or another re-iterable of batches.
    limit : int or None
        A loader stops after this many samples (:meth:`first`).
    argument : str
        How errors name the data (e.g. ``"training data"``).
    """

    x: Tensor | None = None
    y: Tensor | None = None
    dataset: Dataset | None = None
    loader: Iterable | None = None
    limit: int | None = None
    argument: str = "data"

    @property
    def num_samples(self) -> int | None:
        """Samples per pass, ``None`` if unknown (a loader without a sized sampler).

        Examples
        --------
        >>> from torch.utils.data import DataLoader
        >>> as_batches(DataLoader(range(10), batch_size=4, drop_last=True)).num_samples
        8
        """
        if self.x is not None:
            return int(self.x.shape[0])
        if self.dataset is not None:
            return len(self.dataset)
        size = _loader_size(self.loader)
        return size if self.limit is None or size is None else min(size, self.limit)

    def batch_size(self, batch_size: int) -> int:
        """The size of a batch: a loader's own (where it says), else ``batch_size``."""
        return getattr(self.loader, "batch_size", None) or batch_size

    def num_batches(self, batch_size: int) -> int | None:
        """Batches per pass (of ``batch_size``, or the loader's own), ``None`` if unknown."""
        if self.loader is None:
            return -(-self.num_samples // batch_size)
        try:
            return len(self.loader) if self.limit is None else None
        except TypeError:
            return None

    def first(self, count: int | None) -> Batches:
        """The first ``count`` samples (all if ``None``), in the data's order."""
        if count is None:
            return self
        if self.x is not None:
            return replace(self, x=self.x[:count], y=None if self.y is None else self.y[:count])
        if self.dataset is not None:
            return replace(self, dataset=Subset(self.dataset, range(min(count, len(self.dataset)))))
        return replace(self, limit=count if self.limit is None else min(count, self.limit))

    def local(self) -> Batches:
        """This rank's contiguous share of the samples (:func:`~ncg.distributed.local_slice`);
        itself in one process."""
        rank, size = world()
        if size == 1:
            return self
        self._require_splittable()
        start, stop = local_slice(self.num_samples, rank, size)
        if self.x is not None:
            return replace(self, x=self.x[start:stop], y=None if self.y is None else self.y[start:stop])
        return replace(self, dataset=Subset(self.dataset, range(start, stop)))

    def in_order(self, batch_size: int = 2048, check: Check | None = None) -> Iterator[tuple[Tensor, Tensor | None]]:
        """Batches ``(x, y)`` front to back (``y`` is ``None`` for inputs alone).

        ``check(x, y, label)`` runs once on in-memory tensors and on every batch of streamed data.
        """
        if self.x is not None:
            if check is not None:
                check(self.x, self.y, self.argument)
            for start in range(0, self.x.shape[0], batch_size):
                yield self.x[start:start + batch_size], None if self.y is None else self.y[start:start + batch_size]
        elif self.dataset is not None:
            n = len(self.dataset)
            for number, start in enumerate(range(0, n, batch_size)):
                yield self._checked(self._fetch(range(start, min(start + batch_size, n))), check, number)
        else:
            seen = 0
            for number, item in enumerate(self.loader):
                if self.limit is not None and seen >= self.limit:
                    return
                xb, yb = _split(item, self.argument, number)
                if self.limit is not None and seen + xb.shape[0] > self.limit:
                    xb, yb = xb[:self.limit - seen], None if yb is None else yb[:self.limit - seen]
                seen += xb.shape[0]
                yield self._checked((xb, yb), check, number)

    def shuffled(self, batch_size: int, generator: torch.Generator | None = None,
                 check: Check | None = None) -> Iterator[Batch]:
        """One training epoch: a permutation ``torch.randperm(n, generator=generator)`` cut into
        global batches of ``batch_size``, of which this rank gets its slice
        (:func:`~ncg.distributed.local_slice`); a loader's own batches as they come.

        ``check`` runs as in :meth:`in_order`.
        """
        rank, size = world()
        if self.loader is not None:
            self._require_splittable()
            for xb, yb in self.in_order(check=check):
                yield Batch(xb, yb, xb.shape[0])
            return
        n = self.num_samples
        if self.x is not None and check is not None:
            check(self.x, self.y, self.argument)
        order = torch.randperm(n, generator=generator)
        for number, start in enumerate(range(0, n, batch_size)):
            index = order[start:start + batch_size]
            lo, hi = local_slice(index.numel(), rank, size)
            if hi <= lo:
                yield Batch(None, None, index.numel())
            elif self.x is not None:
                mine = index[lo:hi]
                yield Batch(self.x[mine], None if self.y is None else self.y[mine], index.numel())
            else:
                xb, yb = self._checked(self._fetch(index[lo:hi].tolist()), check, number)
                yield Batch(xb, yb, index.numel())

    def _fetch(self, indices: Iterable[int]) -> tuple[Tensor, Tensor | None]:
        items = [self.dataset[i] for i in indices]
        return _split(default_collate(items), self.argument, None)

    def _checked(self, batch: tuple[Tensor, Tensor | None], check: Check | None,
                 number: int) -> tuple[Tensor, Tensor | None]:
        if check is not None:
            check(*batch, f"{self.argument}, batch {number}")
        return batch

    def _require_splittable(self) -> None:
        if self.loader is not None and world()[1] > 1:
            raise NCGError(
                f"{self.argument}: a {type(self.loader).__name__} cannot be split over the {world()[1]} "
                "data-parallel ranks (its batches are already drawn); pass its Dataset instead (every "
                "rank reads only its slice of each batch), with the loader's batch size"
            )


Data = Union[Tensor, tuple[Tensor, Tensor], Dataset, Iterable, Batches]
"""What ncg accepts as data: tensors ``(x, y)`` (or ``x``), a Dataset, a DataLoader or other
iterable of batches, or a :class:`Batches`."""


def as_batches(data: Data, y: Tensor | None = None, argument: str = "data") -> Batches:
    """Normalise ``data`` (see the module docstring) into :class:`Batches`.

    Parameters
    ----------
    data : Tensor, tuple of Tensor, Dataset, iterable or Batches
        Inputs ``x`` (with ``y`` given separately or not at all), a pair ``(x, y)``, a map-style
        Dataset of ``(x, y)`` items, a DataLoader or another re-iterable of batches.
    y : Tensor, optional
        Targets, when ``data`` is the input tensor.
    argument : str
        How errors name the data.

    Raises
    ------
    NCGError
        Naming ``argument``, the expected and the found type, for data of no accepted form (an
        ``IterableDataset`` included: it yields single samples, so wrap it in a DataLoader).

    Examples
    --------
    >>> import torch
    >>> as_batches((torch.zeros(4, 2), torch.zeros(4))).num_samples
    4
    >>> as_batches(3, argument="train")
    Traceback (most recent call last):
    ...
    ncg.errors.NCGError: train: expected tensors (x, y), a Dataset or a DataLoader, got int
    """
    if isinstance(data, Batches):
        return data
    if isinstance(data, Tensor):
        return Batches(x=data, y=y, argument=argument)
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(t, Tensor) for t in data) and y is None:
        return Batches(x=data[0], y=data[1], argument=argument)
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return Batches(x=data.tensors[0], y=data.tensors[1], argument=argument)
    if isinstance(data, IterableDataset):
        raise NCGError(f"{argument}: an IterableDataset yields single samples; wrap it in a "
                       "DataLoader(dataset, batch_size=...) to pass its batches")
    if isinstance(data, Dataset):
        if not hasattr(data, "__len__"):
            raise NCGError(f"{argument}: a map-style Dataset needs __len__, got {type(data).__name__} without it")
        return Batches(dataset=data, argument=argument)
    if isinstance(data, Iterable) and not isinstance(data, (str, bytes, dict)):
        return Batches(loader=data, argument=argument)
    raise NCGError(f"{argument}: expected tensors (x, y), a Dataset or a DataLoader, got {type(data).__name__}")


def _split(item: object, argument: str, number: int | None) -> tuple[Tensor, Tensor | None]:
    """``(x, y)`` of one batch ``(x, y)``, ``[x, y]`` or ``x``."""
    if isinstance(item, (tuple, list)) and 1 <= len(item) <= 2:
        x, y = item[0], item[1] if len(item) == 2 else None
    else:
        x, y = item, None
    if not isinstance(x, Tensor) or not (y is None or isinstance(y, Tensor)):
        where = "an item" if number is None else f"batch {number}"
        found = f"({type(x).__name__}, {type(y).__name__})"
        raise NCGError(f"{argument}: {where} must be tensors (x, y) or x alone, got {found}")
    return x, y


def _loader_size(loader: Iterable) -> int | None:
    """Samples one pass of ``loader`` yields, if its batch sampler says (``None`` otherwise)."""
    sampler = getattr(loader, "batch_sampler", None)
    if not isinstance(sampler, BatchSampler):
        return None
    try:
        n = len(sampler.sampler)
    except TypeError:
        return None
    return n - n % sampler.batch_size if sampler.drop_last else n
