"""`compress prune` on the command line: wrong values are one line and exit code 2; help says what it does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(("args", "match"), [
    (["--ratio", "0"], "--ratio is the fraction of channels to remove, strictly between 0 and 1"),
    (["--ratio", "1.5"], "--ratio is the fraction of channels to remove, strictly between 0 and 1"),
    (["--ratio", "0.3", "--steps", "0"], "--steps must be a positive number of steps, got 0"),
])
def test_bad_values_are_one_line(cli, source_run: Path, args: list[str], match: str) -> None:
    code, _, err = cli("prune", source_run, *args)
    assert code == 2 and err.count("\n") == 1 and match in err, err


def test_a_folder_that_is_not_a_run_is_one_line(cli, tmp_path: Path) -> None:
    code, _, err = cli("prune", tmp_path, "--ratio", "0.3")
    assert code == 2 and err.count("\n") == 1 and "student.json is missing" in err, err
    code, _, err = cli("prune", tmp_path / "nowhere", "--ratio", "0.3")
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err, err


def test_prune_from_the_command_line(cli, source_run: Path, tmp_path: Path) -> None:
    code, out, err = cli("prune", source_run, "--ratio", "0.25", "--steps", "2", "--batch-size", "4",
                         "--lr", "0.001", "--seed", "1", "--out", tmp_path / "p")
    assert code == 0, err
    assert f"pruned student written to {tmp_path / 'p'}" in out
    record = json.loads((tmp_path / "p" / "student.json").read_text())["pruned"]
    assert record["ratio"] == 0.25 and record["recovery"]["steps"] == 2 and record["recovery"]["seed"] == 1


def test_help_says_what_it_does_and_loads_no_torch() -> None:
    code = ("import sys\nfrom compressor.cli.main import main\n"
            "try:\n    main(['prune', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('torch', 'timm', 'torch_pruning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "torch-pruning" in out and "embedding keeps its" in " ".join(out.split()) and "--ratio" in out
    assert out.strip().splitlines()[-1] == "LOADED []"
