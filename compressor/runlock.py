"""Locks on folders that several ``compress`` processes use: ``RUN/.lock`` (training) and ``RUN/export/.lock``.

One writer or any number of readers. A writer (training a run; ``compress export`` writing ``RUN/export``)
holds ``FOLDER/.lock``. A reader (``compress bench`` reading ``RUN/export``) holds a slot file of its own,
``FOLDER/.lock.rN``, which it takes while briefly holding ``.lock``, so no writer can slip in between; a
writer, holding ``.lock``, checks that no slot is held. Every lock is an OS file lock
(:mod:`compressor.utils.oslock`: ``flock``, or ``msvcrt`` on Windows) that the kernel releases when its
holder exits, however it exits (kill -9 included), so a stale lock file never blocks anyone. The shared
lock is made of exclusive ones because Windows has no other kind: one algorithm on every platform.

Nothing waits for long: a lock that is still held after :data:`WAIT_S` (the time a reader holds
``.lock`` while it takes its slot) is refused with one line naming the holder (pid and command), which
each holder writes into its own lock file.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from compressor.errors import CompressorError
from compressor.utils import oslock

LOCK_NAME = ".lock"
READER_PREFIX = ".lock.r"  # + N: one slot file per reader
WAIT_S = 0.5


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as its lock file says: ``"PID COMMAND"``."""

    pid: str
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid}" if self.pid else "another process"

    def describe(self) -> str:
        """```compress export` (pid 123)``, or the pid alone when the command is not known."""
        return f"`compress {self.command}` ({self})" if self.command else str(self)


def _read_holder(path: Path) -> Holder:
    try:
        pid, _, command = path.read_text().strip().partition(" ")
    except OSError:
        pid, command = "", ""
    return Holder(pid, command.strip()) if pid.isdigit() else Holder("", "")


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _write(fd: int, text: str) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, text.encode())


def _lock_waiting(fd: int, wait_s: float = WAIT_S) -> bool:
    """``try_lock`` for up to ``wait_s``: a reader holds ``.lock`` for a moment while it takes its slot."""
    deadline = time.monotonic() + wait_s
    while not oslock.try_lock(fd):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _release(fd: int) -> None:
    oslock.unlock(fd)
    os.close(fd)


class FolderLock:
    """``with FolderLock(folder, "export"):`` one writer; ``shared=True``: one of any number of readers.

    ``command`` is the ``compress`` command of this process; a refused process names it in its message.
    """

    def __init__(self, folder: str | Path, command: str, *, shared: bool = False) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self.shared = shared
        self._fd: int | None = None

    def try_acquire(self) -> Holder | None:
        """Take the lock; ``None`` when taken, else the holder that keeps it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        main = _open(self.path)
        if not _lock_waiting(main):
            os.close(main)
            return _read_holder(self.path)
        if self.shared:
            self._fd = self._take_slot()
            _release(main)
            return None
        reader = self._held_slot()
        if reader is not None:
            _release(main)
            return reader
        _write(main, f"{os.getpid()} {self.command}\n")
        self._fd = main
        return None

    def _take_slot(self) -> int:
        n = 0
        while True:
            fd = _open(self.folder / f"{READER_PREFIX}{n}")
            if oslock.try_lock(fd):
                _write(fd, f"{os.getpid()} {self.command}\n")
                return fd
            os.close(fd)
            n += 1

    def _held_slot(self) -> Holder | None:
        """The holder of a reader slot, if any; free slots are removed (only a writer, holding ``.lock``, may)."""
        for slot in sorted(self.folder.glob(f"{READER_PREFIX}*")):
            try:
                fd = os.open(slot, os.O_RDWR)
            except OSError:
                continue
            if not oslock.try_lock(fd):
                os.close(fd)
                return _read_holder(slot)
            _release(fd)
            with contextlib.suppress(OSError):
                slot.unlink()
        return None

    def acquire(self) -> FolderLock:
        holder = self.try_acquire()
        if holder is not None:
            raise CompressorError(f"{self.folder} is in use by {holder.describe()}; run `compress {self.command}` "
                                  "again when it has finished")
        return self

    def release(self) -> None:
        if self._fd is not None:
            _release(self._fd)
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def reading(folder: str | Path, command: str) -> contextlib.AbstractContextManager[object]:
    """A reader's lock on ``folder`` (see :class:`FolderLock`); none where the folder is missing or read-only,
    where no writer can work either."""
    folder = Path(folder)
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        return contextlib.nullcontext()
    return FolderLock(folder, command, shared=True)


class RunLock(FolderLock):
    """``with RunLock(run_dir):`` holds the run directory for training; a second holder fails at once.

    Two trainers on one ``--out`` would otherwise both succeed and mix their files.
    """

    def __init__(self, run_dir: str | Path) -> None:
        super().__init__(run_dir, "distill")
        self.run_dir = self.folder

    def acquire(self) -> RunLock:
        holder = self.try_acquire()
        if holder is not None:
            raise CompressorError(f"{self.run_dir} is in use by a training run ({holder}); wait for it to finish "
                                  "or choose another --out")
        return self


def training_holder(run_dir: str | Path) -> str | None:
    """``"pid N"`` when a training process holds ``run_dir``, else ``None`` (a probe: taken, then given back)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    if _lock_waiting(fd):
        _release(fd)
        return None
    os.close(fd)
    return str(_read_holder(path))


def refuse_if_training(run_dir: str | Path, command: str) -> None:
    """For eval/export/bench: a run that is being trained has no final student yet (or a stale one)."""
    holder = training_holder(run_dir)
    if holder:
        raise CompressorError(f"{run_dir} is being trained right now ({holder}); run `compress {command}` "
                              "after the training finishes")
