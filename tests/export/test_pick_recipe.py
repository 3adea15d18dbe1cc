"""`compress pick` distils with the same default recipe as `compress distill` (one declaration: TrainConfig.recipe)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from compressor.engine.config import TrainConfig
from compressor.export.pick import Candidate, PickOptions, _quality, default_recipe
from compressor.rundir import RunDir

DISTILL_DEFAULT = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "recipe")


def test_pick_with_a_teacher_distils_with_distills_default_recipe(tmp_path: Path) -> None:
    opts = PickOptions(budget_ms=1e4, image_size=32, data="synthetic", teacher="timm:resnet10t",
                       teacher_weights="random", steps=1, batch_size=4, max_train=32, max_val=16)
    cand = Candidate("resnet10t", p50_ms=1.0, fits=True)
    _quality(cand, tmp_path / "run", opts)
    assert cand.knn_top1 is not None, cand.notes
    assert RunDir(tmp_path / "run").read_config()["recipe"] == DISTILL_DEFAULT
    assert default_recipe(None) == "simclr"  # no teacher to distil from

