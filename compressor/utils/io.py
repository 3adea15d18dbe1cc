"""Atomic file writes, and the checks every file we read or write goes through.

Writes go to a temporary file beside the target, are fsynced, then renamed: a crash leaves the old
file intact, and the next run removes the orphaned temporary (:func:`remove_orphaned_temps`).
A full disk is reported as ``OSError(ENOSPC)`` whatever layer noticed it: ``torch.save`` and
safetensors raise their own ``RuntimeError``-like errors on a real ENOSPC, which would otherwise
hide the one condition the user can fix.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict

from compressor.errors import CompressorError

TMP_SUFFIX = ".tmp"
# Below this much free space, a failed write is taken to be the full disk (a writer that fails with
# its own error type on ENOSPC leaves at most a few blocks free).
_FULL_DISK_SLACK = 1 << 20


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``; a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(tmp_path)
        # mkstemp creates 0600 and some writers (safetensors) re-create the file: set the usual mode after
        os.chmod(tmp_path, 0o666 & ~umask)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        tmp_path.replace(path)
    except BaseException as err:
        # Judge before removing the partial file, which gives the space back.
        full = isinstance(err, Exception) and not _is_enospc(err) and (
            _names_enospc(err) or disk_is_full(path.parent))
        tmp_path.unlink(missing_ok=True)
        if full:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from err
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda p: p.write_text(text))


def _is_enospc(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def _names_enospc(err: BaseException) -> bool:
    """Writers that wrap the OS error in their own type (safetensors) still quote it."""
    text = str(err)
    return os.strerror(errno.ENOSPC) in text or f"os error {errno.ENOSPC}" in text


def disk_is_full(folder: str | Path) -> bool:
    """Whether the file system holding ``folder`` has (almost) no space left."""
    try:
        return shutil.disk_usage(folder).free < _FULL_DISK_SLACK
    except OSError:
        return False


def free_bytes(folder: str | Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def remove_orphaned_temps(folder: str | Path, *, also_dirs: str | None = None) -> list[Path]:
    """Delete the ``.NAME.*.tmp`` files an interrupted :func:`atomic_write` left in ``folder``, and the
    folders whose name starts with ``also_dirs`` (an interrupted export's work folder).

    Only call this while holding the folder's lock: another live writer's temporary looks the same.
    """
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if p.is_symlink():
            continue
        if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
        elif also_dirs and p.name.startswith(also_dirs) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def check_regular_file(path: str | Path, what: str, *, max_bytes: int = 1 << 40, allow_empty: bool = False) -> int:
    """The size of ``path`` after checking that it is a regular file of a sane size; else a one-line error.

    A FIFO blocks a reader forever and ``/dev/zero`` never ends: anything we read whole must be a
    regular file, and its size is known before the first byte is read.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CompressorError(f"{what} {str(path)!r} does not exist") from None
    except OSError as err:  # ELOOP (a symlink loop), EACCES, ENAMETOOLONG ...
        raise CompressorError(f"cannot read {what} {str(path)!r}: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise CompressorError(f"{what} {str(path)!r} is a directory; pass a file")
    if not stat.S_ISREG(st.st_mode):
        raise CompressorError(f"{what} {str(path)!r} is not a regular file (a pipe, socket or device); "
                              "pass a file on disk")
    if st.st_size == 0 and not allow_empty:
        raise CompressorError(f"{what} {str(path)!r} is empty; pass a complete file")
    if st.st_size > max_bytes:
        raise CompressorError(f"{what} {str(path)!r} is {st.st_size / 2**20:.0f} MiB, more than the "
                              f"{max_bytes / 2**20:.0f} MiB limit; pass the right file")
    return st.st_size


class FileRecord(TypedDict):
    """Size and SHA-256 of a file, as a writer records it (the export manifest's ``files``, a cache's index)."""

    size_bytes: int
    sha256: str


def file_record(path: str | Path) -> FileRecord:
    """``{"size_bytes", "sha256"}`` of a file (read in 1 MiB blocks): what a writer records so that a reader can
    tell the file it wrote from one cut short, damaged or replaced since."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return {"size_bytes": Path(path).stat().st_size, "sha256": h.hexdigest()}
