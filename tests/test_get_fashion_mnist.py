"""scripts/get-fashion-mnist.sh (make test / make demo): without apt and without the files, ONE line naming both ways
to get them (the Debian package, or the four files in a folder named by COMPRESS_DATA, which needs no root)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "get-fashion-mnist.sh"
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")


def _run(tmp_path: Path, *args: str, apt: str | None = None) -> subprocess.CompletedProcess:
    """The script with a PATH of only what it needs (no apt unless ``apt`` is a fake apt-get's body) and no data."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("bash", "id", "tail"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or pytest.fail(f"{tool} not found"))
    if apt is not None:
        (bin_dir / "apt-get").write_text(f"#!{shutil.which('bash')}\n{apt}\n")
        (bin_dir / "apt-get").chmod(0o755)
    env = {"PATH": str(bin_dir), "COMPRESS_DATA": str(tmp_path / "no-data"),
           "FASHION_MNIST_SYSTEM_DIR": str(tmp_path / "no-package")}
    return subprocess.run([str(bin_dir / "bash"), str(SCRIPT), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def _names_both_ways(line: str) -> bool:
    debian = "apt-get install dataset-fashion-mnist" in line
    return debian and "COMPRESS_DATA=" in line and all(f in line for f in FILES)


def test_without_apt_or_files_one_line_names_both_ways(tmp_path: Path) -> None:
    proc = _run(tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == 1, proc.stderr  # make test goes on; those tests are skipped
    assert lines[0].startswith("warning:") and "apt-get is not available" in lines[0] and _names_both_ways(lines[0])
    proc = _run(tmp_path / "demo", "--require")  # make demo cannot go on
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:") and _names_both_ways(lines[0])


def test_apt_failing_is_folded_into_the_one_line(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--require", apt='[ "$1" = update ] && exit 0\n'
                                           'echo "Reading package lists..." >&2\n'
                                           'echo "E: Unable to locate package dataset-fashion-mnist" >&2\nexit 100')
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert "E: Unable to locate package" in lines[0] and _names_both_ways(lines[0])


def test_files_in_compress_data_need_nothing_else(tmp_path: Path) -> None:
    data = tmp_path / "no-data"
    data.mkdir()
    (data / FILES[0]).write_bytes(b"")
    proc = _run(tmp_path, "--require")
    assert proc.returncode == 0 and proc.stderr == ""
