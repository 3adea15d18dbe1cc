"""Resumable checkpoints: ``checkpoints/step_0000100.pt``, written atomically, read with ``weights_only``.

A checkpoint holds the trainable state of the recipe (frozen teachers excluded), every optimiser,
the GradScaler, the step (from which the epoch and position in it follow), and the RNG states.
The newest ``keep`` checkpoints are kept; when the newest cannot be read (a partial or corrupt
file), the previous one is used and the user is told.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import torch

from compressor.errors import CompressorError
from compressor.rundir import RunDir
from compressor.utils.io import atomic_write

log = logging.getLogger("compressor")
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return RunDir(run_dir).checkpoints_dir


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint, oldest first."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` for ``step`` atomically, then prune all but the newest ``keep`` files."""
    path = checkpoint_dir(run_dir) / f"step_{step:07d}.pt"
    atomic_write(path, lambda p: torch.save(state, p))
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_latest_checkpoint(run_dir: str | Path) -> tuple[dict[str, Any], Path]:
    """The newest readable checkpoint; unreadable newer ones are reported and skipped."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CompressorError(f"--resume: no checkpoint in {checkpoint_dir(run_dir)}; start the run without "
                              "--resume (or point --out at the run to continue)")
    for step, path in reversed(found):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or state.get("step") != step:
                raise ValueError("incomplete checkpoint")
            return state, path
        except Exception as err:  # a partial write, a truncated or corrupt file
            log.warning("checkpoint %s is unreadable (%s); falling back to the previous one", path.name, err)
    raise CompressorError(f"every checkpoint in {checkpoint_dir(run_dir)} is unreadable; start the run again "
                          "without --resume")
