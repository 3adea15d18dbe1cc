"""Catalogue — the failures issue 28 named: a deeply nested YAML, and ImageNet student weights below 96 px.

Each case asserts the catalogue's contract (tests/cli/catalogue.py): a non-zero exit, one line naming
the fix, no traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision

from tests.cli.catalogue import TINY, one_line_error

DEEP = "[" * 20_000 + "]" * 20_000  # PyYAML's recursive composer gave a RecursionError here
LIMIT = r"nests lists or mappings more than 100 levels deep; write it with fewer levels"


def test_config_nested_20000_levels(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "deep.yaml"
    cfg.write_text(f"recipe_config:\n  projector_dims: {DEEP}\n")
    one_line_error(cli, "distill", *TINY, "--config", cfg, "--out", tmp_path / "r", match=rf"deep\.yaml {LIMIT}")
    assert not (tmp_path / "r").exists()


def test_config_nested_just_past_the_limit(cli, tmp_path: Path) -> None:
    """101 levels: past the limit but shallow enough for PyYAML itself, so the check is ours."""
    cfg = tmp_path / "deep.yaml"
    cfg.write_text("a: " + "[" * 101 + "]" * 101 + "\n")
    one_line_error(cli, "distill", *TINY, "--config", cfg, match=rf"deep\.yaml {LIMIT}")


def test_run_config_nested_20000_levels(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "pipe.yaml"
    cfg.write_text(f"student: test_resnet\npipeline: {DEEP}\n")
    one_line_error(cli, "run", cfg, match=rf"pipe\.yaml {LIMIT}")


def test_set_value_nested_5000_levels(cli, tmp_path: Path) -> None:
    one_line_error(cli, "distill", *TINY, "--set", "projector_dims=" + "[" * 5000 + "]" * 5000,
                   "--out", tmp_path / "r", match=rf"--set projector_dims {LIMIT}")


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory) -> Path:
    """torchvision's resnet18 layout (7×7 stride-2 stem, classifier ``fc``), as ImageNet weights come."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


STUDENT = ["--student", "resnet18", "--recipe", "simclr", "--data", "synthetic", "--batch-size", "4",
           "--max-images", "8", "--max-steps", "1", "--image-size", "64", "--quiet",
           "--set", "projector_dims=[16,16]"]


def test_student_weights_below_96px_keep_their_stem(cli, tmp_path: Path, resnet18_weights: Path) -> None:
    """``--stem auto`` would pick the small stem at 64 px; with ImageNet weights it keeps theirs."""
    run = tmp_path / "r"
    code, _, err = cli("distill", *STUDENT, "--student-weights", resnet18_weights, "--out", run)
    assert code == 0, err
    assert json.loads((run / "student.json").read_text())["stem"] == "imagenet"


def test_student_weights_with_the_small_stem(cli, tmp_path: Path, resnet18_weights: Path) -> None:
    one_line_error(cli, "distill", *STUDENT, "--student-weights", resnet18_weights, "--stem", "small",
                   "--out", tmp_path / "r",
                   match=r"resnet18\.pth were made for the ImageNet stem of resnet18, and --stem small replaces "
                         r"it; pass --stem imagenet")


def test_student_weights_of_another_network_name_the_student(cli, tmp_path: Path, resnet18_weights: Path) -> None:
    args = [a if a != "resnet18" else "resnet34" for a in STUDENT]
    line = one_line_error(cli, "distill", *args, "--student-weights", resnet18_weights, "--stem", "imagenet",
                          "--out", tmp_path / "r", match=r"does not fit student resnet34 .* pass --student-weights "
                                                         r"made for resnet34 or pick the --student")
    assert "teacher" not in line
