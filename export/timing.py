"""The latency loop: warm-up, then timed calls until ``iters`` or ``seconds``; the statistics bench reports.

Each call must return only when its work is done (GPU runners synchronise inside the call), so the
wall-clock time of one call is the latency of one batch.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    """Per-call latencies in milliseconds and their summary."""

    times_ms: np.ndarray

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.times_ms, q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p90(self) -> float:
        return self.percentile(90)

    @property
    def p99(self) -> float:
        return self.percentile(99)

    @property
    def mean(self) -> float:
        return float(self.times_ms.mean())

    @property
    def std(self) -> float:
        return float(self.times_ms.std(ddof=1)) if len(self.times_ms) > 1 else 0.0

    @property
    def cv(self) -> float:
        """Coefficient of variation, std / mean: above ~0.1 the machine was busy or the clock moved."""
        return self.std / self.mean if self.mean > 0 else 0.0

    @property
    def iters(self) -> int:
        return len(self.times_ms)


def measure(step: Callable[[], object], *, warmup: int = 5, iters: int | None = 50,
            seconds: float | None = 10.0, min_iters: int = 5) -> Timing:
    """Time ``step()``: ``warmup`` untimed calls, then calls until ``iters`` are done or ``seconds`` pass.

    At least ``min_iters`` calls are timed whatever the time budget. The garbage collector is paused while
    timing (as ``timeit`` does): a collection inside one call would show up as a latency outlier.
    """
    if iters is None and seconds is None:
        raise ValueError("give iters, seconds or both")
    for _ in range(warmup):
        step()
    limit = iters if iters is not None else float("inf")
    deadline = time.perf_counter() + seconds if seconds is not None else float("inf")
    times: list[float] = []
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        while len(times) < limit and (time.perf_counter() < deadline or len(times) < min_iters):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
    finally:
        if was_enabled:
            gc.enable()
    return Timing(np.asarray(times) * 1e3)
