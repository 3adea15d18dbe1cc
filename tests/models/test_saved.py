"""The saved-model format: the weights file carries its own description in the safetensors header."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from compressor.models.saved import load_encoder, save_encoder
from compressor.models.students import build_student
from compressor.rundir import RunDir


def test_student_safetensors_describes_itself(tmp_path: Path) -> None:
    """``student.safetensors`` copied alone still says how to rebuild and feed it (issue 26)."""
    torch.manual_seed(0)
    enc = build_student("resnet10t", 32, stem="small")
    save_encoder(enc, tmp_path, extra_field="kept in student.json only")
    with safe_open(str(RunDir(tmp_path).weights_path()), framework="pt") as f:
        header = f.metadata()
    assert header["format"] == "pt"  # what Hugging Face loaders check
    assert header["compressor_format"] == "compressor-encoder/1"
    assert header["arch"] == "resnet10t" and header["stem"] == "small"
    assert int(header["image_size"]) == 32 and int(header["embed_dim"]) == enc.embed_dim == 512
    assert json.loads(header["mean"]) == list(enc.spec.mean)
    assert json.loads(header["std"]) == list(enc.spec.std)
    # the header agrees with student.json, which stays the file eval/export/bench read
    meta = RunDir(tmp_path).read_meta()
    for key in ("arch", "image_size", "embed_dim", "stem"):
        assert header[key] == str(meta[key])
    assert "extra_field" not in header and meta["extra_field"] == "kept in student.json only"
    back = load_encoder(tmp_path)
    assert back.stem == "small" and back.embed_dim == 512
