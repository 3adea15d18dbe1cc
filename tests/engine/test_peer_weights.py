"""``--peer-weights``: a pair recipe's peer starts from a run's saved student (or a weights file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compressor.engine.config import TrainConfig
from compressor.engine.setup import build_components
from compressor.errors import CompressorError
from compressor.models.saved import save_encoder
from compressor.models.students import build_student


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(student="resnet10t", peer="resnet10t", recipe="dogo", data="synthetic", image_size=32,
                stem="imagenet", max_steps=1, batch_size=4, out=str(tmp_path / "run"))
    return TrainConfig(**{**base, **kw})


def _saved(tmp_path: Path, arch: str = "resnet10t", size: int = 32) -> Path:
    torch.manual_seed(123)
    enc = build_student(arch, size, stem="imagenet")
    with torch.no_grad():
        for p in enc.parameters():
            p.add_(0.1)  # unlike any fresh init
    save_encoder(enc, tmp_path / "trained")
    return tmp_path / "trained"


def test_peer_starts_from_a_run_and_the_student_does_not(tmp_path: Path) -> None:
    run = _saved(tmp_path)
    parts = build_components(_cfg(tmp_path, peer_weights=str(run)))
    ref = build_student("resnet10t", 32, stem="imagenet")
    ref.backbone.load_state_dict({k: v for k, v in _state(run).items()})
    for (k, a), b in zip(parts.recipe.peer.backbone.state_dict().items(), ref.backbone.state_dict().values(),
                         strict=True):
        assert torch.equal(a, b), k
    student = parts.recipe.student.backbone.state_dict()
    assert not torch.equal(student["conv1.0.weight"], ref.backbone.state_dict()["conv1.0.weight"])
    assert parts.recipe.peer.weights_info == {"weights": f"run:{run}"}


def _state(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "student.safetensors"))


def test_a_run_of_another_architecture_is_a_one_line_error(tmp_path: Path) -> None:
    run = _saved(tmp_path, arch="resnet18d")
    with pytest.raises(CompressorError, match=r"saved resnet18d at 32 px .* the peer is resnet10t at 32 px .*"
                                              r"pass a run of the same --peer"):
        build_components(_cfg(tmp_path, peer_weights=str(run)))


def test_peer_weights_without_a_peer_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(CompressorError, match="pass --peer NAME too"):
        build_components(_cfg(tmp_path, recipe="simclr", peer=None, peer_weights=str(tmp_path)))


def test_run_json_records_where_the_peer_started(tmp_path: Path) -> None:
    from compressor.engine.trainer import train

    run = _saved(tmp_path)
    out = train(_cfg(tmp_path, peer_weights=str(run)), progress=False)
    info = json.loads((Path(out) / "run.json").read_text())
    assert info["peer"] == {"weights": f"run:{run}"}
    assert info["student"] == {"weights": "random init"}
