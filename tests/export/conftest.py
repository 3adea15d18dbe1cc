"""A small real run (ResNet-18 at 64 px on the synthetic data) and its exports, shared by the export tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compressor.models.saved import save_encoder
from compressor.models.students import build_student

# Small figures keep the whole folder well under a minute and a half on two cores.
FAST = {"check_size": 16, "calib_size": 16}


def make_run(root: Path, arch: str = "resnet18", image_size: int = 64) -> Path:
    torch.manual_seed(0)
    run = root / "run"
    save_encoder(build_student(arch, image_size=image_size), run)
    (run / "config.yaml").write_text("data: synthetic\n")
    return run


@pytest.fixture(scope="session")
def exported_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with ``export/model.onnx`` and ``export/model.int8.onnx`` (exported once per session)."""
    from compressor.export import ExportOptions, export_run

    run = make_run(tmp_path_factory.mktemp("exported"))
    export_run(run, ExportOptions(format="onnx", **FAST))
    export_run(run, ExportOptions(format="onnx-int8", **FAST))
    return run


@pytest.fixture
def fresh_run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


@pytest.fixture
def fast() -> dict:
    """Export options that keep a test quick (few parity and calibration images)."""
    return dict(FAST)
