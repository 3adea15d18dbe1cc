"""benchmarks/train_throughput.py end to end at a CI size: every figure it promises is printed and sane."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_small_run_prints_live_cached_ceiling_and_loader_rates() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_throughput.py"), "--teacher",
                           "vit_tiny_patch16_224", "--students", "resnet10t", "--image-size", "32", "--batch", "4",
                           "--steps", "1", "--loader-images", "4", "--device", "cpu"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert re.search(r"matmul peak: bfloat16 \d+ GFLOP/s, float32 \d+ GFLOP/s", out), out
    m = re.search(r"live ([\d.]+) img/s, cached ([\d.]+) img/s, speed-up ([\d.]+)x of ceiling \(T\+S\)/S = ([\d.]+)x",
                  out)
    assert m, out
    live, cached, speedup, ceiling = map(float, m.groups())
    assert live > 0 and cached > 0 and ceiling > 1  # the teacher's FLOPs leave the cached step
    assert abs(speedup - cached / live) < 0.02 * speedup + 0.01
    rates = re.search(r"t_o ([\d.]+) img/s; without t_o \(complete cache\) ([\d.]+) img/s", out)
    assert rates and all(float(r) > 0 for r in rates.groups()), out
