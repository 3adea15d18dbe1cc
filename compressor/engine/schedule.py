"""Learning-rate and momentum schedules, precomputed per step (DINO's ``cosine_scheduler``)."""

from __future__ import annotations

import math


def cosine_schedule(total_steps: int, warmup_steps: int = 0, start: float = 1.0, end: float = 0.0,
                    warmup_from: float = 0.0) -> list[float]:
    """Linear warm-up from ``warmup_from`` to ``start``, then cosine from ``start`` down to ``end``."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps)
    values = [warmup_from + (start - warmup_from) * (i + 1) / warmup_steps for i in range(warmup_steps)]
    decay = total_steps - warmup_steps
    values += [end + 0.5 * (start - end) * (1 + math.cos(math.pi * i / max(1, decay))) for i in range(decay)]
    return values
