"""Exact resume after SIGKILL (mid-epoch), and SIGINT saving a checkpoint: real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

RECIPES = {
    "simclr": [],
    "mvmr": ["--teacher", "timm:resnet10t", "--teacher-weights", "random", "--teacher-image-size", "24",
             "--set", "projector_dims=[32,32]"],
}


def _cmd(recipe: str, out: Path, *extra: str) -> list[str]:
    # 64 images / batch 16 = 4 steps per epoch, 10 steps: kills land mid-epoch as well as at its end.
    return [sys.executable, "-m", "compressor", "distill", "--student", "resnet10t", "--recipe", recipe,
            "--data", "synthetic", "--max-images", "64", "--batch-size", "16", "--image-size", "24",
            "--max-steps", "10", "--checkpoint-every", "1", "--seed", "5", "--out", str(out), "--quiet",
            *RECIPES[recipe], *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < timeout
        time.sleep(0.02)


def _max_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a / "student.safetensors")), load_file(str(b / "student.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_sigkill_then_resume_gives_the_same_weights(recipe: str, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    subprocess.run(_cmd(recipe, ref), check=True, env=_env(), capture_output=True)
    killed = tmp_path / "killed"
    for kill_after in (2, 5):  # kill twice: after step 2 (epoch 0) and after step 5 (mid epoch 1)
        resume = ["--resume"] if kill_after == 5 else []
        proc = subprocess.Popen(_cmd(recipe, killed, *resume), env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        _wait_for(killed / "checkpoints" / f"step_{kill_after:07d}.pt", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not (killed / "student.safetensors").exists()
    done = subprocess.run(_cmd(recipe, killed, "--resume"), env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _max_diff(ref, killed) <= 1e-6


def test_sigint_saves_a_checkpoint_and_exits_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "int"
    proc = subprocess.Popen(_cmd("simclr", out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    _wait_for(out / "checkpoints" / "step_0000002.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err
    steps = sorted(int(p.stem.split("_")[1]) for p in (out / "checkpoints").glob("step_*.pt"))
    assert steps and steps[-1] >= 2 and steps[-1] < 10
