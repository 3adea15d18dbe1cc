"""scripts/gpu-check.sh --cpu-dry-run: the GPU check's every step at tiny sizes on CPU, so the script cannot rot."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_dry_run_runs_every_step_and_prints_the_table() -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu-check.sh"), "--cpu-dry-run"], capture_output=True,
                          text=True, timeout=1500, cwd=ROOT)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    table = out[out.index("step "):]
    rows = {line.split("  ")[0]: line for line in table.splitlines()}
    assert "PASS" in rows["CUDA tests (sync-free loop, fused optimiser, bf16)"] and "skipped" in table  # skip on CPU
    for mode in ("eager", "compile"):
        line = rows[f"throughput vit_tiny_patch16_224 -> resnet10t 32px fp32 ({mode})"]
        assert "PASS" in line and "speed-up" in line and "ceiling (T+S)/S" in line
    assert "PASS" in rows["compress export --format onnx"] and "model" in rows["compress export --format onnx"]
    assert "PASS" in rows["compress bench --backend ort-cpu"] and "p50" in rows["compress bench --backend ort-cpu"]
    probe = rows["peers.py --probe (the peer tables' cost here)"]  # skips, naming ./gpu-data, without Fashion-MNIST
    assert ("PASS" in probe and "dogo" in probe and "min" in probe) or ("SKIP" in probe and "gpu-data" in probe)
    assert "FAIL" not in table
