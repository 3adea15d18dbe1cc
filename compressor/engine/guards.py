"""Checks that keep a run from going on (or being written) in a state that silently gives wrong results.

* Finite or refused: the loss, the gradients and the parameters are checked every step — on the
  device, without making the host wait (``DivergenceWatch``) — and the verdict is read at every log
  step and before every checkpoint; every tensor of a checkpoint or student is checked before it is
  written. A non-finite one stops the run naming the step where it first appeared, and the last good
  checkpoint stays the newest on disk.
* Resume compares what the checkpoint was trained with (student, peer, teachers, recipe, input
  sizes, tensor shapes) against the current config and names the first difference, instead of
  letting ``load_state_dict`` print a page of size mismatches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from compressor.errors import CompressorError, TrainingDiverged
from compressor.rundir import RunDir

# The TrainConfig fields a checkpoint records and a resume must match (flag shown in the message).
RESUME_FIELDS = ("recipe", "student", "peer", "teacher", "image_size", "peer_image_size")


def total_norm(tensors: Iterable[torch.Tensor]) -> torch.Tensor | None:
    ts = [t.detach() for t in tensors]
    return torch.nn.utils.get_total_norm(ts) if ts else None


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """The name of the first floating tensor with a NaN or infinity, or ``None``."""
    for name, t in named:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            return name
    return None


def diverged(what: str, step: int, run_dir: Path, kept: int | None, example: str | None = None,
             became: str = "non-finite") -> TrainingDiverged:
    """The one-line error of a run that stopped at ``step`` because ``what`` is NaN or infinite."""
    where = f" (first in {example})" if example else ""
    last = (f"the last good checkpoint (step {kept}) in {RunDir(run_dir).checkpoints_dir} is kept" if kept is not None
            else "no checkpoint was written and no student is saved")
    return TrainingDiverged(f"the {what} became {became} at step {step}{where}; {last}. Lower the learning "
                            "rate (--set lr=...), keep --set clip_grad above 0, or use --precision fp32")


def check_state_finite(state: Mapping[str, Any], what: str, step: int, run_dir: Path, kept: int | None) -> None:
    """Refuse to write ``state`` (a state dict, possibly nested) when any tensor in it is not finite."""
    bad = first_nonfinite(_tensors(state))
    if bad is not None:
        raise diverged(what, step, run_dir, kept, bad)


def _tensors(obj: Any, prefix: str = "") -> Iterable[tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _tensors(v, f"{prefix}.{k}" if prefix else str(k))


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def run_signature(cfg: Any) -> dict[str, Any]:
    """What a checkpoint records about the config that trained it."""
    return {name: getattr(cfg, name, None) for name in RESUME_FIELDS}


def check_resume_matches(saved: Mapping[str, Any], cfg: Any, recorded_state: Mapping[str, torch.Tensor],
                         current_state: Mapping[str, torch.Tensor], path: Path,
                         saved_recipe: Mapping[str, Any] | None = None,
                         recipe: Mapping[str, Any] | None = None) -> None:
    """The checkpoint at ``path`` fits this config; else a one-line error naming the first difference.

    Recipe options count too: the optimiser state restores the checkpoint's learning rate, so a
    ``--set lr=...`` on resume would otherwise be ignored without a word.
    """
    for key, then in (saved_recipe or {}).items():
        now = (recipe or {}).get(key, then)
        if _plain(now) != _plain(then):
            raise CompressorError(f"{path} was trained with --set {key}={_plain(then)}, not {_plain(now)}; resume "
                                  f"with the run's own settings (drop --set {key}) or start a new run with another "
                                  "--out")
    for name in RESUME_FIELDS:
        if name not in saved:
            continue  # checkpoints of older versions record only recipe and student
        then, now = saved[name], getattr(cfg, name, None)
        if then is None or now is None:
            continue  # "the model's default": config.yaml records the resolved size, the flag may be absent
        if then != now:
            flag = "--" + name.replace("_", "-")
            raise CompressorError(f"{path} was trained with {flag} {then}, not {now}; resume with the run's own "
                                  f"settings (drop {flag}) or start a new run with another --out")
    missing = [k for k in recorded_state if k not in current_state]
    extra = [k for k in current_state if k not in recorded_state]
    if missing or extra:
        raise CompressorError(f"{path} does not fit this recipe configuration (checkpoint has "
                              f"{(missing or ['-'])[0]!r}, this config has {(extra or ['-'])[0]!r}); resume with "
                              "the run's own --set options or start a new run with another --out")
    for k, t in recorded_state.items():
        cur = current_state[k]
        if isinstance(t, torch.Tensor) and isinstance(cur, torch.Tensor) and t.shape != cur.shape:
            raise CompressorError(f"{path} does not fit this configuration: {k} is {list(t.shape)} in the "
                                  f"checkpoint but {list(cur.shape)} here; resume with the run's own --set options "
                                  "(e.g. projector_dims) and sizes, or start a new run with another --out")


class DivergenceWatch:
    """Device-side record of the first step at which the loss, the gradients or the weights stopped being finite.

    Reading ``isfinite`` on the host every step would make the CPU wait for the GPU at every step. Each
    check here is a few device ops folding into three scalars (the first bad step, what went bad, and the
    loss's value then); ``verdict`` reads them — one host sync — and the trainer calls it at every log
    step and before every checkpoint. A run that diverges at step ``k`` therefore computes at most
    ``log_every - 1`` more (discarded) steps before it stops, the error still names step ``k``, and no
    checkpoint is written after it: the last good checkpoint stays the newest on disk.
    """

    KINDS = ("", "loss", "gradients", "weights")

    def __init__(self, device: torch.device) -> None:
        self.first = torch.full((), -1, dtype=torch.int64, device=device)  # 1-based step; -1: none yet
        self.kind = torch.zeros((), dtype=torch.int64, device=device)
        self.value = torch.zeros((), dtype=torch.float32, device=device)

    def note(self, what: str, finite: torch.Tensor, step: int, value: torch.Tensor | None = None) -> None:
        """Record ``what`` at ``step`` (1-based) if ``finite`` is false and nothing was recorded before."""
        fresh = (self.first < 0) & ~finite
        self.first = torch.where(fresh, step, self.first)
        self.kind = torch.where(fresh, self.KINDS.index(what), self.kind)
        if value is not None:
            self.value = torch.where(fresh, value.detach().float().reshape(()), self.value)

    def verdict(self) -> tuple[str, int, float] | None:
        """``(what, step, loss value)`` of the first divergence, or ``None`` (one host sync)."""
        first, kind, value = (t.item() for t in (self.first, self.kind, self.value))
        return None if first < 0 else (self.KINDS[int(kind)], int(first), float(value))
