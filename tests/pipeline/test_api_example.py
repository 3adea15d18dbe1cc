"""examples/api_pipeline.py runs as a user would run it (a real process), and a second run skips every stage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_api_example_runs_and_is_resumable(tmp_path: Path) -> None:
    out = tmp_path / "api"
    cmd = [sys.executable, str(ROOT / "examples" / "api_pipeline.py"), str(out)]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["ran"] == ["distill", "eval", "export", "bench", "report"]
    html = Path(summary["report"]).read_text()
    assert html.count("data:image/png;base64,") == 2
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout.strip().splitlines()[-1])["ran"] == []
