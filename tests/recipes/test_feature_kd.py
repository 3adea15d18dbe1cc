"""feature-kd: the loss against a float64 NumPy recomputation, and which view reaches which model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from compressor.engine.recipe import DataInfo, make_config
from compressor.models.students import build_student
from compressor.recipes.feature_kd import FeatureKD, cosine_regression


def _cos_reg_np(s: np.ndarray, t: np.ndarray) -> float:
    s = s / np.linalg.norm(s, axis=1, keepdims=True)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    return float((2 - 2 * (s * t).sum(1)).mean())


@pytest.mark.parametrize(("b", "d"), [(5, 7), (16, 512)])
def test_loss_matches_float64_recomputation(b: int, d: int) -> None:
    rng = np.random.default_rng(b * d)
    s, t = rng.normal(size=(b, d)), rng.normal(size=(b, d)) * 3
    ours = cosine_regression(torch.from_numpy(s), torch.from_numpy(t))
    assert ours.item() == pytest.approx(_cos_reg_np(s, t), rel=1e-6)  # computed in float32


def test_teacher_sees_its_view_and_student_its_own(teacher) -> None:
    torch.manual_seed(0)
    recipe = FeatureKD(make_config(FeatureKD, {"hidden_dim": 32}), build_student("resnet10t", 32),
                       teachers=[teacher], data=DataInfo(10, 4))
    recipe.train()
    batch = {"x": torch.randn(4, 3, 32, 32), "t": torch.randn(4, 3, 40, 40)}
    with torch.no_grad():
        ref = cosine_regression(recipe.projector(recipe.student(batch["x"])), teacher(batch["t"]))
        swapped = {"x": batch["x"], "t": torch.randn(4, 3, 40, 40)}
        other = recipe.step(swapped).loss
        assert recipe.step(batch).loss.item() == pytest.approx(ref.item(), rel=1e-5)
        assert other.item() != pytest.approx(ref.item(), rel=1e-3)  # the teacher term depends on batch["t"]


def test_views_show_one_augmentation_to_both_models(teacher) -> None:
    recipe = FeatureKD(make_config(FeatureKD, {"hidden_dim": 32}), build_student("resnet10t", 40),
                       teachers=[teacher], data=DataInfo(10, 4))
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 50, 3), dtype=np.uint8))
    torch.manual_seed(3)
    out = recipe.views()(img)
    torch.testing.assert_close(out["x"], out["t"])  # same size and normalisation here: the same image
