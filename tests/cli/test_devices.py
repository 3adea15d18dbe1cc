"""``--device`` takes auto, cpu, cuda, cuda:N and mps; what this machine lacks is one line naming the fix."""

from __future__ import annotations

import re

import pytest
import torch

from compressor.engine.setup import resolve_device
from compressor.errors import CompressorError
from tests.cli.catalogue import TINY, one_line_error

NO_GPU = not (torch.cuda.is_available() or torch.backends.mps.is_available())


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without GPUs")
@pytest.mark.parametrize(("device", "message"), [
    ("cuda:1", "--device cuda:1 was asked for but no CUDA device is visible; use --device cpu"),
    ("mps", "--device mps was asked for but MPS (an Apple-silicon GPU with a torch built for it) is not available "
            "here; use --device cpu"),
    ("tpu", "unknown device 'tpu'; use auto, cpu, cuda, cuda:N or mps"),
    ("cuda:x", "unknown device 'cuda:x'; use auto, cpu, cuda, cuda:N or mps"),
])
def test_distill_refuses_a_device_this_machine_lacks(cli, tmp_path, device: str, message: str) -> None:
    one_line_error(cli, "distill", *TINY, "--max-steps", "1", "--device", device, "--out", tmp_path / "r",
                   match="^error: " + re.escape(message) + "$")
    assert not (tmp_path / "r" / "student.safetensors").exists()


def test_cuda_index_is_checked_against_the_device_count(monkeypatch) -> None:
    """The count rule itself, on a CPU machine: torch's own CUDA queries answer as a one-GPU machine would."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(CompressorError, match=re.escape("this machine shows 1 CUDA device(s), cuda:0 to cuda:0")):
        resolve_device("cuda:1")


def test_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
