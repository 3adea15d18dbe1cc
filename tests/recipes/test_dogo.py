"""DoGo: the losses against a float64 NumPy recomputation from METHODS.md, the KL direction, the
stop-gradient between the two models, two optimisers and four independent views."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from compressor.data.datasets import SyntheticDataset
from compressor.data.loader import ViewDataset, collate_views
from compressor.engine.recipe import DataInfo, make_config
from compressor.models.students import build_student
from compressor.recipes.dogo import DoGo, dogo_losses, kl_mean


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _log_softmax(a: np.ndarray) -> np.ndarray:
    a = a - a.max(1, keepdims=True)
    return a - np.log(np.exp(a).sum(1, keepdims=True))


def _nt_xent_np(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    z = _unit(np.concatenate([a, b]))
    n = a.shape[0]
    sim = z @ z.T / tau
    np.fill_diagonal(sim, -np.inf)
    pos = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return float(-_log_softmax(sim)[np.arange(2 * n), pos].mean())


def _dogo_np(z1, z2, w1: float, w2: float) -> dict[str, float]:
    """METHODS.md: P^m = softmax_rows(cos(z_x, z_y)/0.1); L_1 = SSL_1 + w_1 KL(P^2 ‖ P^1) over B² entries."""
    p1 = np.exp(_log_softmax(_unit(z1[0]) @ _unit(z1[1]).T / 0.1))
    p2 = np.exp(_log_softmax(_unit(z2[0]) @ _unit(z2[1]).T / 0.1))
    kl_21 = float((p2 * (np.log(p2) - np.log(p1))).mean())  # KL(P2 ‖ P1)
    kl_12 = float((p1 * (np.log(p1) - np.log(p2))).mean())
    l1 = _nt_xent_np(*z1, 0.5) + w1 * kl_21
    l2 = _nt_xent_np(*z2, 0.5) + w2 * kl_12
    return {"kl_1": kl_21, "kl_2": kl_12, "loss_1": l1, "loss_2": l2, "loss": l1 + l2}


@pytest.mark.parametrize(("w1", "w2"), [(1.0, 1.0), (100.0, 1.0)])
def test_losses_match_float64_recomputation(w1: float, w2: float) -> None:
    rng = np.random.default_rng(5)
    b, d = 10, 16
    base = rng.normal(size=(b, d))
    z1 = (base + 0.3 * rng.normal(size=(b, d)), base + 0.3 * rng.normal(size=(b, d)))
    z2 = (base + 0.8 * rng.normal(size=(b, d)), rng.normal(size=(b, d)))
    cfg = make_config(DoGo, {"w_1": w1, "w_2": w2})
    ours = dogo_losses(tuple(map(torch.from_numpy, z1)), tuple(map(torch.from_numpy, z2)), cfg)  # type: ignore[arg-type]
    expected = _dogo_np(z1, z2, w1, w2)
    for key, value in expected.items():
        # the KL terms are computed in float64; nt_xent (shared with simclr) always computes in float32
        rel = 1e-10 if key.startswith("kl") else 1e-6
        assert ours[key].item() == pytest.approx(value, rel=rel), key


def test_kl_direction() -> None:
    """``kl_mean(log Q, log P)`` is KL(Q ‖ P) = mean Q (log Q − log P), not the reverse."""
    q = torch.tensor([[0.98, 0.01, 0.01], [0.9, 0.05, 0.05], [0.02, 0.02, 0.96]], dtype=torch.float64)
    p = torch.full((3, 3), 1 / 3, dtype=torch.float64)
    forward = (q * (q.log() - p.log())).sum() / 9
    reverse = (p * (p.log() - q.log())).sum() / 9
    assert abs(forward - reverse) > 0.05
    assert kl_mean(q.log(), p.log()).item() == pytest.approx(forward.item(), rel=1e-12)


def _pair() -> DoGo:
    torch.manual_seed(0)
    student, peer = build_student("resnet10t", 32), build_student("resnet18", 40)
    cfg = make_config(DoGo, {"projector_dims": [64, 32]})
    return DoGo(cfg, student, peer=peer, data=DataInfo(0, 6))


def _batch(recipe: DoGo) -> dict[str, torch.Tensor]:
    ds = ViewDataset(SyntheticDataset(size=6, image_size=48), recipe.views(), seed=0)
    batch = collate_views([ds[i] for i in range(6)])
    batch.pop("_skipped")
    return batch


def _grad_norm(*mods: torch.nn.Module) -> float:
    return float(sum(p.grad.abs().sum() for m in mods for p in m.parameters() if p.grad is not None))


@pytest.mark.parametrize("term", ["kl_1", "kl_2"])
def test_kl_term_reaches_only_its_own_model(term: str) -> None:
    recipe = _pair()
    recipe.train()
    batch = _batch(recipe)
    z1 = recipe._project(recipe.student, recipe.head, batch["x1"], batch["y1"])
    z2 = recipe._project(recipe.peer, recipe.peer_head, batch["x2"], batch["y2"])
    terms = dogo_losses(z1, z2, recipe.cfg)  # type: ignore[arg-type]
    terms[term].backward()
    own, other = ((recipe.student, recipe.head), (recipe.peer, recipe.peer_head))[:: 1 if term == "kl_1" else -1]
    assert _grad_norm(*own) > 0
    assert _grad_norm(*other) == 0  # no gradient through the peer's distribution


def test_step_views_and_two_optimisers() -> None:
    recipe = _pair()
    batch = _batch(recipe)
    assert batch["x1"].shape[-1] == batch["y1"].shape[-1] == 32 and batch["x2"].shape[-1] == 40
    assert not torch.equal(batch["x1"], batch["y1"])  # each view its own draw
    opts = recipe.optimizers()
    assert len(opts) == 2 and all(isinstance(o, torch.optim.Adam) for o in opts)
    owned = [{id(p) for g in o.param_groups for p in g["params"]} for o in opts]
    assert not owned[0] & owned[1]
    assert owned[0] == {id(p) for m in (recipe.student, recipe.head) for p in m.parameters()}
    assert owned[1] == {id(p) for m in (recipe.peer, recipe.peer_head) for p in m.parameters()}
    recipe.train()
    out = recipe.step(batch)
    assert set(out.logs) == {"ssl_1", "ssl_2", "kl_1", "kl_2", "kd_share_1", "kd_share_2"}
    out.loss.backward()
    assert _grad_norm(recipe.student) > 0 and _grad_norm(recipe.peer) > 0
    assert set(recipe.saved_models()) == {"student", "peer"}


def test_default_weights_make_the_kd_term_a_visible_share_of_the_students_loss() -> None:
    """With the authors' w_1 = 100 the B²-mean KL matters; with w_1 = 1 it would be ~1/B of a KL (negligible)."""
    assert make_config(DoGo).w_1 == 100.0 and make_config(DoGo).w_2 == 1.0
    recipe = _pair()
    recipe.train()
    batch = _batch(recipe)
    with torch.no_grad():
        z1 = recipe._project(recipe.student, recipe.head, batch["x1"], batch["y1"])
        z2 = recipe._project(recipe.peer, recipe.peer_head, batch["x2"], batch["y2"])
    terms = dogo_losses(z1, z2, make_config(DoGo))
    assert float(100.0 * terms["kl_1"] / terms["loss_1"]) > 0.1
    out = recipe.step(batch)
    assert float(out.logs["kd_share_1"]) == pytest.approx(float(100.0 * terms["kl_1"] / terms["loss_1"]), rel=1e-5)


@pytest.mark.parametrize("shared_bn", [False, True])
def test_each_view_has_its_own_batchnorm_statistics_as_the_authors(shared_bn: bool) -> None:
    """NeurAI-Lab/DoGo's ``SimCLR.forward`` runs ``f(x)`` and ``f(y)`` apart: in train mode the projection of
    ``x`` must not depend on ``y`` (BN statistics per view). ``shared_bn=True`` is one forward over both."""
    recipe = _pair()
    recipe.cfg.shared_bn = shared_bn
    recipe.train()
    batch = _batch(recipe)
    with torch.no_grad():
        zx, _ = recipe._project(recipe.student, recipe.head, batch["x1"], batch["y1"])
        zx_other_y, _ = recipe._project(recipe.student, recipe.head, batch["x1"], batch["y1"].flip(0) * 0.5)
        alone = recipe.head(recipe.student(batch["x1"]))
    assert torch.allclose(zx, zx_other_y) is not shared_bn
    assert torch.allclose(zx, alone) is not shared_bn


@pytest.mark.parametrize(("student", "peer", "warned"), [("resnet18", "resnet10t", True),
                                                         ("resnet10t", "resnet18", False),
                                                         ("resnet10t", "resnet10t", True)])
def test_a_peer_no_larger_than_the_student_is_warned(student: str, peer: str, warned: bool, caplog) -> None:
    """DoGo's w_1 = 100 pulls the student toward the peer: a randomly initialised peer that is not larger is named."""
    s, p = build_student(student, 32), build_student(peer, 32)
    n_s, n_p = (sum(x.numel() for x in m.parameters()) for m in (s, p))  # independent of the recipe's count
    assert (n_p <= n_s) == warned
    with caplog.at_level(logging.WARNING, logger="compressor"):
        DoGo(make_config(DoGo, {"projector_dims": [16, 8]}), s, peer=p, data=DataInfo(0, 6))
    msgs = [r.getMessage() for r in caplog.records if "dogo pulls the student" in r.getMessage()]
    assert len(msgs) == int(warned)
    if warned:
        assert f"--peer {peer}" in msgs[0] and "swap --student and --peer" in msgs[0] and "--peer-weights" in msgs[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="compressor"):  # equal weights: nothing one-sided to warn of
        DoGo(make_config(DoGo, {"projector_dims": [16, 8], "w_1": 1.0}), s, peer=p, data=DataInfo(0, 6))
        object.__setattr__(p, "weights_info", {"weights": "runs/peer"})  # a trained start: may be stronger
        DoGo(make_config(DoGo, {"projector_dims": [16, 8]}), s, peer=p, data=DataInfo(0, 6))
    assert not [r for r in caplog.records if "dogo pulls the student" in r.getMessage()]
