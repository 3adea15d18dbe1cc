"""A short distillation from a frozen reference encoder: the recovery step of pruning and of QAD.

Both compress an already trained student (remove channels, or insert fake quantization) and then pull
the compressed network back toward the **run's own fp32 student**, the reference, on the run's images:

    L(θ) = 1/B · Σ_i (1 − cos(f_θ(x_i), g(x_i)))                                    (cosine distillation)

with ``g`` the frozen fp32 student and ``f_θ`` the pruned or fake-quantized one. The cosine is what the
parity gate and the kNN evaluation measure, so it is the quantity the recovery optimises; it ignores the
embedding's norm, which no downstream use of an embedding here reads. Each step draws a batch from a
fixed pool of training images (a seeded, class-stratified sample, the same one on resume) and flips it
horizontally at random; AdamW, cosine decay to zero, no weight decay.

The loop is resumable: every ``checkpoint_every`` steps (and at the end) it writes the model, the
optimizer, the step and the sampling generator atomically to ``checkpoint``; a run started again with
the same ``key`` continues from there and ends with the same weights as one that was never stopped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compressor.errors import CompressorError
from compressor.utils.io import atomic_write
from compressor.utils.progress import make_progress

log = logging.getLogger("compressor")

CHECKPOINT_FORMAT = "compressor-finetune/1"


@dataclass(frozen=True)
class FinetuneConfig:
    """How long and how hard the recovery distillation trains (a QAD or prune stage's own fields)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 50

    def check(self, flag: str = "--steps") -> None:
        """One-line errors for values that cannot train."""
        if not isinstance(self.steps, int) or self.steps <= 0:
            raise CompressorError(f"{flag} must be a positive number of steps, got {self.steps}")
        if self.batch_size <= 0:
            raise CompressorError(f"the recovery batch size must be positive, got {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise CompressorError(f"the recovery learning rate must be positive, got {self.lr}")
        if self.checkpoint_every <= 0:
            raise CompressorError(f"checkpoint_every must be positive, got {self.checkpoint_every}")


def cosine_distillation(student: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``mean(1 − cos(student_i, reference_i))``, the loss in this module's docstring."""
    return (1.0 - nn.functional.cosine_similarity(student.float(), reference.float(), dim=1)).mean()


def distill_to_reference(model: nn.Module, reference: nn.Module, pool: np.ndarray, config: FinetuneConfig, *,
                         key: dict, checkpoint: Path | None = None, description: str = "recovering",
                         params: Callable[[nn.Module], list[nn.Parameter]] | None = None,
                         progress: bool = True) -> dict:
    """Train ``model`` toward the frozen ``reference`` on ``pool`` (N×3×H×W float, normalised) for
    ``config.steps`` steps; returns a record for the manifest or ``student.json``. ``progress``: draw a bar
    (a log line at each checkpoint either way).

    ``key`` identifies the job (source run, ratio or scheme, config): a checkpoint written under another
    key is not resumed from (it is left alone and the loop starts over, saying so). ``params`` picks the
    trained parameters (default: every parameter that requires a gradient).
    """
    config.check()
    if len(pool) == 0:
        raise CompressorError("no training images for the recovery distillation; pass --data SPEC")
    reference = reference.eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    trained = params(model) if params is not None else [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=config.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, config.steps) / config.steps)))
    gen = torch.Generator().manual_seed(config.seed)
    full_key = {**key, **asdict(config), "pool": len(pool)}
    start, losses = 0, []
    if checkpoint is not None and checkpoint.is_file():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state.get("format") == CHECKPOINT_FORMAT and state.get("key") == _key_text(full_key):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"])
            start, losses = int(state["step"]), [float(v) for v in state["losses"]]
            log.info("resuming the recovery distillation from step %d of %d (%s)", start, config.steps, checkpoint)
        else:
            log.warning("%s belongs to another job (different source, settings or images); starting over",
                        checkpoint)
    images = torch.from_numpy(np.ascontiguousarray(pool))

    def save(step: int) -> None:
        if checkpoint is None:
            return
        state = {"format": CHECKPOINT_FORMAT, "key": _key_text(full_key), "step": step, "losses": losses,
                 "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "generator": gen.get_state()}
        atomic_write(checkpoint, lambda p: torch.save(state, p))

    model.train()
    with make_progress("loss", disable=not progress) as bar:
        task = bar.add_task(description, total=config.steps, completed=start, loss="")
        for step in range(start, config.steps):
            idx = torch.randint(len(images), (config.batch_size,), generator=gen)
            flip = torch.rand(config.batch_size, generator=gen) < 0.5
            x = images[idx]
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            with torch.no_grad():
                target = reference(x)
            loss = cosine_distillation(model(x), target)
            if not torch.isfinite(loss):
                raise CompressorError(f"the recovery distillation diverged at step {step + 1} (loss {loss.item()}); "
                                      "lower its learning rate")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(round(float(loss.item()), 6))
            bar.update(task, advance=1, loss=f"1−cos {loss.item():.4f}")
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
                save(step + 1)
                log.info("%s: step %d/%d, 1−cos %.5f", description, step + 1, config.steps,
                         float(np.mean(losses[-config.checkpoint_every:])))
    model.eval()
    head = losses[: max(1, len(losses) // 10)]
    tail = losses[-max(1, len(losses) // 10):]
    return {"steps": config.steps, "batch_size": config.batch_size, "lr": config.lr, "seed": config.seed,
            "loss": "1 − cos(student, fp32 reference)", "images": len(pool),
            "loss_first": round(float(np.mean(head)), 6) if head else None,
            "loss_last": round(float(np.mean(tail)), 6) if tail else None}


def _key_text(key: dict) -> str:
    import json

    return json.dumps(key, sort_keys=True, default=str)
