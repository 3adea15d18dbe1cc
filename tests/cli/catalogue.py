"""Shared pieces of the bad-input catalogue (tests/cli/test_catalogue_*.py).

Every case runs the real ``compress`` command on real files and asserts the same four things: a
non-zero exit, one line on stderr that names the fix, no traceback, and nothing lost.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A tiny real run: timm's test_resnet at 32 px, 16 synthetic images; numeric cases fail before it is built.
TINY = ["--student", "test_resnet", "--recipe", "simclr", "--data", "synthetic", "--batch-size", "8",
        "--image-size", "32", "--max-images", "16", "--quiet", "--set", "projector_dims=[16,16]"]


def one_line_error(cli, *args, match: str, code: int | None = None) -> str:
    """Run ``compress ARGS``; assert the catalogue's contract and return stderr."""
    rc, _, err = cli(*args)
    assert rc != 0, f"exit 0 for {args}: {err}"
    if code is not None:
        assert rc == code, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert re.search(match, lines[0]), err
    return lines[0]


def digest(folder: Path) -> dict[str, str]:
    """Content hashes of every file under ``folder`` (the lock files aside): 'nothing lost' compares two."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".lock")}


def compress_subprocess(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """``compress ARGS`` in a real process (for cases that could hang: a timeout turns a hang into a failure)."""
    return subprocess.run([sys.executable, "-m", "compressor", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=REPO)


def assert_one_line(proc: subprocess.CompletedProcess, match: str) -> None:
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and re.search(match, lines[0]), proc.stderr
