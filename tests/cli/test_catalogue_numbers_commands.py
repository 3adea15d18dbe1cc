"""Catalogue — numbers for every command: NaN, infinities and out-of-range values refused up front.

``compress distill``'s flags are covered by test_catalogue_numbers.py (engine/ranges.py); these are
the other commands' options (``compress export``'s are its own file's), the ``compress run``
pipeline keys, and recipe options given as NaN or infinity in each place a recipe option is read.
Each fails before any work starts, so each costs milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.catalogue import TINY, digest, one_line_error


def _range(flag: str, low: int) -> str:  # Typer's own wording, for options declared with min=/max=
    return rf"^error: Invalid value for '{flag}': Input should be greater than or equal to {low}$"


CLICK = [
    (["demo", "--epochs", "0"], _range("--epochs", 1)),
    (["demo", "--teacher-epochs", "-1"], _range("--teacher-epochs", 1)),
    (["demo", "--images", "0"], _range("--images", 1)),
    (["pick", "--budget-ms", "5", "--threads", "0"], _range("--threads", 1)),
    (["pick", "--budget-ms", "5", "--image-size", "8"], _range("--image-size", 16)),
    (["pick", "--budget-ms", "5", "--steps", "0"], _range("--steps", 1)),
    (["pick", "--budget-ms", "5", "--iters", "-2"], _range("--iters", 1)),
    (["data", "shard", ".", "out", "--seed", "-1"], _range("--seed", 0)),
]


@pytest.mark.parametrize(("args", "match"), CLICK, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CLICK])
def test_option_below_its_range(cli, tmp_path: Path, args: list[str], match: str) -> None:
    one_line_error(cli, *args, match=match, code=2)


@pytest.mark.parametrize("budget", ["nan", "inf", "-1", "0"])
def test_pick_budget_not_a_positive_number(cli, tmp_path: Path, budget: str) -> None:
    one_line_error(cli, "pick", "--budget-ms", budget, "--out", tmp_path / "p",
                   match=rf"--budget-ms takes a positive number of milliseconds, not {budget}")
    assert not (tmp_path / "p").exists()


CACHE = [
    ("--batch-size", "0", r"--batch-size must be from 1 to 65536, got 0"),
    ("--workers", "-1", r"--workers must be from 0 to \d+ \(data-loading processes\), got -1"),
    ("--max-images", "0", r"--max-images must be at least 1 \(leave it out to use every image\), got 0"),
    ("--seed", "-4", r"--seed must be from 0 to 4294967295, got -4"),
    ("--teacher-image-size", "3", r"--teacher-image-size must be from 16 to 4096, got 3"),
]


@pytest.mark.parametrize(("flag", "value", "match"), CACHE, ids=[f"{f}={v}" for f, v, _ in CACHE])
def test_cache_build_numbers(cli, tmp_path: Path, flag: str, value: str, match: str) -> None:
    one_line_error(cli, "cache", "build", tmp_path / "c", "--teacher", "timm:resnet10t", "--teacher-weights",
                   "random", "--data", "synthetic", flag, value, match=match)
    assert not (tmp_path / "c").exists()


BENCH = [
    ("--seconds", "nan", r"--seconds must be at least 0.001, got nan"),
    ("--cv-warn", "inf", r"--cv-warn must be at least 0, got inf"),
    ("--warmup", "-1", r"--warmup must be at least 0, got -1"),
    ("--threads", "0", r"--threads must be at least 1, got 0"),
]


@pytest.mark.parametrize(("flag", "value", "match"), BENCH, ids=[f"{f}={v}" for f, v, _ in BENCH])
def test_bench_numbers(cli, finished_run: Path, flag: str, value: str, match: str) -> None:
    before = digest(finished_run)
    one_line_error(cli, "bench", finished_run, "--backend", "torch", flag, value, match=match)
    assert digest(finished_run) == before


@pytest.mark.parametrize(("flag", "value"), [("--max-train", "0"), ("--max-val", "-3")])
def test_eval_numbers(cli, finished_run: Path, flag: str, value: str) -> None:
    one_line_error(cli, "eval", finished_run, flag, value, match=rf"{flag} must be at least 1, got {value}")


def test_embed_zero_batch(cli, finished_run: Path, tmp_path: Path) -> None:
    one_line_error(cli, "embed", finished_run, tmp_path, "--out", tmp_path / "e.npy", "--batch-size", "0",
                   match=_range("--batch-size", 1), code=2)
    assert not (tmp_path / "e.npy").exists()


PIPELINE = [
    ("calib_size=-1", r"pipeline key calib_size in .*run\.yaml must be a finite number of at least 1, got -1"),
    ("check_size=0", r"pipeline key check_size in .*run\.yaml must be a finite number of at least 1, got 0"),
    ("bench_seconds=.nan", r"pipeline key bench_seconds .* at least 0.001, got nan"),
    ("bench_seconds=.inf", r"pipeline key bench_seconds .* at least 0.001, got inf"),
    ("bench_batches=[1,0]", r"pipeline key bench_batches .* at least 1, got 0"),
    ("bench_warmup=-1", r"pipeline key bench_warmup .* at least 0, got -1"),
    ("eval_max_val=0", r"pipeline key eval_max_val .* at least 1, got 0"),
]


@pytest.mark.parametrize(("option", "match"), PIPELINE, ids=[o for o, _ in PIPELINE])
def test_run_pipeline_numbers(cli, tmp_path: Path, option: str, match: str) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"student: test_resnet\nrecipe: simclr\ndata: synthetic\nmax_steps: 1\nout: {tmp_path / 'r'}\n")
    one_line_error(cli, "run", cfg, "--pipeline-set", option, match=match)
    assert not (tmp_path / "r").exists()


def test_run_pipeline_number_in_the_config_file(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text("student: test_resnet\ndata: synthetic\npipeline:\n  calib_size: -1\n")
    one_line_error(cli, "run", cfg, match=r"pipeline key calib_size in .*run\.yaml must be a finite number of at "
                                          r"least 1, got -1")


SET = [("temperature=inf", "inf"), ("temperature=-.inf", "-inf"), ("lr=.nan", "nan"), ("warmup_fraction=nan", "nan"),
       ("weight_decay=1e400", "inf")]


@pytest.mark.parametrize(("option", "shown"), SET, ids=[o for o, _ in SET])
def test_recipe_option_not_finite(cli, tmp_path: Path, option: str, shown: str) -> None:
    key = option.split("=")[0]
    one_line_error(cli, "distill", *TINY, "--set", option, "--out", tmp_path / "r",
                   match=rf"--set {key}=\.\.\. \(simclr\) must be a finite number .*, got {shown}$")
    assert not (tmp_path / "r").exists()


def test_recipe_option_nan_in_the_config_file(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("recipe_config:\n  lr: .nan\n")
    one_line_error(cli, "distill", *TINY, "--config", cfg, "--out", tmp_path / "r",
                   match=r"--set lr=\.\.\. \(simclr\) must be a finite number .*, got nan$")


def test_recipe_option_nan_through_compress_run(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"student: test_resnet\nrecipe: simclr\ndata: synthetic\nmax_steps: 1\nout: {tmp_path / 'r'}\n"
                   "recipe_config:\n  projector_dims: [16, 16]\n")
    one_line_error(cli, "run", cfg, "--set", "temperature=inf",
                   match=r"--set temperature=\.\.\. \(simclr\) must be a finite number .*, got inf$")
