"""MOMA: exact mask ratio, the ViT path drops tokens (FLOPs), the CNN path zeroes patches, the loss
against a float64 NumPy recomputation from METHODS.md, and one step with two different teachers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from compressor.data.datasets import SyntheticDataset
from compressor.data.loader import ViewDataset, collate_views
from compressor.engine.recipe import DataInfo, make_config
from compressor.errors import CompressorError
from compressor.models.students import build_student
from compressor.recipes.moma import MOMA, moma_loss, random_patch_mask, vit_visible_forward
from tests.conftest import frozen_teacher


def _recipe(student_arch: str, size: int, teachers, **overrides) -> MOMA:
    torch.manual_seed(0)
    student = build_student(student_arch, size)
    cfg = make_config(MOMA, {"hidden_dim": 32, **overrides})
    return MOMA(cfg, student, teachers=teachers, data=DataInfo(0, 4))


@pytest.mark.parametrize(("n", "ratio", "masked"), [(4, 0.75, 3), (16, 0.75, 12), (196, 0.75, 147),
                                                     (49, 0.9, 44), (10, 0.0, 0), (3, 0.99, 2)])
def test_mask_ratio_is_exact(n: int, ratio: float, masked: int) -> None:
    mask = random_patch_mask(64, n, ratio)
    assert mask.shape == (64, n) and mask.dtype == torch.bool
    assert (mask.sum(1) == masked).all()
    if 0 < masked < n:  # drawn per image: not the same patches everywhere
        assert len({tuple(row.tolist()) for row in mask}) > 1


def test_vit_path_drops_tokens_and_saves_flops(teacher) -> None:
    recipe = _recipe("vit_tiny_patch16_224", 64, [teacher])  # 4×4 = 16 patches, 12 masked
    vit = recipe.student.backbone
    seen: list[torch.Size] = []
    hook = vit.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    x = torch.randn(2, 3, 64, 64)
    recipe.eval()
    with FlopCounterMode(display=False) as full:
        full_out = recipe.student(x)
    with FlopCounterMode(display=False) as masked:
        out = recipe.masked_embedding(x)
    hook.remove()
    assert seen == [torch.Size([2, 17, 192]), torch.Size([2, 1 + 4, 192])]
    assert out.shape == full_out.shape == (2, recipe.student.embed_dim)
    ratio = masked.get_total_flops() / full.get_total_flops()
    assert 0.25 <= ratio <= 0.35, ratio  # ≈ (1 − 0.75) + the CLS token and the full patch embedding


def test_default_mask_ratio_follows_the_student(teacher) -> None:
    assert _recipe("vit_tiny_patch16_224", 32, [teacher]).cfg.mask_ratio == 0.75  # drops tokens: MAE's
    assert _recipe("resnet10t", 32, [teacher]).cfg.mask_ratio == 0.75  # sees zeros: the declared (long-run) ratio
    assert _recipe("resnet10t", 32, [teacher], zero_fill_mask_ratio=0.5).cfg.mask_ratio == 0.5  # the short-run one
    assert _recipe("resnet10t", 32, [teacher], mask_ratio=0.75).cfg.mask_ratio == 0.75  # given: kept
    with pytest.raises(CompressorError, match=r"mask_ratio must be in \[0, 1\) or -1"):
        _recipe("resnet10t", 32, [teacher], mask_ratio=-0.5)


def test_vit_visible_forward_with_nothing_masked_is_the_plain_forward() -> None:
    torch.manual_seed(0)
    vit = build_student("vit_tiny_patch16_224", 32).backbone.eval()
    x = torch.randn(2, 3, 32, 32)
    out = vit_visible_forward(vit, x, torch.zeros(2, 4, dtype=torch.bool))  # type: ignore[arg-type]
    assert torch.allclose(out, vit(x), atol=1e-5)


@pytest.mark.parametrize(("size", "patch"), [(32, 16), (40, 8), (40, 16)])
def test_cnn_path_zeroes_exactly_the_masked_patches(teacher, size: int, patch: int) -> None:
    recipe = _recipe("resnet10t", size, [teacher], patch_size=patch)
    seen: list[torch.Tensor] = []
    recipe.student.backbone.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    x = torch.rand(3, 3, size, size) + 1.0  # no zero pixel anywhere in the input
    recipe.masked_embedding(x)
    *unmasked, got = seen  # in training, a no-grad pass over the unmasked images first (BatchNorm statistics)
    assert len(unmasked) == 1 and torch.equal(unmasked[0], x)
    g = -(-size // patch)
    n_masked = round(0.75 * g * g)  # the zero-filled students' declared ratio (short runs: 0.5)
    for b in range(3):
        zeroed = 0
        for i in range(g):
            for j in range(g):
                cell = (slice(None), slice(i * patch, (i + 1) * patch), slice(j * patch, (j + 1) * patch))
                if torch.equal(got[b][cell], torch.zeros_like(got[b][cell])):
                    zeroed += 1
                else:
                    assert torch.equal(got[b][cell], x[b][cell])  # untouched, not partly masked
        assert zeroed == n_masked


def _moma_np(preds: list[np.ndarray], targets: list[np.ndarray], weights: list[float]) -> float:
    """METHODS.md: Σ_k w_k (2 − 2 cos(norm(p_k), norm(LN(t_k)))), LN parameter-free with eps 1e-6."""
    total = 0.0
    for p, t, w in zip(preds, targets, weights, strict=True):
        ln = (t - t.mean(1, keepdims=True)) / np.sqrt(t.var(1, keepdims=True) + 1e-6)
        tn = ln / np.linalg.norm(ln, axis=1, keepdims=True)
        pn = p / np.linalg.norm(p, axis=1, keepdims=True)
        total += w * (2 - 2 * (pn * tn).sum(1)).mean()
    return float(total)


@pytest.mark.parametrize("weights", [[1.0, 1.0], [0.3, 2.0]])
def test_loss_matches_float64_recomputation(weights: list[float]) -> None:
    rng = np.random.default_rng(3)
    preds = [rng.normal(size=(8, 12)), rng.normal(size=(8, 5))]
    targets = [p * 2 + 0.5 * rng.normal(size=p.shape) + 3.0 for p in preds]
    ours = moma_loss([torch.from_numpy(p) for p in preds], [torch.from_numpy(t) for t in targets], weights)
    assert ours["loss"].dtype == torch.float64
    assert ours["loss"].item() == pytest.approx(_moma_np(preds, targets, weights), rel=1e-10)
    assert ours["align_1"].item() == pytest.approx(_moma_np(preds[1:], targets[1:], [1.0]), rel=1e-10)


def test_one_step_with_two_different_teachers() -> None:
    cnn = frozen_teacher("resnet10t", 40)  # 512-d at 40 px
    vit = frozen_teacher("vit_tiny_patch16_224", 48)  # 192-d at 48 px
    recipe = _recipe("vit_tiny_patch16_224", 32, [cnn, vit], teacher_loss_weights=[1.0, 0.5])
    assert [p[-1].out_features for p in recipe.projectors] == [512, 192]
    ds = ViewDataset(SyntheticDataset(size=4, image_size=56), recipe.views(), seed=0)
    batch = collate_views([ds[i] for i in range(4)])
    batch.pop("_skipped")
    assert batch["x"].shape[-1] == 32 and batch["t0"].shape[-1] == 40 and batch["t1"].shape[-1] == 48
    recipe.train()
    out = recipe.step(batch)
    assert torch.isfinite(out.loss) and set(out.logs) == {"align_0", "align_1"}
    assert out.loss.item() == pytest.approx(float(out.logs["align_0"] + 0.5 * out.logs["align_1"]), rel=1e-5)
    out.loss.backward()
    for proj in recipe.projectors:
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in proj.parameters())
    assert sum(p.grad.abs().sum() for p in recipe.student.parameters() if p.grad is not None) > 0
    assert all(p.grad is None for t in recipe.teachers for p in t.parameters())


def test_teacher_loss_weights_must_match_the_teachers(teacher) -> None:
    from compressor.errors import CompressorError

    with pytest.raises(CompressorError, match="one per teacher"):
        _recipe("resnet10t", 32, [teacher], teacher_loss_weights=[1.0, 1.0])


def test_patch_size_keeps_the_14x14_grid_of_224px() -> None:
    from compressor.recipes.moma import mask_patch_size

    assert mask_patch_size(224) == 16 and mask_patch_size(64) == 5 and mask_patch_size(32) == 2
    assert _recipe("resnet10t", 32, [frozen_teacher()]).patch_size == 2


def test_cnn_batchnorm_running_statistics_come_from_unmasked_images() -> None:
    teacher = frozen_teacher()
    recipe = _recipe("resnet10t", 32, [teacher])
    reference = build_student("resnet10t", 32)
    reference.load_state_dict(recipe.student.state_dict())
    reference.train()
    batch = {"x": torch.randn(4, 3, 32, 32) + 0.5, "t0": torch.randn(4, 3, 40, 40)}
    recipe.train()
    recipe.step(batch)
    with torch.no_grad():
        reference(batch["x"])  # one train-mode pass over the unmasked images
    ours = {k: v for k, v in recipe.student.state_dict().items() if "running_" in k or "num_batches" in k}
    ref = {k: v for k, v in reference.state_dict().items() if k in ours}
    assert ours and all(torch.allclose(ours[k].float(), ref[k].float(), atol=1e-6) for k in ours)
    # the masked pass still normalises with batch statistics and trains: the loss reaches the student
    recipe.step(batch).loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in recipe.student.parameters())
