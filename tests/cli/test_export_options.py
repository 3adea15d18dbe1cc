"""``compress export``'s options: declared once on ExportOptions, range-checked up front, several formats at once."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compressor.export.options import EXPORT_RANGES, ExportOptions
from compressor.models.saved import save_encoder
from compressor.models.students import build_student
from compressor.rundir import RunDir


def _run(root: Path) -> Path:
    torch.manual_seed(0)
    run = root / "run"
    save_encoder(build_student("resnet18", image_size=32), run)
    RunDir(run).write_config({"data": "synthetic"})
    return run


def test_calib_size_minus_one_is_one_line_naming_the_range(tmp_path: Path) -> None:
    """`--calib-size -1` used to exit 0 (an ONNX export ignored it); now a real `compress` process refuses it."""
    run = _run(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "compressor", "export", str(run), "-f", "onnx", "--calib-size", "-1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["error: --calib-size must be from 1 to 100000, got -1"], proc.stderr
    assert "Traceback" not in proc.stderr and not RunDir(run).export_dir.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--check-size", "0"], "--check-size must be from 1 to 100000, got 0"),
    (["--opset", "99"], "--opset must be from 17 to 20"),
    (["--min-cosine", "1.5"], "--min-cosine must be from -1 to 1, got 1.5"),
    (["--min-cosine", "nan"], "--min-cosine must be a number from -1 to 1, got nan"),
    (["--trt-batch", "0,8,32"], "--trt-batch takes positive integers"),
    (["--trt-batch", "8,1,32"], "--trt-batch takes min,opt,max with min ≤ opt ≤ max, not (8, 1, 32)"),
])
def test_every_numeric_option_is_checked_whatever_the_format(tmp_path: Path, cli, args: list[str],
                                                              message: str) -> None:
    """An ONNX export reads neither the calibration nor the TensorRT options: they are checked all the same."""
    run = _run(tmp_path)
    code, _, err = cli("export", run, "--format", "onnx", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not RunDir(run).export_dir.exists()


def test_a_comma_list_exports_each_format(tmp_path: Path, cli) -> None:
    run = _run(tmp_path)
    code, _, err = cli("export", run, "-f", "onnx,bogus", "--check-size", "4")
    assert code == 2 and "unknown export format 'bogus'" in err
    assert not RunDir(run).export_dir.exists()  # every format is known before the first is exported
    code, out, err = cli("export", run, "-f", "onnx, onnx-int8", "--check-size", "4", "--calib-size", "4")
    assert code == 0, err
    exports = json.loads(RunDir(run).manifest_path.read_text())["exports"]
    assert sorted(exports) == ["model.int8.onnx", "model.onnx"]
    assert out.count("manifest:") == 2


def test_each_option_is_declared_once_on_the_dataclass() -> None:
    """Help text on every field, and a range for every numeric one (`compress export` builds its flags from them)."""
    from compressor.utils.coerce import field_hints

    hints = field_hints(ExportOptions)
    for f in dataclasses.fields(ExportOptions):
        assert f.metadata.get("help"), f"ExportOptions.{f.name} has no help text"
        numeric = {int, float} & {hints[f.name], *getattr(hints[f.name], "__args__", ())}
        assert bool(numeric) == (f.name in EXPORT_RANGES), f.name
