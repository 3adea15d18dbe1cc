"""benchmarks/quality.py end to end at --quick budgets: every row trained, scored and tabulated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import requires_fmnist

ROOT = Path(__file__).resolve().parents[2]


@requires_fmnist
def test_quick_table_has_every_row_and_its_control(tmp_path: Path) -> None:
    out = tmp_path / "q"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--out", str(out), "--quick",
                           "--recipes", "feature-kd", "dogo"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "quality.json").read_text())
    # the student and the pair's peer at initialisation: what training adds to random weights
    assert set(res["reference"]) == {"teacher", "raw pixels", "resnet10t at initialisation",
                                     "resnet18 at initialisation"}
    labels = {r["label"]: r for r in res["rows"]}
    assert {"student alone (simclr)", "feature-kd from the teacher", "resnet10t with dogo",
            "resnet10t alone (dogo control)", "resnet18 with dogo", "resnet18 alone (dogo control)"} == set(labels)
    assert labels["feature-kd from the teacher"]["control"] == "student alone (simclr)"
    for r in res["rows"]:
        assert len(r["knn"]) == 1 and all(0 <= v <= 100 for v in r["knn"] + r["linear"])
    # the control of a peer recipe is that recipe with its distillation switched off
    cfg = (out / "dogo-control-s0" / "config.yaml").read_text()
    assert "w_1: 0.0" in cfg and "w_2: 0.0" in cfg
    table = (out / "quality.md").read_text()
    assert "| feature-kd from the teacher |" in table and "% of teacher kNN" in table
