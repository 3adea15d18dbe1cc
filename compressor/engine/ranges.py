"""The accepted range of every numeric training setting, in one table, checked once at the boundary.

A value outside its range is a one-line error naming the flag and the range before any model is
built; ``None`` keeps meaning "not given" (the default applies). Recipe options (``--set``) have no
table of their own: :func:`check_recipe_numbers` applies the rules every recipe number shares
(finite in float32; learning rates, temperatures and epsilons positive; fractions, momenta and ratios in
[0, 1]; decays, sizes, counts and weights non-negative; widths at least 1). A negative default marks
a sentinel ("off") and lifts the sign rules for that option.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from compressor.errors import CompressorError

# The bound is the same on every machine, so a config written for a GPU node (an example's `workers: 10`)
# validates on a 2-core laptop too; above it, more loader processes only cost memory (10 000 hang the machine).
# A machine with more cores than this may use them all. More workers than CPUs is legal (a config from a bigger
# machine): PyTorch's DataLoader itself warns then, so there is no second warning here.
WORKERS_BOUND = 64


def max_workers() -> int:
    """The most ``--workers`` accepted: :data:`WORKERS_BOUND`, or this machine's CPU count where that is larger."""
    return max(WORKERS_BOUND, os.cpu_count() or 1)


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    why: str = ""

    def describe(self) -> str:
        if math.isfinite(self.high):
            return f"from {_num(self.low)} to {_num(self.high)}"
        return f"at least {_num(self.low)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


INF = math.inf
FLOAT32_MAX = 3.4028234663852886e38
# field of TrainConfig → its range. Every int field of TrainConfig must appear here (a test checks it).
TRAIN_RANGES: dict[str, Range] = {
    "max_images": Range(1, INF, "leave it out to use every image"),
    "epochs": Range(1, 1_000_000),
    "max_steps": Range(1, 1_000_000_000),
    "batch_size": Range(1, 65_536),
    "image_size": Range(16, 4096),
    "teacher_image_size": Range(16, 4096),
    "peer_image_size": Range(16, 4096),
    "seed": Range(0, 2**32 - 1),
    "checkpoint_every": Range(1, INF),
    "keep_checkpoints": Range(1, 1000),
    "workers": Range(0, -1, "data-loading processes"),  # the high end is max_workers(), read at check time
    "log_every": Range(1, INF),
    "eval_every": Range(0, INF, "0 turns it off"),
}


def _range(name: str) -> Range:
    r = TRAIN_RANGES[name]
    return Range(r.low, max_workers(), r.why) if name == "workers" else r


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_value(name: str, value: Any) -> None:
    """``value`` of the TrainConfig field ``name`` is inside its range (``None`` = not given = fine)."""
    if value is None or name not in TRAIN_RANGES:
        return
    check_range(flag(name), value, _range(name))


def check_range(option: str, value: Any, r: Range, *, whole: bool = True) -> None:
    """``value`` of ``option`` (a flag such as ``--calib-size``) is a finite number inside ``r``, or one line
    saying so."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CompressorError(f"{option} must be {'a whole number' if whole else 'a number'} {r.describe()}, "
                              f"got {_short(value)}")
    if not r.low <= value <= r.high:
        hint = f" ({r.why})" if r.why else ""
        raise CompressorError(f"{option} must be {r.describe()}{hint}, got {_short(value)}")


def check_train_config(cfg: Any) -> None:
    """Every ranged field of a TrainConfig, then the recipe's numbers."""
    for name in TRAIN_RANGES:
        check_value(name, getattr(cfg, name, None))


_POSITIVE = re.compile(r"(^|_)(lr|eps|temp|temperature)$|^(temp|temperature)_")
_UNIT = re.compile(r"(fraction|momentum|ratio)$")
_NON_NEGATIVE = re.compile(r"(weight_decay|clip_grad|_size|(^|_)n_.*|_steps|_weights?)$")
_WIDTH = re.compile(r"(^|_)(dim|dims|heads|depth)$")


def check_recipe_numbers(recipe_name: str, rcfg: Any) -> None:
    """The rules every recipe option shares; a value that breaks one is named with its ``--set`` key."""
    defaults = type(rcfg)()
    for f in dataclasses.fields(rcfg):
        value, default = getattr(rcfg, f.name), getattr(defaults, f.name)
        for v in value if isinstance(value, list | tuple) else [value]:
            _check_recipe_number(recipe_name, f.name, v, default)


def _check_recipe_number(recipe: str, name: str, v: Any, default: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return
    where = f"--set {name}=... ({recipe})"
    if not math.isfinite(v) or abs(v) > FLOAT32_MAX:  # the optimisers compute in float32
        raise CompressorError(f"{where} must be a finite number (at most {FLOAT32_MAX:.3g}), got {v}")
    if isinstance(default, list | tuple):
        default = min(default, default=1)
    if isinstance(default, int | float) and not isinstance(default, bool) and default < 0:
        return  # a negative default is a sentinel ("off"); any value is the recipe's business
    if _POSITIVE.search(name) and v <= 0:
        raise CompressorError(f"{where} must be greater than 0, got {v}")
    if _UNIT.search(name) and not 0 <= v <= 1:
        raise CompressorError(f"{where} must be between 0 and 1, got {v}")
    if _NON_NEGATIVE.search(name) and v < 0:
        raise CompressorError(f"{where} must not be negative, got {v}")
    if _WIDTH.search(name) and v < (1 if default != 0 else 0):
        raise CompressorError(f"{where} must be at least 1, got {v}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
