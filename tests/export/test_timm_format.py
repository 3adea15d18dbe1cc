"""``--format timm``: timm's ``local-dir:`` loader rebuilds the student exactly, with its preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image

from compressor.data.transforms import eval_transform
from compressor.models.saved import load_encoder, save_encoder
from compressor.models.students import build_student
from tests.models.test_teachers import _randomize


def _run(root: Path, arch: str, size: int) -> Path:
    run = root / "run"
    student = _randomize(build_student(arch, size))
    save_encoder(student, run, recipe="mvmr", steps=7,
                 teachers=[{"name": "dinov2-vit-s14", "weights": "dinov2_vits14_pretrain.pth"}])
    (run / "config.yaml").write_text("data: synthetic\nrecipe: mvmr\n")
    return run


@pytest.mark.parametrize(("arch", "size"), [("test_vit", 32), ("resnet10t", 40)])
def test_local_dir_rebuilds_the_student(cli, tmp_path: Path, arch: str, size: int) -> None:
    run = _run(tmp_path, arch, size)
    (run / "eval.json").write_text(json.dumps({"knn_top1": 0.5, "data": "synthetic"}))
    (run / "bench.json").write_text(json.dumps({"results": [
        {"backend": "ort-cpu", "format": "onnx", "precision": "fp32", "batch": 1, "p50_ms": 1.25,
         "throughput_ips": 800.0}]}))
    code, _, err = cli("export", run, "--format", "timm")
    assert code == 0, err
    folder = run / "export" / "timm"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    student = load_encoder(run)
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), student(x), rtol=0, atol=0)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == arch and cfg["num_classes"] == 0
    assert cfg["model_args"] == ({"img_size": size} if arch == "test_vit" else {})
    card = (folder / "README.md").read_text()
    want = ("dinov2-vit-s14", "mvmr", "synthetic", "50.00% kNN", "| ort-cpu | onnx | fp32 | 1 | 1.25 |")
    assert all(s in card for s in want)
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert manifest["exports"]["timm"]["fidelity"]["max_abs_diff"] == 0.0


def test_timm_preprocessing_is_the_training_one(tmp_path: Path) -> None:
    """timm's transform from the exported config gives the pixels our eval transform gives (not crop 0.875/bicubic)."""
    run = _run(tmp_path, "resnet10t", 40)
    from compressor.export import ExportOptions, export_run

    export_run(run, ExportOptions(format="timm"))
    model = timm.create_model(f"local-dir:{run / 'export' / 'timm'}")
    data_cfg = timm.data.resolve_data_config({}, model=model)
    assert data_cfg["crop_pct"] == 1.0 and data_cfg["interpolation"] == "bilinear"
    g = torch.Generator().manual_seed(0)
    img = Image.fromarray(torch.randint(0, 256, (57, 83, 3), generator=g, dtype=torch.uint8).numpy())
    ours = eval_transform(load_encoder(run).spec)(img)
    theirs = timm.data.create_transform(**data_cfg)(img)
    torch.testing.assert_close(theirs, ours, atol=1e-6, rtol=0)


def test_small_stem_student_is_refused_naming_onnx(cli, tmp_path: Path) -> None:
    """timm's loader would build its own stem: the rebuild check failed with 'please report this' before."""
    run = tmp_path / "run"
    save_encoder(_randomize(build_student("resnet10t", 32, stem="small")), run, recipe="mvmr", steps=7, teachers=[])
    (run / "config.yaml").write_text("data: synthetic\nrecipe: mvmr\n")
    code, _, err = cli("export", run, "--format", "timm")
    assert code != 0 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error: {run}'s student has the small-input stem (--stem small, or auto below 96 px), which timm's loader "
        "does not rebuild; export it with --format onnx, or distil with --stem imagenet for a timm folder"]
    assert not (run / "export" / "timm" / "model.safetensors").exists()
