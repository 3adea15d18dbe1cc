"""Catalogue — numbers: every numeric flag, config field and recipe option is range-checked at the boundary.

These fail in resolve_config / before any model is built, so each costs milliseconds. The table they
exercise is compressor/engine/ranges.py; test_every_int_field_has_a_range keeps it complete.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from tests.cli.catalogue import TINY, digest, one_line_error

BAD_FLAGS = [
    ("--max-steps", "0", r"--max-steps must be from 1"),
    ("--max-steps", "-5", r"--max-steps must be from 1"),
    ("--epochs", "0", r"--epochs must be from 1"),
    ("--epochs", "-2", r"--epochs must be from 1"),
    ("--image-size", "0", r"--image-size must be from 16 to 4096"),
    ("--image-size", "100000", r"--image-size must be from 16 to 4096"),
    ("--max-images", "0", r"--max-images must be at least 1 \(leave it out to use every image\)"),
    ("--max-images", "-3", r"--max-images must be at least 1"),
    ("--batch-size", "0", r"--batch-size must be from 1"),
    ("--workers", "10000", r"--workers must be from 0 to \d+"),
    ("--workers", "-1", r"--workers must be from 0"),
    ("--checkpoint-every", "0", r"--checkpoint-every must be at least 1"),
    ("--seed", "-1", r"--seed must be from 0"),
    ("--teacher-image-size", "5", r"--teacher-image-size must be from 16"),
    ("--peer-image-size", "-32", r"--peer-image-size must be from 16"),
]


@pytest.mark.parametrize(("flag", "value", "match"), BAD_FLAGS, ids=[f"{f}={v}" for f, v, _ in BAD_FLAGS])
def test_numeric_flag_out_of_range(cli, tmp_path: Path, flag: str, value: str, match: str) -> None:
    one_line_error(cli, "distill", *TINY, flag, value, "--out", tmp_path / "r", match=match)
    assert not (tmp_path / "r").exists()  # refused before anything was written


BAD_FIELDS = [
    ("log_every: 0\n", r"--log-every must be at least 1"),
    ("keep_checkpoints: 0\n", r"--keep-checkpoints must be from 1"),
    ("max_steps: .inf\n", r"max_steps .* must be int"),
    ("epochs: 1.5\n", r"epochs .* must be int"),
]


@pytest.mark.parametrize(("text", "match"), BAD_FIELDS, ids=[t.split(":")[0] for t, _ in BAD_FIELDS])
def test_config_field_out_of_range(cli, tmp_path: Path, text: str, match: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    one_line_error(cli, "distill", *TINY, "--config", cfg, "--out", tmp_path / "r", match=match)


BAD_OPTIONS = [
    ("lr=inf", r"--set lr=\.\.\. \(simclr\) must be a finite number"),
    ("lr=nan", r"--set lr=\.\.\. \(simclr\) must be a finite number"),
    ("lr=1e300", r"--set lr=\.\.\. \(simclr\) must be a finite number \(at most 3.4e\+38\)"),
    ("lr=-0.1", r"--set lr=\.\.\. \(simclr\) must be greater than 0"),
    ("temperature=0", r"--set temperature=\.\.\. \(simclr\) must be greater than 0"),
    ("warmup_fraction=2", r"--set warmup_fraction=\.\.\. \(simclr\) must be between 0 and 1"),
    ("weight_decay=-1", r"--set weight_decay=\.\.\. \(simclr\) must not be negative"),
    ("projector_dims=[0,16]", r"--set projector_dims=\.\.\. \(simclr\) must be at least 1"),
]


@pytest.mark.parametrize(("option", "match"), BAD_OPTIONS, ids=[o for o, _ in BAD_OPTIONS])
def test_recipe_option_out_of_range(cli, tmp_path: Path, option: str, match: str) -> None:
    one_line_error(cli, "distill", *TINY, "--set", option, "--max-steps", "1", "--out", tmp_path / "r", match=match)


def test_every_int_field_has_a_range() -> None:
    """A new numeric TrainConfig field without a range would be the next unchecked flag."""
    from compressor.engine.config import TrainConfig
    from compressor.engine.ranges import TRAIN_RANGES

    hints = typing.get_type_hints(TrainConfig)
    numeric = {f.name for f in dataclasses.fields(TrainConfig)
               if any(a in (int, float) for a in (typing.get_args(hints[f.name]) or (hints[f.name],)))}
    assert numeric <= set(TRAIN_RANGES), numeric - set(TRAIN_RANGES)


def test_every_recipe_default_passes_the_recipe_rules() -> None:
    from compressor.engine.ranges import check_recipe_numbers
    from compressor.engine.recipe import make_config
    from compressor.recipes import RECIPES, get_recipe

    for name in RECIPES.names():
        check_recipe_numbers(name, make_config(get_recipe(name), {}))


def test_huge_but_finite_lr_stops_and_writes_nothing(cli, tmp_path: Path) -> None:
    """lr=1e38 passes the boundary but overflows the weights: the run stops naming the step, nothing is saved."""
    run = tmp_path / "r"
    one_line_error(cli, "distill", *TINY, "--max-steps", "3", "--set", "lr=1e38", "--out", run, code=3,
                   match=r"became (nan|inf|-inf|non-finite|too large for float32) at step [123].*"
                         r"no checkpoint was written")
    assert not (run / "student.safetensors").exists()
    assert not list(run.glob("checkpoints/*.pt"))


def test_export_of_a_nan_student_fails_its_parity_check(cli, finished_run: Path) -> None:
    """NaN never compares below a threshold: the gate is written `not cos >= threshold`."""
    weights = finished_run / "student.safetensors"
    state = load_file(str(weights))
    state = {k: v.float().fill_(math.nan) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(weights))
    one_line_error(cli, "export", finished_run, "--format", "onnx", "--check-size", "8",
                   match=r"failed its parity check and was not kept.*nan")
    assert not (finished_run / "export" / "model.onnx").exists()


def test_bench_zero_iterations(cli, finished_run: Path) -> None:
    before = digest(finished_run)
    one_line_error(cli, "bench", finished_run, "--iters", "0", "--backend", "torch",
                   match=r"--iters must be at least 1")
    assert digest(finished_run) == before


def test_eval_zero_batch_size(cli, finished_run: Path) -> None:
    one_line_error(cli, "eval", finished_run, "--batch-size", "0", match=r"--batch-size must be at least 1")
