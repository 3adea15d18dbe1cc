"""From TrainConfig to components: the batch size is clamped once and the lr scaling sees the clamped value."""

from __future__ import annotations

import pytest

from compressor.engine.config import TrainConfig
from compressor.engine.setup import build_components


def test_lr_scaling_uses_the_batch_size_actually_trained_with() -> None:
    cfg = TrainConfig(student="resnet10t", recipe="simclr", data="synthetic", max_images=8, batch_size=64,
                      image_size=24, device="cpu", recipe_config={"scale_lr_by_batch": True, "lr": 0.5})
    c = build_components(cfg)
    assert c.batch_size == 8 == c.recipe.data.batch_size
    (opt,) = c.recipe.optimizers()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 8 / 256)
