"""A non-blocking exclusive lock on an open file, which the OS drops when its process dies (kill -9 too).

Two back ends, chosen at import: ``fcntl.flock`` where there is ``fcntl`` (Linux, macOS, the BSDs), else
``msvcrt.locking`` (Windows). Only the exclusive kind is offered, because Windows has no shared one;
:mod:`compressor.runlock` builds its shared (reader) lock out of exclusive ones, so both back ends
run the same algorithm.

``msvcrt.locking`` locks bytes from the file position and is mandatory (a locked byte cannot be read or
written by others), so it locks one byte far past the end of the file: the holder's line at the start
stays readable, which is what names the holder in a refusal. ``filelock`` is not used: it empties the
lock file (losing that line) and has no shared lock either.

Where neither module exists (no platform CPython supports today), importing still works and taking a
lock fails with one line.
"""

from __future__ import annotations

import os

from compressor.errors import CompressorError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
try:
    import msvcrt
except ImportError:  # everything but Windows
    msvcrt = None  # type: ignore[assignment]

BACKEND = "fcntl" if fcntl is not None else "msvcrt" if msvcrt is not None else "none"
_FAR_BYTE = 1 << 30  # msvcrt: the byte that is locked, far past any holder line


def try_lock(fd: int) -> bool:
    """Take the exclusive lock of the open file ``fd`` at once; ``False`` when another holder has it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    if msvcrt is not None:
        os.lseek(fd, _FAR_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:  # EACCES / EDEADLOCK: locked by another handle
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True
    raise CompressorError("this platform has neither fcntl nor msvcrt, so run directories cannot be locked; "
                          "run compressor on Linux, macOS or Windows")


def unlock(fd: int) -> None:
    """Give back the lock of ``fd`` (before closing it: Windows wants locks undone before the close)."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif msvcrt is not None:
        os.lseek(fd, _FAR_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
