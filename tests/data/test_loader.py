"""The loader: batches depend on (seed, epoch, position) only — not on workers — and resume exactly."""

from __future__ import annotations

import torch

from compressor.data.datasets import SyntheticDataset
from compressor.data.loader import ViewDataset, run_loader
from compressor.data.transforms import Views, augment_transform
from compressor.models.encoder import InputSpec


def _ds() -> ViewDataset:
    return ViewDataset(SyntheticDataset(size=40, image_size=24), Views(x=augment_transform(InputSpec(16))), seed=3)


def _batches(ds: ViewDataset, epoch: int, start: int, workers: int) -> list[dict]:
    out = []
    for b in run_loader(ds, 8, 5 * epoch + start, 5 * (epoch + 1), workers, seed=3):  # 5 batches per epoch
        b.pop("_skipped")
        out.append(b)
    return out


def test_workers_do_not_change_the_data() -> None:
    a, b = _batches(_ds(), 1, 0, 0), _batches(_ds(), 1, 0, 2)
    assert len(a) == len(b) == 5
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["x"], y["x"])


def test_resume_mid_epoch_sees_the_same_batches() -> None:
    full, resumed = _batches(_ds(), 2, 0, 0), _batches(_ds(), 2, 3, 0)
    assert len(resumed) == 2
    for x, y in zip(full[3:], resumed, strict=True):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["x"], y["x"])


def test_epochs_differ_and_augmentation_rng_is_isolated() -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    e0, e1 = _batches(_ds(), 0, 0, 0), _batches(_ds(), 1, 0, 0)
    assert not torch.equal(e0[0]["index"], e1[0]["index"])
    assert torch.equal(state, torch.get_rng_state())  # data loading never draws from the global RNG


def test_one_loader_across_epochs_equals_each_epoch_alone() -> None:
    """Workers live for the whole run (one loader): they must still draw each epoch's own order and augmentations."""
    def run(start: int, stop: int, workers: int) -> list[dict]:
        out = []
        for b in run_loader(_ds(), 8, start, stop, workers, seed=3):
            b.pop("_skipped")
            out.append(b)
        return out

    per_epoch = [b for e in range(3) for b in _batches(_ds(), e, 0, 0)]
    whole = run(0, 15, 2)
    assert len(whole) == 15
    for x, y in zip(per_epoch, whole, strict=True):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["x"], y["x"])
    resumed = run(7, 13, 2)  # resumed mid-epoch 1, stopping mid-epoch 2
    for x, y in zip(per_epoch[7:13], resumed, strict=True):
        assert torch.equal(x["index"], y["index"]) and torch.equal(x["x"], y["x"])
