"""What a finished run leaves: the last checkpoint only (unless --keep-checkpoints), files 0644, eval.json."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _distill(cli, out: Path, *extra: str) -> None:
    code, _, err = cli("distill", "--student", "resnet10t", "--recipe", "simclr", "--data", "synthetic",
                       "--max-steps", "3", "--checkpoint-every", "1", "--batch-size", "8", "--image-size", "24",
                       "--out", out, "--quiet", *extra)
    assert code == 0, err


def test_finished_run_files(cli, tmp_path: Path, umask_022: None) -> None:
    run = tmp_path / "run"
    _distill(cli, run)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000003.pt"]
    code, _, err = cli("eval", run, "--no-linear", "--max-train", "64", "--max-val", "32")
    assert code == 0, err
    res = json.loads((run / "eval.json").read_text())
    assert 0.0 <= res["knn_top1"] <= 1.0 and res["data"] == "synthetic"
    files = [p for p in run.rglob("*") if p.is_file()]
    assert {"student.safetensors", "student.json", "run.json", "config.yaml", "eval.json"} <= {p.name for p in files}
    modes = {str(p.relative_to(run)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert set(modes.values()) == {"0o644"}, modes


def test_keep_checkpoints_flag(cli, tmp_path: Path) -> None:
    run = tmp_path / "run"
    _distill(cli, run, "--keep-checkpoints", "2")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002.pt", "step_0000003.pt"]
