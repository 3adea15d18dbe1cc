"""``compress export`` through the CLI: the table, the manifest, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path


def test_export_onnx_cli(fresh_run: Path, cli) -> None:
    code, out, err = cli("export", fresh_run, "--format", "onnx", "--check-size", "8")
    assert code == 0, err
    assert "mean cosine vs PyTorch fp32" in out and "manifest:" in out
    entry = json.loads((fresh_run / "export" / "manifest.json").read_text())["exports"]["model.onnx"]
    assert entry["fidelity"]["n_images"] == 8


def test_export_cli_errors(fresh_run: Path, tmp_path: Path, cli) -> None:
    code, _, err = cli("export", tmp_path / "missing", "--format", "onnx")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("export", fresh_run, "--format", "tensorrt")
    assert code == 2 and "unknown export format 'tensorrt'" in err
    code, _, err = cli("export", fresh_run, "--format", "trt-fp16", "--trt-batch", "1,8")
    assert code == 2 and "--trt-batch takes min,opt,max" in err
