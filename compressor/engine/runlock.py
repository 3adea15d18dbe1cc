"""One process per run directory: an OS file lock (``fcntl.flock``) on ``RUN/.lock``.

The kernel releases the lock when the holder exits, however it exits (kill -9 included), so a
stale lock file never blocks anyone; the file's content (the holder's pid) only serves the message.
Two trainers on one ``--out`` would otherwise both succeed and mix their files.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from compressor.errors import CompressorError

LOCK_NAME = ".lock"


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


class RunLock:
    """``with RunLock(run_dir):`` holds the run directory for training; a second holder fails at once."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CompressorError(f"{self.run_dir} is in use by a training run ({_holder(self.path)}); wait for "
                                  "it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def training_holder(run_dir: str | Path) -> str | None:
    """``"pid N"`` when a training process holds ``run_dir``, else ``None`` (a shared-lock probe)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refuse_if_training(run_dir: str | Path, command: str) -> None:
    """For eval/export/bench: a run that is being trained has no final student yet (or a stale one)."""
    holder = training_holder(run_dir)
    if holder:
        raise CompressorError(f"{run_dir} is being trained right now ({holder}); run `compress {command}` "
                              "after the training finishes")
