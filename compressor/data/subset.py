"""Representative subsets: a seeded, class-stratified random sample instead of "the first N images".

Calibration, parity and kNN checks, bench inputs, ``eval --max-*`` and training's ``--max-images``
all look at a subset of a data set, and all draw it here. Taking the first N is wrong on exactly
the data users bring: a class-folder data set is sorted by class, so its first 512 images are often
one class, and INT8 scales or fidelity figures computed on them do not describe the rest.
Fashion-MNIST hides this because its files are already shuffled.

The order drawn here puts one image of every class first (in random order), then the rest in
proportion to the class sizes, so any prefix of it is itself representative: ``n >= #classes``
images hold every class, and a bench batch of 8 taken from the front is mixed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Subset

from compressor.data.images import ImageDataset

STRATEGY = "class-stratified random"


def dataset_labels(ds: object) -> np.ndarray | None:
    """Every label of ``ds`` without decoding an image, or ``None`` when it has none (or cannot say)."""
    if not getattr(ds, "has_labels", False):
        return None
    if isinstance(ds, Subset):  # the base set's labels, at the subset's indices
        inner = dataset_labels(ds.dataset)
        return None if inner is None else inner[np.asarray(ds.indices, dtype=np.int64)]
    labels = getattr(ds, "labels", None)
    if labels is not None:
        return np.asarray(labels, dtype=np.int64)
    classes = getattr(ds, "classes", None)
    if isinstance(ds, ImageDataset) and type(ds).__name__ == "SyntheticDataset" and classes:
        return np.arange(len(ds), dtype=np.int64) % len(classes)
    return None


def stratified_order(labels: np.ndarray | None, n_items: int, seed: int = 0) -> np.ndarray:
    """A permutation of ``range(n_items)`` whose every prefix is a class-stratified random sample.

    Each item gets the key ``(rank within its class + u) / class size`` (``u`` uniform in [0, 1)), so
    sorting by key interleaves the classes in proportion to their sizes; every class's first item
    gets a negative key, so the first ``#classes`` items cover every class. Without labels (or with
    the ``-1`` of unlabelled data) it is a plain seeded permutation.
    """
    rng = np.random.default_rng(seed)
    if labels is None or len(labels) == 0 or bool((labels < 0).all()):
        return rng.permutation(n_items)
    keys = np.empty(n_items, dtype=np.float64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank = rng.permutation(len(idx)).astype(np.float64)
        keys[idx] = (rank + rng.uniform(size=len(idx))) / len(idx)
        keys[idx[rank == 0]] -= 1.0  # one of each class before any second one
    return np.argsort(keys, kind="stable")


@dataclass
class Sample:
    """Which images a subset holds: their indices in the data set, plus what the manifest records."""

    indices: np.ndarray
    seed: int

    def record(self, ds: object, *, max_files: int = 1024) -> dict:
        """``{strategy, seed, n, per_class, files|indices}``: enough to redraw or audit the subset."""
        out: dict = {"strategy": STRATEGY, "seed": self.seed, "n": len(self.indices)}
        labels = dataset_labels(ds)
        classes = list(getattr(ds, "classes", []) or [])
        if labels is not None and classes:
            counts = Counter(int(labels[i]) for i in self.indices)
            out["per_class"] = {classes[c] if 0 <= c < len(classes) else str(c): counts[c]
                                for c in sorted(counts)}
        files = getattr(ds, "files", None)
        if files is not None and len(self.indices) <= max_files:
            out["files"] = [str(Path(files[i])) for i in self.indices]
        else:
            out["indices"] = [int(i) for i in self.indices]
        return out


def representative_order(ds: ImageDataset, seed: int = 0) -> np.ndarray:
    """:func:`stratified_order` over a data set's own labels."""
    return stratified_order(dataset_labels(ds), len(ds), seed)


class SubsetDataset(Subset[Any], ImageDataset):
    """``indices`` of ``dataset`` that is still an :class:`ImageDataset` (its classes, and its labels)."""

    def __init__(self, dataset: ImageDataset, indices: Iterable[int]) -> None:
        super().__init__(dataset, [int(i) for i in indices])
        self.classes = dataset.classes


def sample(ds: ImageDataset, n: int | None, seed: int = 0) -> ImageDataset:
    """The first ``n`` of :func:`representative_order` (all of ``ds`` when ``n`` is ``None`` or not smaller)."""
    if not n or n >= len(ds):
        return ds
    return SubsetDataset(ds, representative_order(ds, seed)[:n])


def training_subset(ds: ImageDataset, max_images: int | None, seed: int) -> ImageDataset:
    """``--max-images``: a fixed class-stratified random subset (the same for every run with this seed),
    in the data set's own order."""
    if not max_images or max_images >= len(ds):
        return ds
    return SubsetDataset(ds, np.sort(representative_order(ds, seed)[:max_images]))
