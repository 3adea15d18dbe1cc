"""A real (tiny) training run: the run directory, exact resume from a checkpoint, a frozen teacher."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from compressor.engine.checkpoint import list_checkpoints
from compressor.engine.config import TrainConfig
from compressor.engine.trainer import train
from compressor.errors import CompressorError
from compressor.models.saved import load_encoder


def _cfg(out: Path, **kw) -> TrainConfig:
    base = dict(student="resnet10t", recipe="simclr", data="synthetic", max_images=48, batch_size=16,
                image_size=24, max_steps=6, checkpoint_every=3, keep_checkpoints=2, out=str(out), seed=1,
                recipe_config={"projector_dims": [32, 16]})
    return TrainConfig(**{**base, **kw})


def test_run_directory_and_exact_resume(tmp_path: Path) -> None:
    a = train(_cfg(tmp_path / "a"), progress=False)
    for name in ("config.yaml", "metrics.jsonl", "run.json", "student.safetensors", "student.json"):
        assert (a / name).is_file(), name
    assert any((a / "tb").iterdir())
    assert [s for s, _ in list_checkpoints(a)] == [3, 6]
    meta = json.loads((a / "student.json").read_text())
    assert meta["arch"] == "resnet10t" and meta["image_size"] == 24 and meta["embed_dim"] == 512
    rows = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    assert rows and all({"loss", "lr", "ips"} <= set(r) for r in rows)

    # The same run, "killed" after step 3: drop everything written later, then resume.
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for f in ("student.safetensors", "student.json"):
        (b / f).unlink()
    (b / "checkpoints" / "step_0000006.pt").unlink()
    train(_cfg(b, resume=True), progress=False)
    wa, wb = load_file(str(a / "student.safetensors")), load_file(str(b / "student.safetensors"))
    assert wa.keys() == wb.keys()
    assert max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa) <= 1e-6
    start = load_encoder(a)
    assert isinstance(start(torch.zeros(1, 3, 24, 24)), torch.Tensor)


def test_refuses_to_overwrite_and_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    train(_cfg(tmp_path / "r", max_steps=3), progress=False)
    with pytest.raises(CompressorError, match="--resume"):
        train(_cfg(tmp_path / "r", max_steps=3), progress=False)
    with pytest.raises(CompressorError, match="no checkpoint"):
        train(_cfg(tmp_path / "empty", resume=True), progress=False)


def test_corrupt_last_checkpoint_falls_back(tmp_path: Path, caplog) -> None:
    run = train(_cfg(tmp_path / "c"), progress=False)
    (run / "checkpoints" / "step_0000006.pt").write_bytes(b"PK\x03\x04 truncated")
    train(_cfg(run, resume=True), progress=False)
    assert "unreadable" in caplog.text
