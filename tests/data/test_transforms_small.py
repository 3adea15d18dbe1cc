"""Augmentation below the small-input threshold: no blur (the authors' small-image settings)."""

from __future__ import annotations

from torchvision.transforms import v2

from compressor.data.transforms import MVMR_AUG, augment_transform
from compressor.models.encoder import InputSpec
from compressor.models.stems import SMALL_INPUT_BELOW


def _has_blur(t: v2.Compose) -> bool:
    return any(isinstance(op, v2.RandomApply) and any(isinstance(x, v2.GaussianBlur) for x in op.transforms)
               for op in t.transforms)


def test_blur_only_at_large_sizes() -> None:
    assert not _has_blur(augment_transform(InputSpec(32), MVMR_AUG))
    assert not _has_blur(augment_transform(InputSpec(SMALL_INPUT_BELOW - 1), MVMR_AUG))
    assert _has_blur(augment_transform(InputSpec(SMALL_INPUT_BELOW), MVMR_AUG))
