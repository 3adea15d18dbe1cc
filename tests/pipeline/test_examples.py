"""Every example config runs through `compress run` with a small override: 2 steps on synthetic images at
32 px, randomly initialised teachers (no download offline) and --quick eval/export/bench sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
SMALL = ["--max-steps", "2", "--data", "synthetic", "--image-size", "32", "--batch-size", "4", "--workers", "0",
         "--precision", "fp32", "--quick", "--quiet"]
# CPU time only: MOKD's 65,536-prototype heads (four of them, plus EMA copies) are most of that example's
# two steps; the head width is a number, not a code path.
EXTRA = {"mokd_r50_vits": ["--set", "out_dim=1024"]}


@pytest.mark.parametrize("config", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_every_stage(config: Path, tmp_path: Path, cli) -> None:
    raw = yaml.safe_load(config.read_text())
    args = [*SMALL, *EXTRA.get(config.stem, []), "--out", tmp_path / "run"]
    teacher = str(raw.get("teacher") or "")
    if teacher:
        if not (Path(teacher) / "student.json").is_file() and "/" in teacher:
            args += ["--teacher", "timm:resnet10t"]  # the config names a teacher run trained beforehand
        args += ["--teacher-weights", "random", "--teacher-image-size", "32"]
    code, out, err = cli("run", config, *args)
    assert code == 0, err[-3000:]
    run = tmp_path / "run"
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
    formats = (raw.get("pipeline") or {}).get("export", ["onnx", "onnx-int8"])
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    assert sorted(e["format"] for e in manifest["exports"].values()) == sorted(formats)
    bench = json.loads((run / "bench.json").read_text())
    assert {r["format"] for r in bench["results"]} >= {"pytorch", *formats}
    assert (run / "report.html").is_file() and "report:" in out
