"""A run's checkpoints: what one holds, writing it (rank 0, atomically), restoring it, and the errors of both.

A checkpoint holds the step, the recipe's trainable weights, every optimiser's and the GradScaler's
state, each rank's RNG state, and the config it was trained with (``run_signature``, the recipe's
config), which ``check_resume_matches`` compares on resume before any tensor is loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from compressor.engine import distributed as ddp
from compressor.engine.checkpoint import (
    list_checkpoints,
    load_latest_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from compressor.engine.config import TrainConfig
from compressor.engine.guards import check_resume_matches, check_state_finite, run_signature
from compressor.errors import CompressorError
from compressor.utils.io import free_bytes

log = logging.getLogger("compressor")


class RunCheckpoints:
    """Checkpoints of one run: ``save(step)`` (a collective under DDP), ``restore()``, ``kept_step()``."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, recipe: Any, optimizers: list[torch.optim.Optimizer],
                 scaler: torch.amp.GradScaler, dist: ddp.DistContext) -> None:
        self.cfg, self.run_dir, self.recipe = cfg, run_dir, recipe
        self.optimizers, self.scaler, self.dist = optimizers, scaler, dist

    def state(self, step: int) -> dict:
        rngs = ddp.gather_objects(rng_state())  # a collective: every rank calls save
        return {"step": step, "recipe": self.recipe.trainable_state_dict(),
                "optimizers": [o.state_dict() for o in self.optimizers], "scaler": self.scaler.state_dict(),
                "rng": rngs[0], "rng_ranks": rngs, "world_size": self.dist.world_size,
                "config": run_signature(self.cfg),
                "recipe_config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self.recipe.cfg).items()}}

    def kept_step(self) -> int | None:
        kept = list_checkpoints(self.run_dir)
        return kept[-1][0] if kept else None

    def save(self, step: int) -> None:
        state = self.state(step)
        check_state_finite(state["recipe"], "weights", step, self.run_dir, self.kept_step())
        if not self.dist.is_main:
            return
        try:
            save_checkpoint(self.run_dir, step, state, keep=self.cfg.keep_checkpoints or 2)
        except OSError as err:  # e.g. ENOSPC: the temporary file is removed, older checkpoints stay
            raise self.write_error(f"the checkpoint of step {step}", err) from err

    def write_error(self, what: str, err: OSError) -> CompressorError:
        kept = self.kept_step()
        last = f"the checkpoint of step {kept} is kept" if kept is not None else "no earlier checkpoint exists"
        return CompressorError(f"could not write {what} ({err.strerror or err}); {last}. Free space in "
                               f"{self.run_dir} and continue with `compress distill --resume --out {self.run_dir}`"
                               if kept is not None else
                               f"could not write {what} ({err.strerror or err}); {last}. Free space in "
                               f"{self.run_dir} (or choose another --out) and start the run again")

    def check_free_space(self) -> None:
        """A checkpoint needs about the weights plus the optimiser's moments; refuse at start if they cannot fit."""
        need = sum(t.numel() * t.element_size() for t in self.recipe.trainable_state_dict().values()) * 3
        free = free_bytes(self.run_dir)
        if free is not None and free < need + (1 << 20):
            raise CompressorError(f"only {free / 2**20:.1f} MiB free in {self.run_dir}, a checkpoint needs about "
                                  f"{need / 2**20:.1f} MiB; free space or choose another --out")

    def restore(self) -> int:
        state, path = load_latest_checkpoint(self.run_dir)
        check_resume_matches(state.get("config", {}), self.cfg, state["recipe"],
                             self.recipe.trainable_state_dict(), path, state.get("recipe_config"),
                             vars(self.recipe.cfg))
        self.recipe.load_trainable_state_dict(state["recipe"])
        if len(state["optimizers"]) != len(self.optimizers):
            raise CompressorError(f"{path} was written by another recipe; resume with the same config")
        for opt, s in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)
        self.scaler.load_state_dict(state["scaler"])
        ranks = state.get("rng_ranks") or [state["rng"]]
        if len(ranks) == self.dist.world_size:
            set_rng_state(ranks[self.dist.rank])
        else:  # another world size: the data order is unchanged, the loop's own randomness is reseeded
            log.warning("resuming a %d-process run with %d processes: the data order and augmentations continue "
                        "exactly; the loop's own random draws (masks, dropout) are reseeded", len(ranks),
                        self.dist.world_size)
            set_rng_state(ranks[0])
            torch.manual_seed(self.cfg.seed + 1 + 1_000_003 * (self.dist.rank + 1) + int(state["step"]))
        log.info("resumed from %s (step %d)", path, state["step"])
        return int(state["step"])

