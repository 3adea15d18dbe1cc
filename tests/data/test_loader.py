"""The loader: batches depend on (seed, epoch, position) only — not on workers — and resume exactly."""

from __future__ import annotations

import torch

from compressor.data.datasets import SyntheticDataset
from compressor.data.loader import ViewDataset, epoch_loader
from compressor.data.transforms import Views, augment_transform
from compressor.models.encoder import InputSpec


def _ds() -> ViewDataset:
    return ViewDataset(SyntheticDataset(size=40, image_size=24), Views(x=augment_transform(InputSpec(16))), seed=3)


def _batches(ds: ViewDataset, epoch: int, start: int, workers: int) -> list[dict]:
    out = []
    for b in epoch_loader(ds, 8, epoch, start, workers, seed=3):
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
