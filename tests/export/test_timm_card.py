"""``--format timm`` makes a hub repository: uploaded as it is, ``timm.create_model("hf-hub:ORG/NAME",
pretrained=True)`` rebuilds the student, and its model card carries the run's own figures.

No network: the exported folder is laid out in a temporary Hugging Face cache as a download of the uploaded
repository would leave it (tests/models/test_hf_hub.py: ``write_hub_repo``), and huggingface_hub runs offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
import yaml

from compressor.models.saved import load_encoder, save_encoder
from compressor.models.students import build_student
from tests.models.test_hf_hub import push, randomized, write_hub_repo
from tests.models.test_teachers import _randomize

EVAL = {"knn_top1": 0.61375, "linear_top1": 0.72541, "n_train": 480, "n_query": 120, "data": "fashion-mnist",
        "probe": {"kind": "lbfgs-logreg", "C": 0.25, "grid": [0.25, 1.0]}, "teacher": {"knn_top1": 0.80125}}
BENCH = {"results": [{"backend": "ort-cpu", "format": "onnx-int8", "precision": "int8", "batch": 8,
                      "p50_ms": 3.4567, "throughput_ips": 2314.2}]}


def _run(root: Path, student: torch.nn.Module, info_student: dict) -> Path:
    run = root / "run"
    save_encoder(student, run, recipe="feature-kd", steps=7,
                 teachers=[{"name": "dinov2-vit-s14", "weights": "pretrained:hf-hub:timm/x/model.safetensors"}])
    (run / "config.yaml").write_text("data: /data/fm_disk\nrecipe: feature-kd\n")
    (run / "run.json").write_text(json.dumps({"recipe": "feature-kd", "total_steps": 9, "student": info_student}))
    (run / "eval.json").write_text(json.dumps(EVAL))
    (run / "bench.json").write_text(json.dumps(BENCH))
    return run


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache, offline, for timm's own hf-hub path (huggingface_hub read its settings at import)."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_uploaded_folder_loads_through_timms_hub_path(cli, tmp_path: Path, offline_cache: Path) -> None:
    run = _run(tmp_path, _randomize(build_student("resnet10t", 40)), {"weights": "random init"})
    code, _, err = cli("export", run, "--format", "timm")
    assert code == 0, err
    folder = run / "export" / "timm"
    write_hub_repo(offline_cache, "org/distilled", folder)
    model = timm.create_model("hf-hub:org/distilled", pretrained=True).eval()
    x = torch.randn(3, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), load_encoder(run)(x), rtol=0, atol=0)
    data_cfg = timm.data.resolve_data_config({}, model=model)
    assert tuple(data_cfg["input_size"]) == (3, 40, 40) and data_cfg["crop_pct"] == 1.0


def test_model_card_holds_the_runs_figures(cli, tmp_path: Path) -> None:
    run = _run(tmp_path, _randomize(build_student("resnet10t", 40)), {"weights": "random init"})
    assert cli("export", run, "--format", "timm")[0] == 0
    card = (run / "export" / "timm" / "README.md").read_text()
    _, front, body = card.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "timm" and meta["pipeline_tag"] == "image-feature-extraction"
    ev = json.loads((run / "eval.json").read_text())
    for figure in (ev["knn_top1"], ev["linear_top1"], ev["teacher"]["knn_top1"]):
        assert f"| {100 * figure:.2f}% |" in body
    assert f"linear-probe top-1 ({ev['probe']['kind']}, C={ev['probe']['C']:g})" in body
    assert f"{ev['n_train']} bank / {ev['n_query']} query" in body
    assert "`dinov2-vit-s14`" in body and "`feature-kd`" in body and "`/data/fm_disk`" in body
    assert "| Steps | 7 of 9 |" in body and "| ort-cpu | onnx-int8 | int8 | 8 | 3.46 |" in body
    assert 'timm.create_model("hf-hub:ORG/NAME", pretrained=True)' in body and "hf upload ORG/NAME" in body
    # the figures come from eval.json: new figures, new card; none, and the card says how to get them
    (run / "eval.json").write_text(json.dumps({**ev, "knn_top1": 0.33333, "linear_top1": None}))
    assert cli("export", run, "--format", "timm")[0] == 0
    card = (run / "export" / "timm" / "README.md").read_text()
    assert "| 33.33% |" in card and f"{100 * ev['knn_top1']:.2f}%" not in card and "linear-probe" not in card
    (run / "eval.json").unlink()
    (run / "bench.json").unlink()
    assert cli("export", run, "--format", "timm")[0] == 0
    card = (run / "export" / "timm" / "README.md").read_text()
    assert "Not evaluated yet: run `compress eval RUN`" in card and "Not measured yet" in card


def test_hub_student_exports_as_its_timm_architecture(cli, tmp_path: Path, offline_cache: Path) -> None:
    """A student that came from ``hf-hub:org/base`` uploads as the architecture that repository names."""
    push(offline_cache, "org/base", randomized("resnet10t", 7, num_classes=5))
    student = build_student("hf-hub:org/base", 40)
    run = _run(tmp_path, _randomize(student), student.weights_info)
    assert cli("export", run, "--format", "timm")[0] == 0
    folder = run / "export" / "timm"
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architecture"] == "resnet10t" and cfg["model_args"] == {"in_chans": 3, "global_pool": "avg"}
    card = (folder / "README.md").read_text()
    assert yaml.safe_load(card.split("---\n")[1])["base_model"] == "org/base"
    assert "hf-hub:org/base/model.safetensors" in card
    write_hub_repo(offline_cache, "org/distilled", folder)
    model = timm.create_model("hf-hub:org/distilled", pretrained=True).eval()
    x = torch.randn(2, 3, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(x), load_encoder(run)(x), rtol=0, atol=0)
