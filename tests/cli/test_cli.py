"""The `compress` CLI, in-process: help, listings, one-line errors, and distill → eval on a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def test_help_lists_commands(cli) -> None:
    code, out, _ = cli("--help")
    assert code == 0
    for cmd in ("distill", "eval", "demo", "list"):
        assert cmd in out


def test_every_distill_flag_has_help(cli) -> None:
    code, out, _ = cli("distill", "--help")
    assert code == 0
    for flag in ("--student", "--teacher-weights", "--checkpoint-every", "--teacher-image-size", "--workers",
                 "--config", "--resume", "--max-steps", "--precision"):
        assert flag in out


def test_list_recipes_and_teachers(cli) -> None:
    code, out, _ = cli("list", "recipes")
    assert code == 0 and "mvmr" in out and "simclr" in out and "control" in out
    code, out, _ = cli("list", "teachers")
    assert code == 0 and "clip-vit-b16" in out and "moco-v2-r50" in out


@pytest.mark.parametrize(("args", "match"), [
    (["--recipe", "mvmrr"], "unknown recipe 'mvmrr'; did you mean mvmr"),
    (["--student", "resnet181"], "unknown student 'resnet181'; did you mean"),
    (["--recipe", "mvmr"], "needs? .*--teacher|--teacher NAME"),
    (["--recipe", "simclr", "--teacher", "clip-vit-b16"], "uses no teacher"),
    (["--recipe", "mvmr", "--teacher", "clip-vit-b61", "--teacher-weights", "random"], "unknown teacher"),
    (["--data", "/nonexistent/folder"], "does not exist"),
    (["--set", "lrr=1"], "unknown simclr option 'lrr'"),
])
def test_bad_input_is_one_line(cli, tmp_path: Path, args: list[str], match: str) -> None:
    base = {"--student": "resnet10t", "--recipe": "simclr", "--data": "synthetic"}
    for k, v in zip(args[::2], args[1::2], strict=True):
        base[k] = v
    flat = [x for kv in base.items() for x in kv]
    code, out, err = cli("distill", *flat, "--max-steps", "1", "--out", str(tmp_path / "r"), "--quiet")
    assert code != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    import re

    assert re.search(match, err), err


def test_distill_then_eval_json(cli, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    code, _, err = cli("distill", "--student", "resnet10t", "--recipe", "supervised", "--data", "synthetic",
                       "--max-steps", "2", "--batch-size", "16", "--image-size", "24", "--out", teacher, "--quiet")
    assert code == 0, err
    run = tmp_path / "kd"
    code, out, err = cli("distill", "--student", "resnet10t", "--teacher", teacher, "--recipe", "mvmr",
                         "--data", "synthetic", "--max-steps", "2", "--batch-size", "16", "--image-size", "24",
                         "--set", "projector_dims=[64,64]", "--out", run, "--quiet")
    assert code == 0, err
    meta = json.loads((run / "run.json").read_text())
    assert meta["teachers"][0]["weights"] and meta["recipe"] == "mvmr"
    code, out, err = cli("eval", run, "--json", tmp_path / "e.json", "--no-linear")
    assert code == 0, err
    res = json.loads((tmp_path / "e.json").read_text())
    assert 0.0 <= res["knn_top1"] <= 1.0 and res["linear_top1"] is None
    assert res["n_train"] == 512 and res["n_query"] == 128
    code, _, err = cli("eval", tmp_path / "missing")
    assert code != 0 and "does not exist" in err
