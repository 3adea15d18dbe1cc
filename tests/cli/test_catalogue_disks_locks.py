"""Catalogue — disks and locks: real full file systems (tmpfs, else a loop mount) and a real second process.

A full disk is made, not faked: ``torch.save`` and safetensors fail with their own error types on a
real ENOSPC, which is exactly what a fake ``OSError`` hid before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.cli.catalogue import REPO, TINY, one_line_error

HOLD = ("import sys, time\nfrom compressor.runlock import RunLock\nRunLock(sys.argv[1]).acquire()\n"
        "print('held', flush=True)\ntime.sleep(120)\n")


@pytest.fixture
def holder(tmp_path: Path):
    """A real second process that holds the run lock of a folder (as a training run does)."""
    procs = []

    def start(run: Path) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_second_trainer_on_the_same_out_fails_at_once(cli, tmp_path: Path, holder) -> None:
    run = tmp_path / "r"
    p = holder(run)
    t = time.perf_counter()
    one_line_error(cli, "distill", *TINY, "--max-steps", "1", "--out", run,
                   match=rf"is in use by a training run \(pid {p.pid}\); wait for it to finish or choose another --out")
    assert time.perf_counter() - t < 10
    assert sorted(x.name for x in run.iterdir()) == [".lock"]  # nothing of the second run was written


@pytest.mark.parametrize("command", ["eval", "export", "bench"])
def test_commands_on_a_run_being_trained(cli, finished_run: Path, holder, command: str) -> None:
    p = holder(finished_run)
    one_line_error(cli, command, finished_run, match=rf"is being trained right now \(pid {p.pid}\)")


def test_lock_is_released_when_the_holder_is_killed(cli, tmp_path: Path, holder) -> None:
    run = tmp_path / "r"
    p = holder(run)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    code, _, err = cli("distill", *TINY, "--max-steps", "1", "--out", run)
    assert code == 0, err


def test_orphaned_temporary_files_are_removed_on_the_next_start(cli, finished_run: Path) -> None:
    """kill -9 during a save leaves `.step_….pt.XXXX.tmp` as large as a checkpoint; the next start removes it."""
    orphan = finished_run / "checkpoints" / ".step_0000003.pt.abcd1234.tmp"
    orphan.write_bytes(b"\0" * 4096)
    orphan2 = finished_run / ".student.safetensors.zz.tmp"
    orphan2.write_bytes(b"\0" * 16)
    code, _, err = cli("distill", *TINY, "--max-steps", "3", "--checkpoint-every", "1", "--resume",
                       "--out", finished_run)
    assert code == 0, err
    assert not orphan.exists() and not orphan2.exists()


def test_out_is_a_file(cli, tmp_path: Path) -> None:
    f = tmp_path / "run.txt"
    f.write_text("mine")
    one_line_error(cli, "distill", *TINY, "--max-steps", "1", "--out", f, match=r"--out .*run\.txt.*is a file")
    assert f.read_text() == "mine"


def _sizes(finished_run: Path) -> tuple[int, int]:
    ckpt = max(p.stat().st_size for p in (finished_run / "checkpoints").glob("*.pt"))
    return ckpt, (finished_run / "student.safetensors").stat().st_size


def test_full_disk_at_start(cli, small_fs) -> None:
    fs = small_fs(256 * 1024)
    one_line_error(cli, "distill", *TINY, "--max-steps", "2", "--out", fs / "r",
                   match=r"only 0\.\d MiB free in .*a checkpoint needs about .* MiB; free space or choose "
                         r"another --out")


def test_full_disk_mid_checkpoint_keeps_the_previous_one(cli, small_fs, finished_run_master: Path) -> None:
    ckpt, _ = _sizes(finished_run_master)
    fs = small_fs(ckpt + ckpt // 2)  # room for one checkpoint and half of the next
    run = fs / "r"
    one_line_error(cli, "distill", *TINY, "--max-steps", "3", "--checkpoint-every", "1", "--out", run,
                   match=r"could not write the checkpoint of step 2 \(No space left on device\); the checkpoint of "
                         r"step 1 is kept\. Free space in .* --resume")
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_0000001.pt"]  # no .tmp left behind
    assert torch.load(run / "checkpoints" / "step_0000001.pt", weights_only=True)["step"] == 1


def test_full_disk_at_the_final_save(cli, small_fs, finished_run_master: Path) -> None:
    ckpt, student = _sizes(finished_run_master)
    fs = small_fs(ckpt + (1 << 20) + (student - (1 << 20)) // 2 + 64 * 1024)
    run = fs / "r"
    one_line_error(cli, "distill", *TINY, "--max-steps", "1", "--out", run,
                   match=r"could not write the student \(No space left on device\); the checkpoint of step 1 is "
                         r"kept.*compress distill --resume --out")
    assert torch.load(run / "checkpoints" / "step_0000001.pt", weights_only=True)["step"] == 1
    assert not (run / "student.safetensors").exists()
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
