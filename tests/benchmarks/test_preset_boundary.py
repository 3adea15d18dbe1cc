"""benchmarks/preset_boundary.py at --quick budgets: both presets, both lengths, the gains from the scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import requires_fmnist

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@requires_fmnist
def test_quick_boundary_trains_the_recipe_and_its_control_under_both_presets(tmp_path: Path) -> None:
    out = tmp_path / "b"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "preset_boundary.py"), "--out", str(out),
                           "--quick", "--steps", "2", "3", "--seeds", "0"], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "boundary.json").read_text())
    assert res["recipe"] == "feature-kd" and set(res["results"]) == {"2", "3"}
    for by_preset in res["results"].values():
        assert set(by_preset) == {"short", "paper"}
        for r in by_preset.values():
            assert len(r["recipe_knn"]) == len(r["control_knn"]) == 1
            assert r["knn_gain"]["mean"] == pytest.approx(r["recipe_knn"][0] - r["control_knn"][0])
            assert r["knn_gain"]["half_spread"] == 0.0
    # each run trained under the preset it is filed under, whatever its length (auto would pick short)
    for preset, crop in (("short", 0.8), ("paper", 0.2)):
        for recipe in ("feature-kd", "simclr"):
            cfg = yaml.safe_load((out / f"{recipe}-2steps-{preset}-s0" / "config.yaml").read_text())["recipe_config"]
            assert (cfg["preset"], cfg["crop_scale_min"]) == (preset, crop)
    table = (out / "boundary.md").read_text()
    assert table.count("| short |") == table.count("| paper |") == 2


def test_a_recipe_that_is_not_teacher_to_student_is_refused() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "preset_boundary.py"), "--recipe", "dogo",
                           "--out", "/nonexistent/never-written"], capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "not a teacher→student recipe; pick one of" in proc.stderr
    assert "Traceback" not in proc.stderr
