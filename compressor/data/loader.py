"""A resumable, reproducible loader.

Reproducibility does not depend on the number of workers: the order of an epoch is a permutation
drawn from ``(seed, epoch)``, and each sample's augmentations draw from a generator seeded by
``(seed, epoch, index)``. A run stopped after ``k`` batches of an epoch resumes by skipping exactly
those ``k`` batches of the same permutation, so a resumed run sees the same images with the same
augmentations as an uninterrupted one.

Under DDP the batch size is the *global* batch: every rank draws the same permutation and takes
its own contiguous slice of each global batch (rank ``r`` of ``N``: rows ``[r·B/N, (r+1)·B/N)``),
so N processes see, between them, exactly the images and augmentations one process would, and the
data position is still the step alone, whatever the number of processes.
"""

from __future__ import annotations

import itertools
import logging
import signal
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from compressor.data.datasets import ImageDataset

log = logging.getLogger("compressor")


class ViewDataset(Dataset):
    """Applies ``views`` (PIL -> dict of tensors) to each image with a per-sample seeded RNG."""

    def __init__(self, base: ImageDataset, views: Callable[[object], dict], seed: int) -> None:
        self.base, self.views, self.seed = base, views, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: int) -> dict | None:
        """``key = epoch · N + i``: image ``i`` as augmented in ``epoch`` (workers live across epochs)."""
        epoch, i = divmod(int(key), len(self.base))
        img, label = self.base[i]
        if img is None:
            if hasattr(self.base, "files"):
                return {"_skipped": self.base.files[i]}
            return {"_skipped": self.base.item_name(i) if hasattr(self.base, "item_name") else str(i)}  # shards
        threads = torch.get_num_threads()
        try:
            # Small per-image ops are far slower through a busy intra-op thread pool (a 3×3 blur on a
            # 32 px image: 60 ms with 2 threads on a loaded 2-core machine, 0.2 ms with 1).
            torch.set_num_threads(1)
            with torch.random.fork_rng(devices=[]):
                # the CPU generator only: torch.manual_seed also queues a lazy CUDA seeding with a captured
                # traceback, which cost as much as the augmentations themselves (0.3 ms per image)
                torch.default_generator.manual_seed((self.seed * 1_000_003 + epoch) * 10_000_019 + i)
                out = self.views(img)
        finally:
            torch.set_num_threads(threads)
        out["label"] = torch.tensor(label)
        out["index"] = torch.tensor(i)
        return out



def ignore_stop_signals(worker_id: int = 0) -> None:  # noqa: ARG001  # DataLoader's worker_init_fn signature
    """In a DataLoader worker: leave SIGINT and SIGTERM to the training process (compressor.engine.signals)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)

def collate_views(items: list[dict]) -> dict:
    """Stack the good samples; report the skipped ones under ``_skipped`` (a list of file names)."""
    skipped = [str(it["_skipped"]) for it in items if "_skipped" in it]
    good = [it for it in items if "_skipped" not in it]
    batch = default_collate(good) if good else {}
    batch["_skipped"] = skipped
    return batch


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of a ``(seed, epoch)`` permutation, starting at batch ``start`` (for resume).

    With ``world_size > 1`` each batch is this rank's slice of the global batch of ``batch_size``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start: int = 0, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed, self.epoch, self.start = n, batch_size, seed, epoch, start
        self.drop_last = drop_last
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by {world_size} processes")
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        full = self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)
        return max(0, full - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        per_rank = self.batch_size // self.world_size
        for b in range(self.start, self.start + len(self)):
            batch = order[b * self.batch_size: (b + 1) * self.batch_size]
            yield batch[self.rank * per_rank: (self.rank + 1) * per_rank] if self.world_size > 1 else batch


def batches_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // batch_size)


class RunBatchSampler(Sampler[list[int]]):
    """Every batch of a run from global step ``start`` to ``stop``, epoch after epoch.

    Step ``s`` is batch ``s mod B`` of epoch ``s div B`` (``B`` batches per epoch), exactly as
    ``EpochBatchSampler`` draws it; each item is ``epoch · N + i`` so that the loader's workers, which
    live for the whole run, know which epoch's augmentations to draw (``ViewDataset.__getitem__``).
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0,
                 world_size: int = 1) -> None:
        self.n, self.batch_size, self.seed, self.start, self.stop = n, batch_size, seed, start, stop
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = batches_per_epoch(n, batch_size)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while step < self.stop:
            epoch, first = divmod(step, self.steps_per_epoch)
            last = min(self.steps_per_epoch, first + self.stop - step)
            sampler = EpochBatchSampler(self.n, self.batch_size, self.seed, epoch, first, rank=self.rank,
                                        world_size=self.world_size)
            for batch in itertools.islice(sampler, last - first):
                yield [epoch * self.n + i for i in batch]
            step += last - first


def run_loader(ds: ViewDataset, batch_size: int, start: int, stop: int, workers: int, seed: int,
               rank: int = 0, world_size: int = 1) -> DataLoader:
    """The loader of steps ``start``..``stop`` (drop_last: every step's batch has the same size).

    One loader for the whole run, so worker processes start once rather than every epoch; on CUDA
    its batches come in pinned memory, ready for ``non_blocking`` copies. ``batch_size`` is global;
    under DDP this rank's loader yields its slice of each global batch.
    """
    bs = min(batch_size, len(ds))
    sampler = RunBatchSampler(len(ds), bs, seed, start, stop, rank=rank, world_size=world_size)
    # Its own generator: a DataLoader otherwise draws its workers' base seed from the global RNG,
    # which would make the training RNG depend on where a run was resumed.
    gen = torch.Generator().manual_seed(seed * 7919 + start)
    return DataLoader(ds, batch_sampler=sampler, num_workers=workers, collate_fn=collate_views,
                      pin_memory=torch.cuda.is_available(), generator=gen,
                      prefetch_factor=4 if workers else None,
                      worker_init_fn=ignore_stop_signals if workers else None)  # the trainer handles them
