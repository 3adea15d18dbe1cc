"""CSS: joint labels, corner masks, inference averaging and the loss against a float64 recomputation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from compressor.engine.recipe import DataInfo, make_config
from compressor.errors import CompressorError
from compressor.models.students import build_student
from compressor.recipes.css import CSS, corner_mask, css_loss, ensemble_logits, joint_labels


def test_joint_labels() -> None:
    y = torch.tensor([0, 3, 9])
    assert [t.tolist() for t in joint_labels(y, 3)] == [[0, 9, 27], [1, 10, 28], [2, 11, 29]]


def test_corner_masks_are_exact() -> None:
    expected_zero = {0: (slice(0, 2), slice(0, 3)), 1: (slice(6, 8), slice(9, 12)),
                     2: (slice(6, 8), slice(0, 3)), 3: (slice(0, 2), slice(9, 12))}
    for i, (rows, cols) in expected_zero.items():
        ref = np.ones((8, 12))
        ref[rows, cols] = 0
        m = corner_mask(8, 12, i)
        assert m.shape == (1, 1, 8, 12)
        np.testing.assert_array_equal(m[0, 0].numpy(), ref)
    assert corner_mask(3, 3, 0).all()  # below 4 px the corner has no pixels


def test_inference_averages_logit_c_times_n_plus_i() -> None:
    n, c, b = 3, 4, 2
    # z^i[:, j] = 100·i + j + 1000·batch_row: the picked index and branch are readable off the value
    branch = [torch.arange(c * n, dtype=torch.float64).expand(b, -1) + 100 * i + 1000 * torch.arange(b)[:, None]
              for i in range(n)]
    out = ensemble_logits(branch)
    expected = [[np.mean([100 * i + cls * n + i + 1000 * r for i in range(n)]) for cls in range(c)] for r in range(b)]
    np.testing.assert_allclose(out.numpy(), expected)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def _css_np(za: list, zb: list, y: np.ndarray, t: float, w: float = 1.0) -> dict[str, float]:
    """METHODS.md, written out: CE on joint labels, KL(p_b^i ‖ p_a^i) over all C·N joint logits of branch i."""
    n, rows = len(za), np.arange(len(y))
    ce = {k: np.mean([-_log_softmax(z)[rows, y * n + i] for i, z in enumerate(zs)], axis=1).mean()
          for k, zs in (("a", za), ("b", zb))}

    def kl(zs: list, zt: list) -> float:
        out = []
        for s, q in zip(zs, zt, strict=True):
            ls, lq = _log_softmax(s / t), _log_softmax(q / t)
            out.append((np.exp(lq) * (lq - ls)).sum(1).mean())
        return float(np.mean(out))

    la = ce["a"] + w * ce["a"] / ce["b"] * t * t * kl(za, zb)
    lb = ce["b"] + w * ce["b"] / ce["a"] * t * t * kl(zb, za)
    return {"ce_a": ce["a"], "ce_b": ce["b"], "loss_a": la, "loss_b": lb, "loss": la + lb}


@pytest.mark.parametrize(("n", "classes", "b", "w"), [(3, 5, 6, 1.0), (2, 10, 4, 1.0), (3, 5, 6, 0.0), (3, 5, 6, 0.3)])
def test_loss_matches_float64_recomputation(n: int, classes: int, b: int, w: float) -> None:
    rng = np.random.default_rng(n * classes)
    za = [rng.normal(size=(b, classes * n)) * 2 for _ in range(n)]
    zb = [rng.normal(size=(b, classes * n)) * 2 for _ in range(n)]
    y = rng.integers(0, classes, size=b)
    ours = css_loss([torch.from_numpy(z) for z in za], [torch.from_numpy(z) for z in zb], torch.from_numpy(y), 3.0, w)
    ref = _css_np(za, zb, y, 3.0, w)  # w = 0: each network's loss is its own cross-entropy
    for k, v in ref.items():
        assert ours[k].item() == pytest.approx(v, rel=1e-10), k


def test_kl_sees_the_peers_mass_on_other_transformation_labels() -> None:
    """Moving the peer's logit of another branch's joint label changes the KL (the authors' whole-output KL)."""
    n, c = 3, 4
    za = [torch.zeros(2, c * n, dtype=torch.float64) for _ in range(n)]
    zb = [torch.zeros(2, c * n, dtype=torch.float64) for _ in range(n)]
    y = torch.tensor([0, 1])
    before = css_loss(za, zb, y, 3.0)["kl_a"].item()
    zb[0][:, 1] = 5.0  # index 1 = class 0 of branch 1: not one of branch 0's own class logits (c·N + 0)
    after = css_loss(za, zb, y, 3.0)["kl_a"].item()
    assert before == pytest.approx(0.0, abs=1e-12) and after > 1e-3


def test_each_branch_receives_the_trunk_features_with_its_corner_zeroed() -> None:
    recipe = _recipe()
    net = recipe.net_a
    seen: dict[int, torch.Tensor] = {}
    first = net.branch_names[0]
    hooks = [getattr(net.encoder.backbone, first).register_forward_pre_hook(
        lambda _m, args: seen.__setitem__(0, args[0].detach().clone()))]
    hooks += [net.branches[i - 1][first].register_forward_pre_hook(
        lambda _m, args, i=i: seen.__setitem__(i, args[0].detach().clone())) for i in range(1, net.n)]
    recipe.eval()
    with torch.no_grad():
        net(torch.rand(2, 3, 32, 32) + 0.5)
    for h in hooks:
        h.remove()
    assert sorted(seen) == list(range(net.n))
    h, w = seen[0].shape[-2:]
    sh, sw = h // 4, w // 4
    assert sh > 0, "the test needs a trunk map of at least 4 px"
    corners = {0: (slice(0, sh), slice(0, sw)), 1: (slice(h - sh, h), slice(w - sw, w)),
               2: (slice(h - sh, h), slice(0, sw)), 3: (slice(0, sh), slice(w - sw, w))}
    for i, x in seen.items():
        rows, cols = corners[i]
        assert torch.all(x[:, :, rows, cols] == 0), f"branch {i}: its corner is not masked"
        outside = torch.ones(h, w, dtype=torch.bool)
        outside[rows, cols] = False
        assert x[:, :, outside].abs().sum() > 0  # the rest of the map is passed through


def test_with_detach_ratios_and_targets_carry_no_gradient() -> None:
    za = [torch.randn(4, 6, requires_grad=True) for _ in range(2)]
    zb = [torch.randn(4, 6, requires_grad=True) for _ in range(2)]
    out = css_loss(za, zb, torch.tensor([0, 1, 2, 0]), 3.0, detach=True)
    assert not out["alpha_1"].requires_grad
    out["loss_a"].backward()
    assert all(z.grad is None for z in zb)  # L_a moves network a only


def _authors_loss(out_t: torch.Tensor, out_s: torch.Tensor, targets: torch.Tensor, t: float) -> torch.Tensor:
    """PumpkinsLemon/CSS ``train.py``'s loss, transcribed line by line: outputs (B, C·N, N), nothing detached."""
    n = out_t.shape[-1]
    ce_t = sum(F.cross_entropy(out_t[:, :, i], targets * n + i) / n for i in range(n))
    ce_s = sum(F.cross_entropy(out_s[:, :, i], targets * n + i) / n for i in range(n))
    t2s = sum(F.kl_div(F.log_softmax(out_t[:, :, i] / t, 1), F.softmax(out_s[:, :, i] / t, 1),
                       reduction="batchmean") / n for i in range(n))
    s2t = sum(F.kl_div(F.log_softmax(out_s[:, :, i] / t, 1), F.softmax(out_t[:, :, i] / t, 1),
                       reduction="batchmean") / n for i in range(n))
    loss_t = ce_t + (ce_t / ce_s) * t2s * t**2
    loss_s = ce_s + (ce_s / ce_t) * s2t * t**2
    return loss_s + loss_t


def test_default_gradients_are_the_authors_code() -> None:
    """By default every term reaches both networks, as in the authors' train.py: same loss, same gradients."""
    n, c, b = 3, 5, 6
    g = torch.Generator().manual_seed(0)
    za = [(torch.randn(b, c * n, generator=g, dtype=torch.float64) * 2).requires_grad_() for _ in range(n)]
    zb = [(torch.randn(b, c * n, generator=g, dtype=torch.float64) * 2).requires_grad_() for _ in range(n)]
    y = torch.randint(0, c, (b,), generator=g)
    ours = css_loss(za, zb, y, 3.0)["loss"]
    ga = torch.autograd.grad(ours, za + zb)
    ref = _authors_loss(torch.stack(za, -1), torch.stack(zb, -1), y, 3.0)
    gr = torch.autograd.grad(ref, za + zb)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-12)
    for mine, theirs in zip(ga, gr, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)
    detached = torch.autograd.grad(css_loss(za, zb, y, 3.0, detach=True)["loss"], za + zb)
    assert max((d - m).abs().max().item() for d, m in zip(detached, ga, strict=True)) > 1e-4  # a real difference


def _recipe(**over) -> CSS:
    torch.manual_seed(0)
    cfg = make_config(CSS, over)
    return CSS(cfg, build_student("resnet10t", 32, stem="small"), peer=build_student("resnet10t", 32, stem="small"),
               data=DataInfo(4, 4))


def test_step_and_saved_student_is_trunk_plus_first_branch() -> None:
    recipe = _recipe()
    recipe.train()
    batch = {"x": torch.randn(4, 3, 32, 32), "p": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}
    out = recipe.step(batch)
    assert torch.isfinite(out.loss) and {"train_acc_a", "alpha_1"} <= set(out.logs)
    logits = recipe.net_a(batch["x"])
    assert len(logits) == 3 and logits[0].shape == (4, 4 * 3)
    assert len(recipe.param_groups()) == 2
    # Branch 0 is the encoder's own last stages: the saved embedding is that branch without a mask.
    recipe.eval()
    net, x = recipe.net_a, batch["x"]
    with torch.no_grad():
        feats = x
        for k in net.trunk_names:
            feats = getattr(net.encoder.backbone, k)(feats)
        torch.testing.assert_close(net._branch(0, feats), recipe.saved_models()["student"](x))
    assert recipe.saved_models()["student"] is recipe.student


def test_kl_weight_reaches_the_step() -> None:
    """``--set kl_weight=0``: the step's loss is the two cross-entropies alone (the peer-free ablation)."""
    batch = {"x": torch.randn(4, 3, 32, 32), "p": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 2, 3])}
    for w in (0.0, 1.0):
        out = _recipe(kl_weight=w).train().step(batch)
        ce = out.logs["ce_a"] + out.logs["ce_b"]
        kl = out.logs["alpha_1"] * 9 * out.logs["kl_a"] + out.logs["alpha_2"] * 9 * out.logs["kl_b"]
        torch.testing.assert_close(out.loss.detach(), ce + w * kl)
        assert w == 0 or float(kl) > 0


def test_non_resnet_models_fail_clearly() -> None:
    cfg = make_config(CSS)
    with pytest.raises(CompressorError, match="timm ResNets"):
        CSS(cfg, build_student("vit_tiny_patch16_224", 32), peer=build_student("resnet10t", 32),
            data=DataInfo(4, 4))
