"""The optional parts are pip extras: without one, the rest works and its own use is one line naming the extra.

Each case runs the real ``compress`` entry point in a fresh interpreter in which the extra's module cannot be
imported (``sys.modules[name] = None``: Python's own way to make an import fail), as on a machine where
``pip install compressor`` ran without ``[clip]``, ``[report]`` or ``[tensorboard]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compressor.errors import CompressorError
from compressor.utils.extras import EXTRAS, require


def _compress(args: list[str], blocked: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    code = ("import sys\n"
            f"for m in {blocked!r}:\n    sys.modules[m] = None\n"
            "from compressor.cli.main import main\n"
            f"main({args!r})\n"
            f"print('LOADED', sorted(m for m in {blocked!r} if sys.modules.get(m) is not None))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=600)


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    return lines[-1]


def test_clip_teacher_without_open_clip_names_the_extra(tmp_path: Path) -> None:
    r = _compress(["distill", "--teacher", "clip-vit-b16", "--teacher-weights", "random", "--student", "resnet10t",
                   "--data", "synthetic", "--image-size", "32", "--batch-size", "4", "--max-steps", "1",
                   "--out", str(tmp_path / "run")], ("open_clip",), tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    line = _one_line(r.stderr)
    assert line == ("error: the CLIP and SigLIP teachers (open_clip image towers) needs open-clip-torch, which is "
                    "not installed: pip install 'compressor[clip]'"), r.stderr


def test_the_zoo_lists_and_resolves_without_open_clip(tmp_path: Path) -> None:
    r = _compress(["list", "teachers"], ("open_clip",), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "clip-vit-b16" in r.stdout and "siglip2-vit-b16" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "LOADED []"


@pytest.fixture(scope="module")
def run_without_tensorboard(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("extras")
    r = _compress(["distill", "--recipe", "simclr", "--student", "resnet10t", "--data", "synthetic",
                   "--image-size", "32", "--batch-size", "8", "--max-steps", "2", "--out", str(tmp / "run")],
                  ("tensorboard",), tmp)
    return tmp / "run", r


def test_training_without_tensorboard_says_so_once_and_keeps_every_metric(run_without_tensorboard) -> None:
    run, r = run_without_tensorboard
    assert r.returncode == 0, r.stderr
    out = " ".join((r.stdout + r.stderr).split())  # the log wraps at the terminal's width
    assert out.count("compressor[tensorboard]") == 1, out
    assert ("no TensorBoard files: TensorBoard logging needs tensorboard, which is not installed: pip install "
            "'compressor[tensorboard]'; metrics.jsonl has every value") in out
    assert not (run / "tb").exists()
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    assert rows and all("loss" in row for row in rows)


def test_report_without_matplotlib_keeps_its_tables_and_names_the_extra(run_without_tensorboard) -> None:
    run, _ = run_without_tensorboard
    r = _compress(["report", str(run)], ("matplotlib",), run.parent)
    assert r.returncode == 0, r.stderr
    md = (run / "report.md").read_text()
    assert "## Configuration" in md and "![" not in md
    assert "no plots: the report's plots needs matplotlib, which is not installed: pip install 'compressor[report]'" \
        in md
    assert not list(run.glob("report/*.png"))


def test_require_names_each_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module, (extra, package) in EXTRAS.items():
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(CompressorError) as err:
            require(module, "--plot")
        assert str(err.value) == f"--plot needs {package}, which is not installed: pip install 'compressor[{extra}]'"
