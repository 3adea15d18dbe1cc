"""`compress run` killed with SIGKILL in each of its stages, then run again: nothing corrupt, nothing lost.

One job, stopped five times: the first time while `distill` runs, then, each rerun, while the next stage
runs (eval, export, bench, report), as a preempted job script would be requeued. A kill -9 leaves no
handler a chance: what must hold is what the atomic writes and the stage records promise. After each kill
every JSON file of the run parses; the last rerun finishes every stage, and the export manifest matches
the files on disk byte for byte (size and SHA-256).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from compressor.manifest import read_manifest, verify_export
from tests.pipeline.test_pipeline import TINY

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

STAGES = ["distill", "eval", "export", "bench", "report"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _records(run: Path) -> dict:
    path = run / "pipeline.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _in_flight(run: Path) -> str | None:
    """The stage that has started and not finished (None: none has yet)."""
    return next((name for name, rec in _records(run).items() if not rec.get("done")), None)


def _all_json_parses(run: Path) -> None:
    for path in run.rglob("*.json"):
        json.loads(path.read_text())  # a torn write would raise here


def test_kill_9_in_each_stage_then_rerun_finishes_with_a_consistent_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = tmp_path / "tiny.yaml"
    # 40 steps: distill lasts long enough to be caught in flight
    config.write_text(yaml.safe_dump({**TINY, "max_steps": 40, "out": str(run)}))
    cmd = [sys.executable, "-m", "compressor", "run", str(config), "--quick", "--quiet"]
    killed_in = []
    for stage in STAGES:
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        t0 = time.time()
        while _in_flight(run) != stage:
            assert proc.poll() is None, f"finished before {stage} could be caught: {proc.communicate()[1][-2000:]}"
            assert time.time() - t0 < 300
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_in.append(_in_flight(run))
        _all_json_parses(run)
    assert killed_in == STAGES  # each kill landed while its stage ran
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all(rec.get("done") for rec in _records(run).values()) and set(_records(run)) >= set(STAGES)
    _all_json_parses(run)
    exports = read_manifest(run / "export")["exports"]
    assert exports
    for name in exports:
        verify_export(run / "export" / name)  # size and SHA-256 of every file as recorded
    assert (run / "student.safetensors").is_file() and (run / "report.md").is_file()
