"""Reading checkpoint files safely: wrappers, prefixes, dropped groups, refusals and damaged files."""

from __future__ import annotations

import argparse
import os
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from compressor.errors import CompressorError
from compressor.models.checkpoints import Layout, load_strict, read_checkpoint, read_state_dict, remap, unwrap


class _Evil:
    """Unpickling this would run ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def _tensors() -> dict[str, torch.Tensor]:
    return {"a.weight": torch.randn(3, 2), "a.bias": torch.randn(3)}


def test_flat_zip_legacy_and_safetensors_read_back(tmp_path: Path) -> None:
    sd = _tensors()
    torch.save(sd, tmp_path / "zip.pt")
    torch.save(sd, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    save_file(sd, str(tmp_path / "w.safetensors"))
    save_file(sd, str(tmp_path / "no_suffix.bin"))  # detected by its header, not its name
    for name in ("zip.pt", "legacy.pt", "w.safetensors", "no_suffix.bin"):
        got = read_state_dict(tmp_path / name)
        assert got.keys() == sd.keys() and all(torch.equal(got[k], sd[k]) for k in sd), name


def test_wrappers_and_argparse_namespace(tmp_path: Path) -> None:
    sd = _tensors()
    ckpt = {"model": sd, "args": argparse.Namespace(lr=1.5e-4, model="mae"), "epoch": 799,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}
    torch.save(ckpt, tmp_path / "mae.pth")
    assert read_state_dict(tmp_path / "mae.pth").keys() == sd.keys()
    assert unwrap({"state_dict": {"model": sd}, "epoch": 3}).keys() == sd.keys()
    assert unwrap({"state_dict_ema": sd, "epoch": 1}).keys() == sd.keys()
    with pytest.raises(CompressorError, match="no tensors"):
        unwrap({"epoch": 1, "arch": "vit_base"})


def test_remap_strips_module_keeps_prefix_and_names_dropped_groups() -> None:
    t = torch.zeros(1)
    state = {"module.encoder_q.conv1.weight": t, "module.encoder_q.fc.0.weight": t,
             "module.encoder_k.conv1.weight": t, "module.queue": t, "module.queue_ptr": t, "other": t}
    layout = Layout("encoder_q.", (("projector", ("encoder_q.fc.*",)), ("key encoder", ("encoder_k.*",)),
                                   ("queue", ("queue", "queue_ptr"))))
    out, dropped = remap(state, layout)
    assert set(out) == {"conv1.weight", "other"}  # unclaimed keys stay, so a strict load reports them
    assert dropped == {"projector": ["module.encoder_q.fc.0.weight"],
                       "key encoder": ["module.encoder_k.conv1.weight"],
                       "queue": ["module.queue", "module.queue_ptr"]}
    # a file already converted to the bare backbone (no prefix anywhere) is taken as it is
    out, dropped = remap({"conv1.weight": t, "fc.0.weight": t}, layout)
    assert set(out) == {"conv1.weight"} and list(dropped) == ["projector"]


@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    ckpt = {"state_dict": _tensors(), "x": _Evil(marker)}
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(CompressorError, match="--trust-checkpoint") as err:
        read_state_dict(path)
    assert "system" in str(err.value)
    assert not marker.exists()


def test_trust_allows_exactly_the_named_classes(tmp_path: Path) -> None:
    path = tmp_path / "frac.pt"
    torch.save({"state_dict": _tensors(), "ratio": Fraction(1, 3)}, path)
    with pytest.raises(CompressorError, match=r"fractions\.Fraction"):
        read_checkpoint(path)
    assert read_checkpoint(path, trust=True)["ratio"] == Fraction(1, 3)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_needs_trust(tmp_path: Path) -> None:
    path = tmp_path / "jit.pt"
    lin = nn.Linear(2, 3)
    torch.jit.save(torch.jit.trace(lin, torch.randn(1, 2)), str(path))
    with pytest.raises(CompressorError, match=r"TorchScript.*--trust-checkpoint"):
        read_state_dict(path)
    got = read_state_dict(path, trust=True)
    assert torch.equal(got["weight"], lin.weight.detach())


@pytest.mark.parametrize("kind", ["zip", "legacy", "safetensors", "garbage"])
def test_truncated_or_corrupt_file_names_the_file(tmp_path: Path, kind: str) -> None:
    sd = {"w": torch.randn(4096)}
    path = tmp_path / f"ckpt.{kind}"
    if kind == "safetensors":
        path = tmp_path / "ckpt.safetensors"
        save_file(sd, str(path))
    elif kind == "garbage":
        path.write_bytes(os.urandom(1000))
    else:
        torch.save(sd, path, _use_new_zipfile_serialization=kind == "zip")
    if kind != "garbage":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CompressorError, match="truncated or corrupt") as err:
        read_state_dict(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CompressorError, match="does not exist"):
        read_state_dict(tmp_path / "nope.pth")


def test_load_strict_names_missing_unexpected_and_shapes() -> None:
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    state = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(5), "extra.weight": torch.zeros(1)}
    with pytest.raises(CompressorError) as err:
        load_strict(model, state, source="f.pth", what="tiny")
    msg = str(err.value)
    assert "missing keys: 1.weight, 1.bias" in msg and "unexpected keys: extra.weight" in msg
    assert "0.bias [5] vs [3]" in msg and "another architecture" in msg
    good = {k: torch.full_like(v, 0.5) for k, v in model.state_dict().items()}
    load_strict(model, good, source="f.pth", what="tiny")
    assert all(torch.equal(v, good[k]) for k, v in model.state_dict().items())
