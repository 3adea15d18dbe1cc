"""MV-MR: the loss against a float64 NumPy recomputation from METHODS.md, and where gradients go."""

import numpy as np
import pytest
import torch

from compressor.engine.preset import resolve_preset
from compressor.engine.recipe import DataInfo, make_config
from compressor.models.students import build_student
from compressor.recipes.mvmr import MVMR, mvmr_loss
from tests.conftest import frozen_teacher


def _dcor_np(x: np.ndarray, y: np.ndarray) -> float:
    """Textbook distance correlation, written out independently of compressor.losses."""

    def centred(m):
        d = np.sqrt(((m[:, None, :] - m[None, :, :]) ** 2).sum(-1))
        return d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean()

    a, b = centred(x), centred(y)
    return float(np.sqrt((a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean())))


def _mvmr_np(z: np.ndarray, z_o: np.ndarray, t: np.ndarray, w_teacher: float = 1.0) -> float:
    mse = ((z_o - z) ** 2).mean()
    var = sum(np.maximum(0, 1 - np.sqrt(v.var(0, ddof=1) + 1e-4)).mean() for v in (z, z_o))
    return float(mse + var + (1 - _dcor_np(z_o, z)) + w_teacher * (1 - _dcor_np(z, t)))


@pytest.mark.parametrize(("b", "d", "dt", "w_teacher"), [(16, 32, 8, 1.0), (24, 8, 512, 1.0), (16, 32, 8, 64.0)])
def test_loss_matches_float64_recomputation(b: int, d: int, dt: int, w_teacher: float) -> None:
    rng = np.random.default_rng(b + d)
    z_o = rng.normal(size=(b, d)) * 0.6
    z = z_o + 0.3 * rng.normal(size=(b, d))
    t = np.tanh(z[:, :4] @ rng.normal(size=(4, dt))) + 0.1 * rng.normal(size=(b, dt))
    cfg = make_config(MVMR, {"w_dcor_teacher": w_teacher})
    ours = mvmr_loss(*(torch.from_numpy(a) for a in (z, z_o, t)), cfg)["loss"]
    # mvmr_loss computes in at least float32; compare the float64 path by keeping float64 inputs
    assert ours.dtype == torch.float64
    assert ours.item() == pytest.approx(_mvmr_np(z, z_o, t, w_teacher), rel=1e-9)


def test_short_runs_weight_the_teacher_term_more_and_the_papers_setting_keeps_one() -> None:
    assert make_config(MVMR).w_dcor_teacher == 1.0  # the paper's weight, declared
    long = make_config(MVMR)
    resolve_preset(long, 5000)
    assert long.w_dcor_teacher == 1.0
    short = make_config(MVMR)
    resolve_preset(short, 156)
    assert (short.preset, short.w_dcor_teacher, short.w_dcor_views) == ("short", 64.0, 1.0)
    given = make_config(MVMR, {"w_dcor_teacher": 2.0})
    resolve_preset(given, 156, {"w_dcor_teacher": 2.0})
    assert (given.preset, given.w_dcor_teacher) == ("short", 2.0)  # a weight is not a rate


def test_teacher_sign_flips_the_teacher_term() -> None:
    rng = np.random.default_rng(0)
    z, z_o, t = (torch.from_numpy(rng.normal(size=(12, 6))) for _ in range(3))
    plus = mvmr_loss(z, z_o, t, make_config(MVMR))["dcor_teacher"]
    minus = mvmr_loss(z, z_o, t, make_config(MVMR, {"teacher_sign": -1.0}))["dcor_teacher"]
    assert (plus - 1).item() == pytest.approx(-(minus - 1).item())


def test_gradients_reach_student_and_projector_not_teacher(teacher) -> None:
    torch.manual_seed(0)
    student = build_student("resnet18", 32)
    cfg = make_config(MVMR, {"projector_dims": [64, 64]})
    recipe = MVMR(cfg, student, teachers=[teacher], data=DataInfo(0, 8))
    recipe.train()
    batch = {"x_o": torch.randn(8, 3, 32, 32), "x_a": torch.randn(8, 3, 32, 32), "t_o": torch.randn(8, 3, 40, 40)}
    recipe.step(batch).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in recipe.projector.parameters())
    grads = [p.grad for p in student.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert not teacher.training


def test_teacher_cache_serves_each_image_once(teacher) -> None:
    student = build_student("resnet10t", 32)
    cfg = make_config(MVMR, {"projector_dims": [16, 16], "cache_teacher": True})
    recipe = MVMR(cfg, student, teachers=[teacher], data=DataInfo(0, 4, num_images=10))
    seen: list[int] = []
    teacher.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    images = torch.randn(10, 3, 40, 40)
    first = recipe.teacher_embeddings({"t_o": images[:4], "index": torch.arange(4)})
    again = recipe.teacher_embeddings({"t_o": images[[2, 3, 4, 5]], "index": torch.tensor([2, 3, 4, 5])})
    assert seen == [4, 2]  # images 2 and 3 came from the cache
    with torch.no_grad():
        direct = teacher(images[:6])
    torch.testing.assert_close(first, direct[:4], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, direct[2:6], rtol=1e-5, atol=1e-5)


def test_default_teacher_sign_pulls_the_student_towards_the_teacher() -> None:
    cfg = make_config(MVMR)
    assert cfg.teacher_sign == 1.0
    rng = np.random.default_rng(1)
    z = torch.from_numpy(rng.normal(size=(32, 8)))
    dependent = mvmr_loss(z, z, torch.tanh(z @ torch.from_numpy(rng.normal(size=(8, 8)))), cfg)["dcor_teacher"]
    independent = mvmr_loss(z, z, torch.from_numpy(rng.normal(size=(32, 8))), cfg)["dcor_teacher"]
    assert dependent < independent  # the loss is lower when the student depends on the teacher


def test_projector_is_sized_from_the_student() -> None:
    from compressor.recipes.mvmr import projector_dims_for

    assert projector_dims_for(2048) == (8192, 8192, 8192)  # the paper's ResNet-50 setting
    assert projector_dims_for(512) == (2048, 2048, 2048)
    recipe = MVMR(make_config(MVMR), build_student("resnet10t", 32), teachers=[frozen_teacher()],
                  data=DataInfo(10, 4))
    widths = [m.out_features for m in recipe.projector if isinstance(m, torch.nn.Linear)]
    assert widths == [2048, 2048, 2048]


def test_views_are_routed_x_o_clean_x_a_augmented_each_with_its_own_batch_statistics() -> None:
    """z_o = g(f(x_o)) and z = g(f(x_a)) in two passes; T sees t_o; swapping x_o and x_a changes the loss."""
    torch.manual_seed(0)
    teacher = frozen_teacher()
    recipe = MVMR(make_config(MVMR, {"projector_dims": [16, 16]}), build_student("resnet10t", 32),
                  teachers=[teacher], data=DataInfo(10, 8))
    recipe.train()
    g = torch.Generator().manual_seed(0)
    batch = {"x_o": torch.randn(8, 3, 32, 32, generator=g), "x_a": torch.randn(8, 3, 32, 32, generator=g) * 2,
             "t_o": torch.randn(8, 3, 40, 40, generator=g)}
    with torch.no_grad():
        z_o = recipe.projector(recipe.student(batch["x_o"]))
        z = recipe.projector(recipe.student(batch["x_a"]))
        expected = mvmr_loss(z, z_o, teacher(batch["t_o"]), recipe.cfg)["loss"]
        got = recipe.step(batch).loss
        swapped = recipe.step({**batch, "x_o": batch["x_a"], "x_a": batch["x_o"]}).loss
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    assert swapped.item() != pytest.approx(got.item(), rel=1e-4)
    views = recipe.views()
    from compressor.data.transforms import eval_transform

    img = torch.randint(0, 255, (3, 50, 44), dtype=torch.uint8)
    from torchvision.transforms.v2.functional import to_pil_image

    pil = to_pil_image(img)
    out = views(pil)
    torch.testing.assert_close(out["x_o"], eval_transform(recipe.student.spec)(pil))  # x_o: not augmented
    torch.testing.assert_close(out["t_o"], eval_transform(teacher.spec)(pil))
