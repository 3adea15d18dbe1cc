"""Fixtures of the bad-input catalogue: one finished tiny run (copied per test) and a small real file system."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from compressor.engine.config import TrainConfig
from compressor.engine.trainer import train


@pytest.fixture(scope="session")
def finished_run_master(tmp_path_factory) -> Path:
    """A real finished run (2 steps, a checkpoint after each): student, checkpoints, config.yaml."""
    out = tmp_path_factory.mktemp("catalogue") / "run"
    train(TrainConfig(student="test_resnet", recipe="simclr", data="synthetic", batch_size=8, image_size=32,
                      max_images=16, max_steps=2, checkpoint_every=1, out=str(out),
                      recipe_config={"projector_dims": [16, 16]}), progress=False)
    return out


@pytest.fixture
def finished_run(finished_run_master: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, free to damage."""
    dst = tmp_path / "run"
    shutil.copytree(finished_run_master, dst)
    return dst


def _mount(target: Path, size_bytes: int) -> str | None:
    """Mount a tmpfs of ``size_bytes`` at ``target``, else an ext2 loop file system; the reason when neither works."""
    target.mkdir(parents=True, exist_ok=True)
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(target)],
                           capture_output=True, text=True, check=False)
    if tmpfs.returncode == 0:
        return None
    image = target.parent / f"{target.name}.img"
    image.write_bytes(b"")
    with image.open("r+b") as fh:
        fh.truncate(size_bytes)
    for cmd in (["mkfs.ext2", "-q", "-F", "-m", "0", str(image)], ["mount", "-o", "loop", str(image), str(target)]):
        if shutil.which(cmd[0]) is None:
            return f"tmpfs: {tmpfs.stderr.strip()}; {cmd[0]} is not installed"
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            return f"tmpfs: {tmpfs.stderr.strip()}; {cmd[0]}: {r.stderr.strip()}"
    return None


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """``small_fs(bytes)`` → a folder on a real file system of that size (a full disk on demand)."""
    mounted: list[Path] = []

    def make(size_bytes: int) -> Path:
        target = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
        reason = _mount(target, size_bytes)
        if reason:
            pytest.skip(f"cannot mount a small file system here ({reason})")
        mounted.append(target)
        return target

    yield make
    for m in mounted:
        subprocess.run(["umount", "-l", str(m)], check=False, capture_output=True)
