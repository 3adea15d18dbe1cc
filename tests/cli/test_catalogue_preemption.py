"""Catalogue — preemption: SIGTERM (SLURM, Kubernetes) checkpoints like Ctrl-C; ``--auto-resume`` for requeued jobs.

Real processes and real signals, sent to the whole process group as ``scancel`` does (the DataLoader
worker gets one too). The reference is the run that was never stopped: the stopped and resumed run
must end with its weights, as tests/engine/test_kill_resume.py checks for SIGKILL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.cli.catalogue import assert_one_line

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

STEPS = 8


def _cmd(out: Path, *extra: str) -> list[str]:
    # 48 images / batch 16 = 3 steps per epoch: a stop lands mid-epoch or at an epoch's end. One checkpoint
    # every 100 steps, so any checkpoint before the end is the one SIGTERM wrote.
    return [sys.executable, "-m", "compressor", "distill", "--student", "resnet10t", "--recipe", "simclr",
            "--data", "synthetic", "--max-images", "48", "--batch-size", "16", "--image-size", "24",
            "--max-steps", str(STEPS), "--checkpoint-every", "100", "--log-every", "1", "--workers", "1",
            "--seed", "5", "--out", str(out), "--quiet", "--set", "projector_dims=[32,32]", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _logged_steps(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def _checkpoint_steps(run: Path) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.pt"))


def _weights(run: Path) -> dict:
    return load_file(str(run / "student.safetensors"))


def test_sigterm_at_a_random_step_then_auto_resume_gives_the_same_weights(tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    subprocess.run(_cmd(ref), check=True, env=_env(), capture_output=True, timeout=300)
    run = tmp_path / "job"
    at = random.randint(1, STEPS - 2)
    # the job script, first submission: --auto-resume on an empty directory starts the run
    proc = subprocess.Popen(_cmd(run, "--auto-resume"), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    t0 = time.time()
    while _logged_steps(run) < at:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() - t0 < 300
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGTERM)  # as SLURM does: every process of the job, the loader's worker too
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, f"stopped after step {at}: {err}"
    assert_one_line(subprocess.CompletedProcess([], proc.returncode, "", err),
                    r"^error: interrupted \(SIGTERM\): checkpoint saved at step \d+; continue with "
                    r"`compress distill --resume --out ")
    saved = _checkpoint_steps(run)
    assert saved and at <= saved[-1] < STEPS, (at, saved)
    assert not (run / "student.safetensors").exists()
    # the requeued job: the same command line, now resuming
    done = subprocess.run(_cmd(run, "--auto-resume"), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    a, b = _weights(ref), _weights(run)
    assert max((a[k].double() - b[k].double()).abs().max().item() for k in a) <= 1e-6, f"stopped after step {at}"
    assert json.loads((run / "student.json").read_text())["steps"] == STEPS


def test_auto_resume_of_a_finished_run_changes_nothing(tmp_path: Path) -> None:
    """A job requeued after it finished (a preemption right at the end): exit 0, the same student."""
    run = tmp_path / "r"
    cmd = [*_cmd(run, "--auto-resume"), "--max-steps", "2", "--workers", "0"]
    subprocess.run(cmd, check=True, env=_env(), capture_output=True, timeout=300)
    before = _weights(run)
    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    after = _weights(run)
    assert after.keys() == before.keys() and all(after[k].equal(before[k]) for k in before)
    assert json.loads((run / "student.json").read_text())["steps"] == 2


def test_auto_resume_needs_out(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "compressor", "distill", "--student", "resnet10t", "--data",
                           "synthetic", "--auto-resume"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=_env())
    assert_one_line(proc, r"^error: --auto-resume needs --out DIR")
