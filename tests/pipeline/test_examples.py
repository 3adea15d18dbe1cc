"""Every example config is valid as written, and runs through `compress run` with only what a CPU needs
overridden: 2 steps on synthetic images at 32 px in fp32, randomly initialised teachers (no download offline)
and --quick eval/export/bench sizes. Everything else runs as the file says (mokd's `workers: 10` included:
forked loader processes for two steps cost no measurable time here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compressor.engine.config import resolve_config
from compressor.pipeline.config import pipeline_config, read_run_config

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
SMALL = ["--max-steps", "2", "--data", "synthetic", "--image-size", "32", "--batch-size", "4", "--precision", "fp32",
         "--quick", "--quiet"]
# CPU time only: MOKD's 65,536-prototype heads (four of them, plus EMA copies) are most of that example's
# two steps; the head width is a number, not a code path.
EXTRA = {"mokd_r50_vits": ["--set", "out_dim=1024"]}


@pytest.mark.parametrize("config", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_is_valid_as_written(config: Path) -> None:
    """The file with no override at all through the resolvers `compress run` uses (every range, every key)."""
    train, pipe = read_run_config(config)
    cfg = resolve_config(train)
    pipeline_config(pipe, str(config))
    assert cfg.workers == train.get("workers", cfg.workers)


@pytest.mark.slow
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
