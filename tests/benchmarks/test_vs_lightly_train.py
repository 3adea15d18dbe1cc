"""benchmarks/vs_lightly_train.py: the shared teacher file and the --quick comparison end to end.

lightly-train is a benchmark-only dependency (the ``bench`` extra); without it these tests skip."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tests.conftest import load_benchmark, requires_fmnist

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("lightly_train", reason="lightly-train is not installed (pip install -e '.[bench]')")


def test_stored_pos_embed_resamples_back_to_the_trained_grid_in_both_tools() -> None:
    """The official 37×37 grid written for a 4×4 training grid, resampled the way each tool does (written here
    with F.interpolate from each tool's documented settings, not with the script's helpers)."""
    bench = load_benchmark("vs_lightly_train")
    torch.manual_seed(0)
    trained = torch.randn(1, 17, 8)  # CLS + 4×4 positions, 8 channels
    stored = bench.stored_pos_embed(trained, grid=4)
    assert stored.shape == (1, 1 + 37 * 37, 8) and torch.equal(stored[:, 0], trained[:, 0])
    grid = stored[0, 1:].T.reshape(1, 8, 37, 37)
    timm_way = F.interpolate(grid, size=(4, 4), mode="bicubic", antialias=True, align_corners=False)
    dinov2_way = F.interpolate(grid, scale_factor=(4.1 / 37, 4.1 / 37), mode="bicubic", antialias=False)
    want = trained[0, 1:].T.reshape(1, 8, 4, 4)
    assert (timm_way - want).abs().max() < 1e-4 and (dinov2_way - want).abs().max() < 1e-4
    # a plain bicubic upsampling does not survive the two resamplings: the correction is needed
    plain = F.interpolate(want, size=(37, 37), mode="bicubic", align_corners=False)
    assert (F.interpolate(plain, size=(4, 4), mode="bicubic", antialias=True) - want).abs().max() > 1e-2


@pytest.mark.slow
@requires_fmnist
def test_quick_comparison_trains_both_tools_on_one_teacher(tmp_path: Path) -> None:
    out = tmp_path / "vs"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "vs_lightly_train.py"), "--out", str(out),
                           "--quick"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "vs_lightly_train.json").read_text())
    check = res["teacher_check"]
    assert check["cls (ours vs lightly-train)"] < 1e-3 and check["patch tokens (ours vs lightly-train v3)"] < 1e-3
    assert check["cls (file vs the trained network)"] < 1e-3
    runs = res["results"]
    assert {"fashion-mnist/lt-distillation-s0", "fashion-mnist/feature-kd-s0", "fashion-mnist/mvmr-cache-s0",
            "fashion-mnist/cache-build"} == set(runs)
    for key in ("lt-distillation", "feature-kd", "mvmr-cache"):
        r = runs[f"fashion-mnist/{key}-s0"]
        assert 0 <= r["knn"] <= 100 and 0 <= r["linear"] <= 100
        assert r["wall_s"] >= r["train_s"] > 0 and r["img_s"] > 0 and r["rss_mb"] > 100
    assert runs["fashion-mnist/lt-distillation-s0"]["onnx_ms"] is None  # its pre-training export is no ONNX file
    assert runs["fashion-mnist/feature-kd-s0"]["onnx_ms"] > 0 and runs["fashion-mnist/mvmr-cache-s0"]["onnx_ms"] is None
    # the student lightly-train trained is the one scored: its export loads into timm's resnet18
    assert (out / "runs" / "fashion-mnist" / "lt-distillation-s0" / "exported_models" / "exported_last.pt").exists()
    # the cached run read the teacher cache the script filled ahead (the teacher was not run)
    cfg = (out / "runs" / "fashion-mnist" / "mvmr-cache-s0" / "config.yaml").read_text()
    assert "teacher_cache: " + str(out / "teacher-cache" / "fashion-mnist") in cfg
    table = (out / "vs_lightly_train.md").read_text()
    assert "| fashion-mnist | distillation (v3, its default) | lightly-train | defaults |" in table
    assert "| fashion-mnist | teacher (ViT-S/14, supervised) |" in table
