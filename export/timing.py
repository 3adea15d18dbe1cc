"""The latency loop and the throughput loop, and the statistics bench reports.

- :func:`measure` (latency): warm-up (at least ``warmup`` calls and ``warmup_s`` seconds), then one call at a
  time until ``iters`` or ``seconds``. Each call must return only when its work is done (GPU runners
  synchronise inside the call), so the wall-clock time of one call is the latency of one batch.
- :func:`measure_streams` (throughput): one thread per stream, each calling its own step back to back, so
  ``len(steps)`` requests are in flight (the runtime must release the GIL while it computes, as ONNX Runtime
  does); images per second over the timed window, and each request's latency under that load.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Timing:
    """Per-call latencies in milliseconds and their summary, and the warm-up that preceded them."""

    times_ms: np.ndarray
    warmup_s: float = 0.0  # measured seconds of untimed calls before the first timed one
    warmup_calls: int = 0

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


def warm_up(step: Callable[[], object], *, calls: int, seconds: float) -> tuple[float, int]:
    """Call ``step`` until at least ``calls`` calls and ``seconds`` have passed; returns (seconds taken, calls)."""
    start = time.perf_counter()
    n = 0
    while n < calls or time.perf_counter() - start < seconds:
        step()
        n += 1
    return time.perf_counter() - start, n


def measure(step: Callable[[], object], *, warmup: int = 5, warmup_s: float = 0.0, iters: int | None = 50,
            seconds: float | None = 10.0, min_iters: int = 5) -> Timing:
    """Time ``step()``: untimed calls for at least ``warmup`` calls and ``warmup_s`` seconds, then timed calls
    until ``iters`` are done or ``seconds`` pass. (``compress bench`` passes its own warm-up,
    :class:`~compressor.export.options.BenchOptions`; the defaults here are the plain count.)

    At least ``min_iters`` calls are timed whatever the time budget. The garbage collector is paused while
    timing (as ``timeit`` does): a collection inside one call would show up as a latency outlier.
    """
    if iters is None and seconds is None:
        raise ValueError("give iters, seconds or both")
    warm_s, warm_calls = warm_up(step, calls=warmup, seconds=warmup_s)
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
    return Timing(np.asarray(times) * 1e3, warm_s, warm_calls)


@dataclass
class Throughput:
    """Several requests in flight: images per second over the timed window and each request's latency."""

    latency: Timing  # per request, under this load
    images_per_s: float
    requests: int  # timed requests completed, all streams together
    elapsed_s: float  # from the timed window's start to the last request's end
    settings: dict = field(default_factory=dict)  # what produced the figure (streams, threads, hint, ...)


def measure_streams(steps: Sequence[Callable[[], object]], batch: int, *, warmup: int = 1,
                    warmup_s: float = 0.0, iters: int | None = 50, seconds: float | None = 10.0,
                    min_iters: int = 5) -> Throughput:
    """Run each of ``steps`` in a thread of its own, back to back: ``len(steps)`` requests in flight.

    Every stream warms up (``warmup`` calls and ``warmup_s`` seconds) before the clock starts for all of them
    together; then requests are taken until ``iters`` are done in all or ``seconds`` pass (at least
    ``min_iters`` per stream), and the window ends when the last one returns. ``batch`` images per request.
    """
    if iters is None and seconds is None:
        raise ValueError("give iters, seconds or both")
    n = len(steps)
    limit = iters if iters is not None else float("inf")
    floor = min_iters * n
    lock = threading.Lock()
    ready = threading.Barrier(n + 1)  # every stream warm, then the clock starts for all
    go = threading.Barrier(n + 1)
    window: dict[str, float] = {}
    taken = [0]
    latencies: list[list[float]] = [[] for _ in range(n)]
    ends = [0.0] * n
    warm = [(0.0, 0)] * n
    errors: list[BaseException] = []

    def worker(i: int, step: Callable[[], object]) -> None:
        try:
            warm[i] = warm_up(step, calls=warmup, seconds=warmup_s)
            ready.wait()
            go.wait()
            while True:
                with lock:  # one request more, or stop: the budget is shared by the streams
                    now = time.perf_counter()
                    if taken[0] >= floor and (taken[0] >= limit or now >= window["deadline"]):
                        break
                    taken[0] += 1
                start = time.perf_counter()
                step()
                end = time.perf_counter()
                latencies[i].append(end - start)
                ends[i] = end
        except BaseException as err:  # re-raised in the caller's thread
            errors.append(err)
            ready.abort()
            go.abort()

    threads = [threading.Thread(target=worker, args=(i, s), daemon=True) for i, s in enumerate(steps)]
    for t in threads:
        t.start()
    was_enabled = gc.isenabled()
    try:
        with contextlib.suppress(threading.BrokenBarrierError):  # broken: a stream failed, raised below
            ready.wait()
            gc.disable()
            window["start"] = time.perf_counter()
            window["deadline"] = window["start"] + seconds if seconds is not None else float("inf")
            go.wait()
        for t in threads:
            t.join()
    finally:
        if was_enabled:
            gc.enable()
    if errors:
        raise errors[0]
    done = [x for lat in latencies for x in lat]
    elapsed = max(ends) - window["start"]
    return Throughput(Timing(np.asarray(done) * 1e3, max(w[0] for w in warm), sum(w[1] for w in warm)),
                      images_per_s=batch * len(done) / elapsed, requests=len(done), elapsed_s=elapsed,
                      settings={"streams": n})
