"""Catalogue — several users of one run directory: real second processes holding real locks.

``compress export`` holds ``RUN/export/.lock`` (one writer); ``compress bench`` a reader's slot beside it
(any number of readers). Whoever comes second is refused at once with one line naming the holder; a
holder killed with kill -9 blocks no one, and its half-written export is cleared by the next export.
The fallback for platforms without ``fcntl`` (Windows: ``msvcrt``) runs the same algorithm; here it is
forced by hiding ``fcntl`` and standing in for ``msvcrt`` with ``flock`` (Windows' byte-range lock
behaves the same for one byte: exclusive, released with its process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.catalogue import REPO, one_line_error

# Hide fcntl, and play Windows' msvcrt with flock: the lock module then takes its no-fcntl path.
NO_FCNTL = """
import fcntl as _f, sys, types
class _Msvcrt(types.ModuleType):
    LK_UNLCK, LK_NBLCK = 0, 2
    def locking(self, fd, mode, nbytes):
        try:
            _f.flock(fd, (_f.LOCK_EX | _f.LOCK_NB) if mode == self.LK_NBLCK else _f.LOCK_UN)
        except BlockingIOError:
            raise PermissionError(13, "Permission denied") from None
sys.modules["fcntl"] = None
sys.modules["msvcrt"] = _Msvcrt("msvcrt")
"""
HOLD = """
import sys, time
from compressor.runlock import FolderLock
from compressor.utils import oslock
FolderLock(sys.argv[1], sys.argv[2], shared=sys.argv[3] == "shared").acquire()
print("held", oslock.BACKEND, flush=True)
time.sleep(120)
"""
TRY = """
import sys
from compressor.runlock import FolderLock
from compressor.errors import CompressorError
try:
    FolderLock(sys.argv[1], sys.argv[2], shared=sys.argv[3] == "shared").acquire()
except CompressorError as err:
    print("refused:", err)
else:
    print("taken")
"""


def _python(script: str, *args: object, fallback: bool = False) -> list[str]:
    return [sys.executable, "-c", (NO_FCNTL if fallback else "") + script, *map(str, args)]


@pytest.fixture
def holder():
    """``holder(folder, command, mode)``: a real second process holding ``folder``'s lock, killed at the end."""
    procs: list[subprocess.Popen] = []

    def start(folder: Path, command: str, mode: str = "exclusive", *, fallback: bool = False) -> subprocess.Popen:
        p = subprocess.Popen(_python(HOLD, folder, command, mode, fallback=fallback), stdout=subprocess.PIPE,
                             text=True, cwd=REPO)
        procs.append(p)
        assert p.stdout is not None
        assert p.stdout.readline().split() == ["held", "msvcrt" if fallback else "fcntl"]
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def _try(folder: Path, command: str, mode: str, *, fallback: bool = False) -> str:
    return subprocess.run(_python(TRY, folder, command, mode, fallback=fallback), capture_output=True, text=True,
                          timeout=30, check=True, cwd=REPO).stdout.strip()


def test_export_while_another_export_writes(cli, finished_run: Path, holder) -> None:
    p = holder(finished_run / "export", "export")
    t = time.perf_counter()
    one_line_error(cli, "export", finished_run, "--format", "onnx",
                   match=rf"export is in use by `compress export` \(pid {p.pid}\); run `compress export` again "
                         "when it has finished")
    assert time.perf_counter() - t < 10
    assert not (finished_run / "export" / "manifest.json").exists()


def test_bench_while_export_writes(cli, finished_run: Path, holder) -> None:
    p = holder(finished_run / "export", "export")
    one_line_error(cli, "bench", finished_run, "--backend", "torch", "--batch", "1", "--iters", "1",
                   match=rf"export is in use by `compress export` \(pid {p.pid}\); run `compress bench` again "
                         "when it has finished")


def test_embed_while_export_writes(cli, finished_run: Path, holder, tmp_path: Path) -> None:
    assert cli("export", finished_run, "--format", "onnx", "--check-size", "8")[0] == 0
    images = tmp_path / "imgs"
    images.mkdir()
    p = holder(finished_run / "export", "export")
    one_line_error(cli, "embed", finished_run / "export" / "model.onnx", images, "--out", tmp_path / "e.npy",
                   match=rf"export is in use by `compress export` \(pid {p.pid}\); run `compress embed` again "
                         "when it has finished")
    assert not (tmp_path / "e.npy").exists()


def test_export_while_bench_reads(cli, finished_run: Path, holder) -> None:
    holder(finished_run / "export", "bench", "shared")
    p = holder(finished_run / "export", "bench", "shared")  # readers share: a second one gets in too
    one_line_error(cli, "export", finished_run, "--format", "onnx",
                   match=rf"export is in use by `compress bench` \(pid ({p.pid}|\d+)\); run `compress export` "
                         "again when it has finished")


def test_two_exports_at_once_and_one_killed(cli, finished_run: Path) -> None:
    """Two real `compress export` at once: each completes or names the other; then one killed with kill -9
    mid-export: the next export completes and clears what it left. The manifest always matches the files."""
    cmd = [sys.executable, "-m", "compressor", "export", str(finished_run), "--format", "onnx",
           "--check-size", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for _ in range(2)]
    results = [(p.pid, p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    assert any(rc == 0 for _, rc, _ in results), results
    for pid, rc, err in results:
        if rc != 0:
            other = next(q for q, _, _ in results if q != pid)
            assert err.strip() == (f"error: {finished_run / 'export'} is in use by `compress export` (pid {other}); "
                                   "run `compress export` again when it has finished"), err
    _manifest_matches_files(finished_run / "export")

    victim = subprocess.Popen([*cmd[:-4], "--format", "onnx-fp16", "--check-size", "8"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    t0 = time.time()
    while not list((finished_run / "export").glob(".export-*")):  # its work folder: it is mid-export
        assert victim.poll() is None and time.time() - t0 < 300
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    code, _, err = cli("export", finished_run, "--format", "onnx-fp16", "--check-size", "8")
    assert code == 0, err
    assert not list((finished_run / "export").glob(".export-*"))
    assert sorted(_manifest_matches_files(finished_run / "export")) == ["model.fp16.onnx", "model.onnx"]


def _manifest_matches_files(export: Path) -> dict:
    exports = json.loads((export / "manifest.json").read_text())["exports"]
    for name, entry in exports.items():
        assert (export / name).stat().st_size == entry["size_bytes"], name
    return exports


@pytest.mark.parametrize("fallback", [False, True], ids=["fcntl", "no-fcntl"])
def test_readers_share_writers_exclude(tmp_path: Path, holder, fallback: bool) -> None:
    """The lock's algorithm on both back ends: the rules, the holder named, and kill -9 releasing it."""
    folder = tmp_path / "export"
    reader = holder(folder, "bench", "shared", fallback=fallback)
    assert _try(folder, "bench", "shared", fallback=fallback) == "taken"
    assert _try(folder, "export", "exclusive", fallback=fallback) == (
        f"refused: {folder} is in use by `compress bench` (pid {reader.pid}); run `compress export` again when it "
        "has finished")
    os.kill(reader.pid, signal.SIGKILL)
    reader.wait()
    writer = holder(folder, "export", fallback=fallback)
    for mode in ("shared", "exclusive"):
        assert _try(folder, "bench", mode, fallback=fallback) == (
            f"refused: {folder} is in use by `compress export` (pid {writer.pid}); run `compress bench` again when "
            "it has finished")


def test_no_fcntl_and_no_msvcrt(tmp_path: Path) -> None:
    """A platform with neither: the package and the CLI import; taking a lock says why it cannot."""
    script = ("import sys\nsys.modules['fcntl'] = None\nsys.modules['msvcrt'] = None\n"
              "import compressor.cli.main, compressor.engine.trainer\n" + TRY)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "r"), "distill", "exclusive"],
                         capture_output=True, text=True, timeout=300, check=True, cwd=REPO).stdout.strip()
    assert out == ("refused: this platform has neither fcntl nor msvcrt, so run directories cannot be locked; "
                   "run compressor on Linux, macOS or Windows")
