"""The short-run optimiser rule (``resolve_optimizer_preset``): which runs get it, and what a run trains with."""

from __future__ import annotations

import pytest
import torch
import yaml

from compressor.engine.config import TrainConfig
from compressor.engine.recipe import (
    SHORT_RUN_CROP,
    SHORT_RUN_OPTIMIZER,
    get_recipe,
    make_config,
    resolve_optimizer_preset,
)
from compressor.engine.setup import build_components
from compressor.errors import CompressorError


def _seed(**over):
    return make_config(get_recipe("seed"), over)


def test_auto_gives_short_runs_the_short_optimiser_and_long_runs_the_papers() -> None:
    short = resolve_optimizer_preset(_seed(), 4999)
    assert (short.optimizer, short.lr, short.scale_lr_by_batch, short.optimizer_preset) == ("adamw", 1e-3, False,
                                                                                            "short")
    assert short.weight_decay == 1e-4 and short.warmup_fraction == 0.025  # the recipe's own, untouched
    paper = resolve_optimizer_preset(_seed(), 5000)
    assert (paper.optimizer, paper.lr, paper.scale_lr_by_batch, paper.optimizer_preset) == ("sgd", 0.03, True,
                                                                                            "paper")
    assert resolve_optimizer_preset(_seed(short_run_steps=100), 200).optimizer_preset == "paper"


@pytest.mark.parametrize("key", sorted(SHORT_RUN_OPTIMIZER))
def test_a_rate_or_optimiser_set_by_hand_is_kept(key: str) -> None:
    value = {"optimizer": "adam", "lr": 0.2, "scale_lr_by_batch": False}[key]
    cfg = resolve_optimizer_preset(_seed(**{key: value}), 10, {key.replace("_", "-"): value})
    assert cfg.optimizer_preset == "paper" and getattr(cfg, key) == value
    assert cfg.optimizer == ("adam" if key == "optimizer" else "sgd")


def test_explicit_presets_and_a_bad_one() -> None:
    assert resolve_optimizer_preset(_seed(optimizer_preset="short"), 10**6).optimizer == "adamw"
    given = resolve_optimizer_preset(_seed(optimizer_preset="short", lr=0.5), 10, {"optimizer_preset": "short",
                                                                                     "lr": 0.5})
    assert (given.optimizer, given.lr) == ("adamw", 0.5)  # a value given with the preset wins
    assert resolve_optimizer_preset(_seed(optimizer_preset="paper"), 10).optimizer == "sgd"
    with pytest.raises(CompressorError, match="optimizer_preset='fast' is not one of auto, paper, short.*--set"):
        resolve_optimizer_preset(_seed(optimizer_preset="fast"), 10)


def test_a_short_run_trains_with_adamw_and_records_it(tmp_path) -> None:
    cfg = TrainConfig(student="resnet10t", recipe="seed", teacher="timm:resnet10t", teacher_weights="random",
                      data="synthetic", max_images=8, batch_size=4, max_steps=2, image_size=24, device="cpu",
                      out=str(tmp_path / "r"))
    c = build_components(cfg)
    assert c.total_steps == 2
    (opt,) = c.recipe.optimizers()
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    long = build_components(TrainConfig(**{**vars(cfg), "max_steps": None, "epochs": 2500}))  # 2 × 2500 steps
    assert long.total_steps == 5000
    (opt,) = long.recipe.optimizers()
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == pytest.approx(0.03 * 4 / 256)


def test_config_yaml_records_the_preset_applied(tmp_path) -> None:
    from compressor.engine.trainer import train

    run = train(TrainConfig(student="resnet10t", recipe="seed", teacher="timm:resnet10t", teacher_weights="random",
                            data="synthetic", max_images=8, batch_size=4, max_steps=1, image_size=24, device="cpu",
                            out=str(tmp_path / "r"), recipe_config={"queue_size": 8}), progress=False)
    recorded = yaml.safe_load((run / "config.yaml").read_text())["recipe_config"]
    assert (recorded["optimizer_preset"], recorded["optimizer"], recorded["lr"]) == ("short", "adamw", 1e-3)



def test_mokd_rates_given_by_hand_keep_the_papers_optimisers() -> None:
    mokd = get_recipe("mokd")
    assert resolve_optimizer_preset(make_config(mokd), 10).optimizer_preset == "short"
    for key in ("cnn_lr", "vit_lr"):
        assert resolve_optimizer_preset(make_config(mokd, {key: 0.2}), 10, {key: 0.2}).optimizer_preset == "paper"


CROP_RECIPES = ("simclr", "feature-kd", "seed", "mvmr", "moma")  # the control and every teacher→student recipe


@pytest.mark.parametrize("name", CROP_RECIPES)
def test_short_runs_crop_milder_and_long_runs_keep_the_papers_crop(name: str) -> None:
    recipe = get_recipe(name)
    assert make_config(recipe).crop_scale_min == 0.2  # the papers' (MoCo v2 / SimCLR) crop, declared
    assert resolve_optimizer_preset(make_config(recipe), 5000).crop_scale_min == 0.2
    assert resolve_optimizer_preset(make_config(recipe), 156).crop_scale_min == SHORT_RUN_CROP["crop_scale_min"]
    given = resolve_optimizer_preset(make_config(recipe, {"crop_scale_min": 0.3}), 156, {"crop_scale_min": 0.3})
    assert (given.optimizer_preset, given.crop_scale_min) == ("short", 0.3)  # a crop is not a rate: still short


def test_every_teacher_to_student_recipe_and_the_control_get_the_short_crop() -> None:
    from compressor.recipes import list_recipes

    kd = {r.name for r in list_recipes() if r.kind == "teacher→student"}
    assert kd | {"simclr"} == set(CROP_RECIPES)  # a new teacher→student recipe is compared at the control's crop
    for r in list_recipes():
        assert (r.name in CROP_RECIPES) == (r.Config.short_run_settings.get("crop_scale_min") is not None)
