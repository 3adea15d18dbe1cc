"""Every registered recipe runs 3 steps through `compress distill` on Fashion-MNIST (moma with two teachers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compressor.recipes import list_recipes
from tests.conftest import requires_fmnist

TEACHER = ["--teacher", "timm:resnet10t", "--teacher-weights", "random", "--teacher-image-size", "32"]
ARGS: dict[str, list[str]] = {
    "mvmr": [*TEACHER, "--set", "projector_dims=[64,64]"],
    "feature-kd": [*TEACHER, "--set", "hidden_dim=64"],
    "seed": [*TEACHER, "--set", "queue_size=64"],
    "moma": ["--student", "vit_tiny_patch16_224", "--teacher", "timm:vit_tiny_patch16_224,timm:resnet10t",
             "--teacher-weights", "random", "--teacher-image-size", "32"],
    "dogo": ["--peer", "resnet10t"],
    "mokd": ["--peer", "vit_tiny_patch16_224", "--set", "out_dim=64", "--set", "head_hidden_dim=64",
             "--set", "head_bottleneck_dim=32", "--set", "n_local_crops=2"],
    "css": ["--peer", "resnet10t"],
    "simclr": ["--set", "projector_dims=[64,32]"],
    "supervised": [],
}


@requires_fmnist
@pytest.mark.parametrize("recipe", [r.name for r in list_recipes()])
def test_three_steps_on_fashion_mnist(cli, tmp_path: Path, recipe: str) -> None:
    assert recipe in ARGS, f"add the CLI arguments of the new recipe {recipe!r} to ARGS"
    args = ARGS[recipe]
    student = [] if "--student" in args else ["--student", "resnet10t"]
    out = tmp_path / recipe
    code, _, err = cli("distill", "--recipe", recipe, *student, *args, "--data", "fashion-mnist", "--max-images",
                       "64", "--max-steps", "3", "--batch-size", "8", "--image-size", "32", "--out", out, "--quiet")
    assert code == 0, err
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3
    assert (out / "student.safetensors").is_file()
    cls = next(r for r in list_recipes() if r.name == recipe)
    assert (out / "peer.safetensors").is_file() == cls.needs_peer
