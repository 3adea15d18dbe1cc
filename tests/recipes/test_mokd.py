"""MOKD: the four loss terms against a float64 NumPy recomputation from METHODS.md, the EMA update,
the detached search query, the centring update, the schedules and the CNN/ViT plumbing."""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pytest
import torch

from compressor.engine.preset import resolve_preset
from compressor.engine.recipe import DataInfo, make_config
from compressor.errors import CompressorError
from compressor.losses.dino import DINOLoss, search_loss
from compressor.models.students import build_student
from compressor.recipes.mokd import MOKD, local_crop_size, teacher_temperature

SMALL = {"out_dim": 16, "head_hidden_dim": 32, "head_bottleneck_dim": 16, "n_local_crops": 2}


@functools.cache
def _built(student: str, peer: str, over: tuple) -> MOKD:
    torch.manual_seed(0)
    cfg = make_config(MOKD, {**SMALL, **dict(over)})
    return MOKD(cfg, build_student(student, 32), peer=build_student(peer, 32), data=DataInfo(10, 4))


def _recipe(student: str = "resnet10t", peer: str = "vit_tiny_patch16_224", **over) -> MOKD:
    """A fresh copy of a recipe built once per configuration (timm's ViT init is slow on a busy CPU)."""
    return copy.deepcopy(_built(student, peer, tuple(sorted(over.items()))))


def _batch(n_local: int = 2, b: int = 4, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    out = {f"g{i}": torch.randn(b, 3, 32, 32, generator=g, dtype=dtype) for i in range(2)}
    out.update({f"l{i}": torch.randn(b, 3, 16, 16, generator=g, dtype=dtype) for i in range(n_local)})
    return out


# -- an independent float64 reading of METHODS.md ---------------------------------------------------
def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _dino_np(student: list, teacher: list, center: np.ndarray, tt: float, ts: float = 0.1) -> float:
    """Mean over (teacher global crop i, student crop v ≠ i) of the batch-mean cross-entropy."""
    losses = []
    for i, t in enumerate(teacher):
        q = np.exp(_log_softmax((t - center) / tt))
        losses += [(-(q * _log_softmax(s / ts)).sum(-1)).mean() for v, s in enumerate(student) if v != i]
    return float(np.mean(losses))


def _search_np(student: np.ndarray, target: np.ndarray, tt: float, n: int, ts: float = 0.1) -> float:
    """Uncentred cross-entropy, batch mean per local crop, then the mean over the ``n`` crops."""
    per_crop = [(-(np.exp(_log_softmax(t / tt)) * _log_softmax(s / ts)).sum(-1)).mean()
                for s, t in zip(np.split(student, n), np.split(target, n), strict=True)]
    return float(np.mean(per_crop))


def test_dino_loss_and_centring_match_float64() -> None:
    rng = np.random.default_rng(0)
    b, k, tt = 5, 12, 0.05
    student = [rng.normal(size=(b, k)) for _ in range(5)]  # 2 global + 3 local crops
    teacher = [rng.normal(size=(b, k)) for _ in range(2)]
    c0 = rng.normal(size=(1, k)) * 0.3
    loss = DINOLoss(k, center_momentum=0.9).double()
    loss.center.copy_(torch.from_numpy(c0))
    ours = loss([torch.from_numpy(s) for s in student], [torch.from_numpy(t) for t in teacher], tt)
    assert ours.item() == pytest.approx(_dino_np(student, teacher, c0, tt), rel=1e-10)
    # centring: c ← 0.9·c + 0.1·(mean over both teacher crops and the batch), after the loss
    expected = 0.9 * c0 + 0.1 * np.concatenate(teacher).mean(0, keepdims=True)
    np.testing.assert_allclose(loss.center.numpy(), expected, rtol=1e-12)


def test_search_loss_matches_float64() -> None:
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(3 * 4, 9)), rng.normal(size=(3 * 4, 9))
    ours = search_loss(torch.from_numpy(s), torch.from_numpy(t), 0.06)
    assert ours.item() == pytest.approx(_search_np(s, t, 0.06, n=3), rel=1e-10)


def _record(recipe: MOKD) -> dict:
    """Wrap every net's forward and every teacher's search to keep what they returned."""
    rec: dict = {"s": {}, "t": {}, "search": {}}
    for key in ("student", "peer"):
        for kind, mod in (("s", recipe.nets[key]), ("t", recipe.ema[key])):
            calls: list = []
            rec[kind][key] = calls
            orig = mod.forward
            mod.forward = lambda x, orig=orig, calls=calls: calls.append(orig(x)) or calls[-1]  # type: ignore[method-assign]
        searches: list = []
        rec["search"][key] = searches
        orig_search = recipe.ema[key].search

        def search(tokens, queries, orig_search=orig_search, searches=searches):
            out = orig_search(tokens, queries)
            searches.append((tokens, queries, out))
            return out

        recipe.ema[key].search = search  # type: ignore[method-assign]
    return rec


def test_each_loss_term_of_a_step_matches_float64() -> None:
    recipe = _recipe().double()
    recipe.train()
    gen = torch.Generator().manual_seed(2)
    centres = {}
    for key in ("student", "peer"):
        for term, loss in recipe.losses[key].items():
            loss.center.copy_(torch.randn(loss.center.shape, generator=gen, dtype=torch.float64) * 0.2)
            centres[key, term] = loss.center.numpy().copy()
    recipe.teacher_temp.fill_(0.05)
    rec = _record(recipe)
    out = recipe.step(_batch(dtype=torch.float64))
    np_ = lambda x: x.detach().numpy()  # noqa: E731
    other = {"student": "peer", "peer": "student"}
    total = 0.0
    for key in ("student", "peer"):
        (s_g, s_l), (t_own,), (t_oth,) = rec["s"][key], rec["t"][key], rec["t"][other[key]]
        ((tokens, queries, searched),) = rec["search"][other[key]]  # the OTHER teacher searched for us
        np.testing.assert_array_equal(np_(queries), np_(s_l.query))  # with this model's local features
        np.testing.assert_array_equal(np_(tokens), np_(t_oth.tokens[:4]))  # in its tokens of global crop 1
        mlp = [*np.split(np_(s_g.mlp), 2), *np.split(np_(s_l.mlp), 2)]
        th = [*np.split(np_(s_g.thead), 2), *np.split(np_(s_l.thead), 2)]
        terms = {
            "mlp": _dino_np(mlp, np.split(np_(t_own.mlp), 2), centres[key, "mlp"], 0.05),
            "thead": _dino_np(th, np.split(np_(t_own.thead), 2), centres[key, "thead"], 0.05),
            "cross": _dino_np(mlp, np.split(np_(t_oth.mlp), 2), centres[key, "cross"], 0.05),
            "search": _search_np(np_(s_l.thead), np_(searched), 0.05, n=2),
        }
        name, lam = ("vit", 0.1) if key == recipe.vit_key else ("cnn", 1.0)
        for term, value in terms.items():
            assert float(out.logs[f"{name}_{term}"]) == pytest.approx(value, rel=1e-9), (name, term)
        total += terms["mlp"] + terms["thead"] + lam * (terms["cross"] + terms["search"])
    assert out.loss.item() == pytest.approx(total, rel=1e-9)


def test_the_control_computes_neither_cross_term() -> None:
    """λ = 0 (each model alone, the benchmark's control): no search, no cross loss, L = Σ L_mlp + L_thead."""
    recipe = _recipe(**MOKD.control_overrides).double()
    recipe.train()
    centres = {(k, t): loss.center.numpy().copy() for k in ("student", "peer") for t, loss in recipe.losses[k].items()}
    rec = _record(recipe)
    out = recipe.step(_batch(dtype=torch.float64))
    assert rec["search"] == {"student": [], "peer": []}
    assert not {k for k in out.logs if k.endswith(("_cross", "_search"))}
    for key in ("student", "peer"):  # the cross term's centre did not move
        np.testing.assert_array_equal(recipe.losses[key]["cross"].center.numpy(), centres[key, "cross"])
    np_ = lambda x: x.detach().numpy()  # noqa: E731
    total = 0.0
    for key in ("student", "peer"):
        (s_g, s_l), (t_own,) = rec["s"][key], rec["t"][key]
        mlp = [*np.split(np_(s_g.mlp), 2), *np.split(np_(s_l.mlp), 2)]
        th = [*np.split(np_(s_g.thead), 2), *np.split(np_(s_l.thead), 2)]
        t = recipe.teacher_temp.item()
        total += (_dino_np(mlp, np.split(np_(t_own.mlp), 2), centres[key, "mlp"], t)
                  + _dino_np(th, np.split(np_(t_own.thead), 2), centres[key, "thead"], t))
    assert out.loss.item() == pytest.approx(total, rel=1e-9)


def test_search_is_the_thead_with_the_query_prefixed_and_has_no_gradient() -> None:
    recipe = _recipe()
    teacher = recipe.ema[recipe.vit_key]
    tokens = torch.randn(3, 4, 192)
    queries = torch.randn(2 * 3, 192, requires_grad=True)
    out = teacher.search(tokens, queries)
    assert not out.requires_grad and out.grad_fn is None
    with torch.no_grad():
        for v in range(2):
            expected = teacher.thead(tokens, prefix=queries[v * 3:(v + 1) * 3])
            torch.testing.assert_close(out[v * 3:(v + 1) * 3], expected)
        assert not torch.allclose(teacher.search(tokens, torch.randn_like(queries)), out)  # the query matters


def test_no_gradient_reaches_a_model_through_its_search_query() -> None:
    recipe = _recipe()
    recipe.train()
    rec = _record(recipe)
    reached = []
    cnn = recipe.nets[recipe.cnn_key]
    orig = cnn.forward

    def forward(x):  # x_pool is used by nothing but the search: any gradient on it came through the query
        out = orig(x)
        out.query.register_hook(lambda g: reached.append(g))
        return out

    cnn.forward = forward  # type: ignore[method-assign]
    recipe.step(_batch()).loss.backward()
    assert not reached
    for key in ("student", "peer"):
        ((_, queries, searched),) = rec["search"][key]
        assert not queries.requires_grad and not searched.requires_grad


def test_ema_update_follows_the_schedule_exactly() -> None:
    recipe = _recipe().double()
    with torch.no_grad():
        for p in recipe.nets.parameters():
            p.add_(torch.randn_like(p) * 0.1)  # the students moved away from their teachers
    before = {k: [(ps.detach().clone(), pt.clone()) for ps, pt in
                  zip(recipe.nets[k].parameters(), recipe.ema[k].parameters(), strict=True)]
              for k in ("student", "peer")}
    recipe.on_step_end(3, 10)
    m = 1 - (1 - 0.996) * (1 + math.cos(math.pi * 3 / 10)) / 2  # cosine 0.996 → 1 over 10 steps
    assert recipe.momentum(3, 10) == pytest.approx(m, rel=1e-15)
    for k in ("student", "peer"):
        for (ps, pt), new in zip(before[k], recipe.ema[k].parameters(), strict=True):
            torch.testing.assert_close(new, m * pt + (1 - m) * ps, rtol=1e-13, atol=1e-15)
            assert not new.requires_grad


def test_schedules_teacher_temperature_and_vit_weight_decay() -> None:
    cfg = make_config(MOKD)
    assert teacher_temperature(0, 100, cfg) == pytest.approx(0.04)
    assert teacher_temperature(15, 100, cfg) == pytest.approx(0.055)
    assert teacher_temperature(30, 100, cfg) == teacher_temperature(99, 100, cfg) == pytest.approx(0.07)
    recipe = _recipe()
    opts = recipe.optimizers()
    # student = the CNN here: its backbone + MLP head on SGD, its T-Head on the ViT's AdamW schedules, the ViT.
    assert [type(o).__name__ for o in opts] == ["SGD", "AdamW", "AdamW"]
    thead = {id(p) for p in recipe.nets["student"].thead.parameters()}
    assert {id(p) for g in opts[1].param_groups for p in g["params"]} == thead
    assert not thead & {id(p) for g in opts[0].param_groups for p in g["params"]}
    b = recipe.data.batch_size
    assert opts[1].param_groups[0]["base_lr"] == pytest.approx(3e-4 * b / 256) == opts[2].param_groups[0]["base_lr"]
    assert opts[0].param_groups[0]["base_lr"] == pytest.approx(0.1 * b / 256)
    recipe.on_step_end(4, 10)
    expected = pytest.approx(0.4 + 0.5 * (0.04 - 0.4) * (1 + math.cos(math.pi * 5 / 10)))
    for opt in opts[1:]:
        assert [g["weight_decay"] for g in opt.param_groups if g["weight_decay"] > 0] == [expected]
    assert max(g["weight_decay"] for g in opts[0].param_groups) == pytest.approx(1e-4)
    assert recipe.teacher_temp.item() == pytest.approx(teacher_temperature(5, 10, recipe.cfg))


def test_last_layers_are_frozen_for_the_first_steps() -> None:
    recipe = _recipe(freeze_last_layer_steps=1)
    recipe.train()
    recipe.step(_batch()).loss.backward()
    recipe.on_after_backward(1, 10)  # past the frozen steps: untouched
    last = [p for k in ("student", "peer") for p in recipe.nets[k].last_layers()]
    assert all(p.grad is not None for p in last)
    recipe.on_after_backward(0, 10)
    assert all(p.grad is None for p in last)
    assert recipe.nets["student"].mlp_head.mlp[0].weight.grad is not None
    assert _recipe().freeze_last_layer_steps(1000) == 10  # default: the first 1% of the run


def test_crop_sizes_and_views() -> None:
    assert local_crop_size(224, 16) == 96
    assert local_crop_size(32, 16) == 16
    assert local_crop_size(64, 16) == 32
    recipe = _recipe(n_local_crops=3)
    from PIL import Image

    views = recipe.views()(Image.new("RGB", (40, 40), (120, 30, 200)))
    assert sorted(views) == ["g0", "g1", "l0", "l1", "l2"]
    assert views["g0"].shape == (3, 32, 32) and views["l2"].shape == (3, 16, 16)


def test_reverse_pair_and_checkpoint_contents() -> None:
    recipe = _recipe("vit_tiny_patch16_224", "resnet10t", n_local_crops=1)
    assert recipe.vit_key == "student" and recipe.cnn_key == "peer"
    recipe.train()
    out = recipe.step(_batch(n_local=1, b=2))
    assert torch.isfinite(out.loss) and {"vit_search", "cnn_search"} <= set(out.logs)
    state = recipe.trainable_state_dict()
    assert any(k.startswith("ema.student.") for k in state)
    assert {f"losses.{k}.{t}.center" for k in ("student", "peer") for t in ("mlp", "thead", "cross")} <= set(state)
    saved = recipe.saved_models()
    assert saved["student"] is recipe.ema["student"].encoder and saved["peer"] is recipe.ema["peer"].encoder
    fresh = _recipe("vit_tiny_patch16_224", "resnet10t", n_local_crops=1)
    fresh.load_trainable_state_dict(state)  # resume: students, EMA teachers, centres, τ_t
    torch.testing.assert_close(fresh.losses["peer"]["cross"].center, recipe.losses["peer"]["cross"].center)


def test_needs_one_cnn_and_one_vit() -> None:
    with pytest.raises(CompressorError, match="CNN with a ViT"):
        _recipe("resnet10t", "resnet10t")


def test_gradients_are_clipped_per_parameter_by_default() -> None:
    """DINO's clip_gradients: each parameter's gradient is scaled to norm ≤ 3 on its own (float64 check)."""
    from compressor.engine.trainer import clip_gradients

    assert make_config(MOKD).clip_per_parameter is True
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.zeros(n, dtype=torch.float64)) for n in (3, 50, 7)]
    scales = (0.1, 5.0, 9.0)
    grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) * s for p, s in zip(params, scales, strict=True)]
    for p, gr in zip(params, grads, strict=True):
        p.grad = gr.clone()
    clip_gradients(params, 3.0, per_parameter=True)
    for p, gr in zip(params, grads, strict=True):
        norm = float(np.linalg.norm(gr.numpy()))
        expected = gr.numpy() * min(1.0, 3.0 / (norm + 1e-6))
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-12)


def test_a_short_run_puts_every_group_on_the_short_optimiser_with_its_own_decay() -> None:
    recipe = _recipe()
    resolve_preset(recipe.cfg, 10)  # what the engine does before it builds the optimisers
    opts = recipe.optimizers()
    assert [type(o).__name__ for o in opts] == ["AdamW", "AdamW", "AdamW"]
    assert all(g["base_lr"] == pytest.approx(1e-3) for o in opts for g in o.param_groups)
    assert max(g["weight_decay"] for g in opts[0].param_groups) == pytest.approx(1e-4)  # the CNN's SGD decay
    assert max(g["weight_decay"] for g in opts[2].param_groups) == pytest.approx(0.04)  # the ViT's, scheduled
