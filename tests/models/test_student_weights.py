"""``--student-weights``: local timm/torchvision files and hub-cache weights land strictly, classifier dropped."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from compressor.errors import CompressorError
from compressor.models.student_weights import load_student_weights
from compressor.models.students import build_student
from tests.models.test_teachers import _batch, _randomize, _same


def test_timm_safetensors_file(tmp_path: Path) -> None:
    ref = _randomize(timm.create_model("resnet10t", num_classes=7))
    path = tmp_path / "model.safetensors"
    save_file(ref.state_dict(), str(path))
    student = build_student("resnet10t", 32)
    info = load_student_weights(student, str(path))
    _same(student.eval(), lambda x: ref.forward_head(ref.forward_features(x), pre_logits=True), _batch(32))
    assert info == {"weights": str(path), "dropped_keys": ["fc.bias", "fc.weight"]}


def test_torchvision_file_in_a_training_checkpoint(tmp_path: Path) -> None:
    ref = torchvision.models.resnet18(num_classes=10)
    ref.fc = torch.nn.Identity()
    _randomize(ref)
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}
    state |= {"module.fc.weight": torch.randn(10, 512), "module.fc.bias": torch.randn(10)}
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save({"epoch": 3, "state_dict": state}, path)
    student = build_student("resnet18", 32)
    load_student_weights(student, str(path))
    _same(student.eval(), ref, _batch(32))


def test_wrong_architecture_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "r18.safetensors"
    save_file(timm.create_model("resnet18").state_dict(), str(path))
    with pytest.raises(CompressorError, match=r"does not fit student resnet10t \(.*shape mismatches"):
        load_student_weights(build_student("resnet10t", 32), str(path))
    with pytest.raises(CompressorError, match="does not exist; check --student-weights"):
        load_student_weights(build_student("resnet10t", 32), str(tmp_path / "nope.pth"))


def test_pretrained_from_the_hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """timm's default weights found in a hub cache laid out the way huggingface_hub writes it, offline."""
    ref = _randomize(timm.create_model("resnet10t"))
    snap = tmp_path / "hf" / "models--timm--resnet10t.c3_in1k" / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    save_file(ref.state_dict(), str(snap / "model.safetensors"))
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    student = build_student("resnet10t", 32)
    info = load_student_weights(student, "pretrained")
    assert info["weights"] == "pretrained:hf-hub:timm/resnet10t.c3_in1k/model.safetensors"
    _same(student.eval(), lambda x: ref.forward_head(ref.forward_features(x), pre_logits=True), _batch(32))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(CompressorError, match=r"resnet10t\.c3_in1k/resolve/main/model\.safetensors"):
        load_student_weights(build_student("resnet10t", 32), "pretrained")


def test_distill_records_student_weights_in_run_json(cli, tmp_path: Path) -> None:
    ref = _randomize(timm.create_model("resnet10t"))
    path = tmp_path / "start.safetensors"
    save_file(ref.state_dict(), str(path))
    run = tmp_path / "run"
    code, _, err = cli("distill", "--student", "resnet10t", "--student-weights", path, "--recipe", "simclr",
                       "--data", "synthetic", "--max-steps", "1", "--batch-size", "8", "--image-size", "24",
                       "--out", run, "--quiet")
    assert code == 0, err
    meta = json.loads((run / "run.json").read_text())
    assert meta["student"] == {"weights": str(path), "dropped_keys": ["fc.bias", "fc.weight"]}
    cfg = (run / "config.yaml").read_text()
    assert f"student_weights: {path}" in cfg
