"""Stopping a run cleanly on a signal: Ctrl-C (SIGINT) and the cluster schedulers' SIGTERM.

SLURM (``scancel``, the time limit, preemption) and Kubernetes (pod eviction, node drain) stop a job
with SIGTERM, then SIGKILL after a grace period (SLURM's ``KillWait`` and Kubernetes'
``terminationGracePeriodSeconds`` are both 30 s by default). Python's default for SIGTERM is to die at
once, losing every step since the last checkpoint. Under :class:`StopSignals` both signals only
request a stop: the training loop finishes its step (under DDP, the steps up to the next log step,
where the ranks agree), writes a checkpoint and exits with 128 + the signal's number (130 for
Ctrl-C, 143 for SIGTERM) and one line naming ``--resume``.

A second Ctrl-C aborts at once (the user means it). A second SIGTERM does not: SLURM signals every
process of a job step and ``torchrun`` forwards the SIGTERM it gets to its workers, so one
``scancel`` reaches a rank twice. DataLoader worker processes ignore both signals
(``compressor.data.loader.ignore_stop_signals``): they would otherwise die first, and the loader would fail the step
that was meant to be checkpointed; they exit with the loader, as always.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

log = logging.getLogger("compressor")

# SIGTERM exists on Windows too (raised by the C runtime only); the name keeps the code portable.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """``with StopSignals(on_stop):`` turns SIGINT and SIGTERM into a call of ``on_stop`` (once).

    Outside the main thread (a notebook's worker thread, a test runner) Python cannot install signal
    handlers, and this does nothing.
    """

    def __init__(self, on_stop: Callable[[], None]) -> None:
        self.on_stop = on_stop
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        sig = signal.Signals(signum)
        if self.received is not None:
            if sig is signal.SIGINT:
                raise KeyboardInterrupt
            return  # a repeated SIGTERM (scheduler + torchrun): the checkpoint is on its way
        self.received = sig
        again = "press Ctrl-C again to abort" if sig is signal.SIGINT else "SIGKILL would lose this step"
        log.warning("%s: saving a checkpoint after this step (%s)", sig.name, again)
        self.on_stop()

    @property
    def name(self) -> str:
        """The signal that stopped the run (``SIGINT`` when the stop came from another rank)."""
        return (self.received or signal.SIGINT).name

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, the shell's convention (130 for Ctrl-C, 143 for SIGTERM)."""
        return 128 + int(self.received or signal.SIGINT)
