"""The short-run preset (``resolve_preset``): which runs get it, what it changes, and that a run says so."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
import torch
import yaml

from compressor.engine.config import TrainConfig, resolve_config
from compressor.engine.preset import PresetChoice, resolve_preset
from compressor.engine.recipe import (
    SHORT_RUN_CROP,
    SHORT_RUN_OPTIMIZER,
    RecipeConfig,
    get_recipe,
    list_recipes,
    make_config,
)
from compressor.engine.setup import build_components
from compressor.errors import CompressorError


def _seed(**over) -> RecipeConfig:
    return make_config(get_recipe("seed"), over)


def _resolved(cfg: RecipeConfig, steps: int, given: dict | None = None) -> RecipeConfig:
    resolve_preset(cfg, steps, given)
    return cfg


def _tiny(tmp_path, **over) -> TrainConfig:
    base = dict(student="resnet10t", recipe="seed", teacher="timm:resnet10t", teacher_weights="random",
                data="synthetic", max_images=8, batch_size=4, max_steps=2, image_size=24, device="cpu",
                out=str(tmp_path / "r"))
    return TrainConfig(**{**base, **over})


def test_auto_gives_short_runs_the_short_preset_and_long_runs_the_papers() -> None:
    short = _seed()
    choice = resolve_preset(short, 4999)
    assert (short.optimizer, short.lr, short.scale_lr_by_batch, short.preset) == ("adamw", 1e-3, False, "short")
    assert short.weight_decay == 1e-4 and short.warmup_fraction == 0.025  # the recipe's own, untouched
    assert (choice.name, choice.reason) == ("short", "4999 steps < 5000")
    paper = _seed()
    choice = resolve_preset(paper, 5000)
    assert (paper.optimizer, paper.lr, paper.scale_lr_by_batch, paper.preset) == ("sgd", 0.03, True, "paper")
    assert (choice.name, choice.reason, choice.changes) == ("paper", "5000 steps ≥ 5000", {})
    assert _resolved(_seed(short_run_steps=100), 200).preset == "paper"


def test_the_choice_names_every_field_it_changed_paper_value_to_value_used() -> None:
    choice = resolve_preset(_seed(), 156)
    assert choice.changes == {"optimizer": ("sgd", "adamw"), "lr": (0.03, 1e-3), "scale_lr_by_batch": (True, False),
                              "crop_scale_min": (0.2, 0.8)}
    assert choice.line() == ("short-run preset (156 steps < 5000): optimizer sgd → adamw, lr 0.03 → 0.001, "
                             "scale_lr_by_batch True → False, crop_scale_min 0.2 → 0.8")
    mvmr = resolve_preset(make_config(get_recipe("mvmr")), 156)
    assert mvmr.line() == ("short-run preset (156 steps < 5000): optimizer adam → adamw, lr 0.0001 → 0.001, "
                           "crop_scale_min 0.2 → 0.8, w_dcor_teacher 1 → 64")
    # a value given with the preset is the value used, and listed against the paper's
    given = resolve_preset(_seed(crop_scale_min=0.5), 156, {"crop_scale_min": 0.5})
    assert given.changes["crop_scale_min"] == (0.2, 0.5)
    # a field the preset sets to the paper's own value is not a change (feature-kd's optimiser is AdamW 1e-3)
    assert set(resolve_preset(make_config(get_recipe("feature-kd")), 156).changes) == {"crop_scale_min"}


@pytest.mark.parametrize("key", sorted(SHORT_RUN_OPTIMIZER))
def test_a_rate_or_optimiser_set_by_hand_is_kept(key: str) -> None:
    value = {"optimizer": "adam", "lr": 0.2, "scale_lr_by_batch": False}[key]
    cfg = _seed(**{key: value})
    choice = resolve_preset(cfg, 10, {key.replace("_", "-"): value})
    assert cfg.preset == "paper" and getattr(cfg, key) == value
    assert cfg.optimizer == ("adam" if key == "optimizer" else "sgd")
    assert choice.reason == f"10 steps < 5000, but {key} given" and choice.changes == {}


def test_explicit_presets_and_a_bad_one() -> None:
    assert _resolved(_seed(preset="short"), 10**6).optimizer == "adamw"
    assert resolve_preset(_seed(preset="short"), 10**6).reason == "preset=short"
    given = _resolved(_seed(preset="short", lr=0.5), 10, {"preset": "short", "lr": 0.5})
    assert (given.optimizer, given.lr) == ("adamw", 0.5)  # a value given with the preset wins
    assert _resolved(_seed(preset="paper"), 10).optimizer == "sgd"
    with pytest.raises(CompressorError, match="preset='fast' is not one of auto, paper, short.*--set preset=paper"):
        resolve_preset(_seed(preset="fast"), 10)


@pytest.mark.parametrize("old", ["optimizer_preset", "optimizer-preset"])
def test_the_old_key_is_read_as_preset_with_a_warning(old: str, caplog) -> None:
    cfg = make_config(get_recipe("seed"), {old: "paper"})
    assert cfg.preset == "paper" and not hasattr(cfg, "optimizer_preset")
    with caplog.at_level(logging.WARNING, logger="compressor"):
        resolve_preset(cfg, 10, {old: "paper"})
    assert cfg.optimizer == "sgd"
    assert [r.getMessage() for r in caplog.records] == [
        "recipe option optimizer_preset is deprecated and read as preset (write --set preset=…)"]
    both = make_config(get_recipe("seed"), {old: "paper", "preset": "short"})
    assert both.preset == "short"  # the new key wins


def test_every_recipes_short_run_settings_are_fields_of_its_config() -> None:
    for r in list_recipes():
        names = {f.name for f in dataclasses.fields(r.Config)}
        assert set(r.Config.short_run_settings) <= names, r.name
        short = make_config(r)
        choice = resolve_preset(short, 10)
        assert choice.name == "short" and all(getattr(short, k) == v for k, v in r.Config.short_run_settings.items())


def test_a_short_run_trains_with_adamw_and_a_long_one_with_the_papers(tmp_path) -> None:
    cfg = _tiny(tmp_path)
    c = build_components(cfg)
    assert c.total_steps == 2 and isinstance(c.preset, PresetChoice) and c.preset.name == "short"
    (opt,) = c.recipe.optimizers()
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    long = build_components(TrainConfig(**{**vars(cfg), "max_steps": None, "epochs": 2500}))  # 2 × 2500 steps
    assert long.total_steps == 5000
    (opt,) = long.recipe.optimizers()
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == pytest.approx(0.03 * 4 / 256)


def test_a_short_run_logs_records_and_resumes_what_it_trained_with(tmp_path, caplog) -> None:
    from compressor.engine.trainer import train

    with caplog.at_level(logging.INFO, logger="compressor"):
        run = train(_tiny(tmp_path, max_steps=1), progress=False)
    line = ("short-run preset (1 steps < 5000): optimizer sgd → adamw, lr 0.03 → 0.001, "
            "scale_lr_by_batch True → False, crop_scale_min 0.2 → 0.8")
    assert line in [r.getMessage() for r in caplog.records]
    info = json.loads((run / "run.json").read_text())
    assert info["preset"] == {"name": "short", "reason": "1 steps < 5000", "changes": {
        "optimizer": {"paper": "sgd", "used": "adamw"}, "lr": {"paper": 0.03, "used": 0.001},
        "scale_lr_by_batch": {"paper": True, "used": False}, "crop_scale_min": {"paper": 0.2, "used": 0.8}}}
    recorded = yaml.safe_load((run / "config.yaml").read_text())["recipe_config"]
    assert (recorded["preset"], recorded["optimizer"], recorded["lr"], recorded["crop_scale_min"]) == (
        "short", "adamw", 1e-3, 0.8)
    assert recorded["queue_size"] == 4  # 0 = auto, recorded as the length used: min(65536, B·⌊N/2B⌋), ≥ B
    assert "optimizer_preset" not in recorded
    # an old run's config.yaml (the key's old name) still resumes, with the values it recorded
    path = run / "config.yaml"
    old = yaml.safe_load(path.read_text())
    old["recipe_config"]["optimizer_preset"] = old["recipe_config"].pop("preset")
    path.write_text(yaml.safe_dump(old))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="compressor"):
        train(resolve_config({"out": str(run), "resume": True, "max_steps": 2}, path), progress=False)  # as distill
    messages = [r.getMessage() for r in caplog.records]
    assert any("optimizer_preset is deprecated" in m for m in messages)
    assert line.replace("1 steps < 5000", "preset=short") in messages  # the same changes, recorded then read
    resumed = yaml.safe_load(path.read_text())["recipe_config"]
    assert (resumed["preset"], resumed["lr"], resumed["queue_size"]) == ("short", 1e-3, 4)


def test_mokd_records_the_rates_it_trains_with() -> None:
    mokd = get_recipe("mokd")
    short = make_config(mokd)
    choice = resolve_preset(short, 10)
    assert choice.name == "short"
    assert (short.cnn_optimizer, short.cnn_lr, short.vit_lr, short.scale_lr_by_batch) == ("adamw", 1e-3, 1e-3, False)
    assert choice.changes == {"scale_lr_by_batch": (True, False), "cnn_optimizer": ("sgd", "adamw"),
                              "cnn_lr": (0.1, 1e-3), "vit_lr": (3e-4, 1e-3)}
    assert (short.optimizer, short.lr) == ("sgd", 1e-3)  # the base fields mokd does not read are left alone
    for key in ("cnn_lr", "vit_lr", "cnn_optimizer"):
        value = "adam" if key == "cnn_optimizer" else 0.2
        assert _resolved(make_config(mokd, {key: value}), 10, {key: value}).preset == "paper"


def test_moma_masks_a_cnn_student_half_in_a_short_run_and_three_quarters_in_a_long_one(tmp_path) -> None:
    cfg = _tiny(tmp_path, recipe="moma", recipe_config={"hidden_dim": 16})
    short = build_components(cfg)
    assert short.recipe.cfg.mask_ratio == 0.5 and short.preset is not None
    assert short.preset.changes["zero_fill_mask_ratio"] == (0.75, 0.5)
    long = build_components(TrainConfig(**{**vars(cfg), "max_steps": None, "epochs": 2500}))
    assert long.recipe.cfg.mask_ratio == 0.75


CROP_RECIPES = ("simclr", "feature-kd", "seed", "mvmr", "moma")  # the control and every teacher→student recipe


@pytest.mark.parametrize("name", CROP_RECIPES)
def test_short_runs_crop_milder_and_long_runs_keep_the_papers_crop(name: str) -> None:
    recipe = get_recipe(name)
    assert make_config(recipe).crop_scale_min == 0.2  # the papers' (MoCo v2 / SimCLR) crop, declared
    assert _resolved(make_config(recipe), 5000).crop_scale_min == 0.2
    assert _resolved(make_config(recipe), 156).crop_scale_min == SHORT_RUN_CROP["crop_scale_min"]
    given = _resolved(make_config(recipe, {"crop_scale_min": 0.3}), 156, {"crop_scale_min": 0.3})
    assert (given.preset, given.crop_scale_min) == ("short", 0.3)  # a crop is not a rate: still short


def test_every_teacher_to_student_recipe_and_the_control_get_the_short_crop() -> None:
    kd = {r.name for r in list_recipes() if r.kind == "teacher→student"}
    assert kd | {"simclr"} == set(CROP_RECIPES)  # a new teacher→student recipe is compared at the control's crop
    for r in list_recipes():
        assert (r.name in CROP_RECIPES) == (r.Config.short_run_settings.get("crop_scale_min") is not None)
