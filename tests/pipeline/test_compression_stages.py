"""`compress run` with `pipeline: {prune_ratio, qad_steps}`: a pruned student and QAD INT8 files, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compressor.manifest import read_manifest
from compressor.pipeline import run_pipeline
from tests.pipeline.test_pipeline import TINY

pytest.importorskip("nncf")
pytest.importorskip("torch_pruning")


@pytest.mark.slow
def test_prune_and_qad_stages_run_end_to_end(tmp_path: Path, cli) -> None:
    config = tmp_path / "compress.yaml"
    config.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path / "run"),
                                      "pipeline": {"export": ["onnx", "onnx-int8"], "qad_steps": 2,
                                                   "prune_ratio": 0.3}}))
    code, out, err = cli("run", config, "--quick", "--quiet")
    assert code == 0, err
    run = tmp_path / "run"
    pruned = run / "pruned"
    meta = json.loads((pruned / "student.json").read_text())
    assert meta["pruned"]["ratio"] == 0.3 and meta["pruned"]["recovery"]["steps"] == 2  # --quick: 2 steps
    assert meta["pruned"]["params_after"] < meta["pruned"]["params_before"]
    for r in (run, pruned):  # the student and the pruned student: float file and the QAD INT8 file
        exports = read_manifest(r / "export")["exports"]
        assert set(exports) == {"model.onnx", "model.int8.qad.onnx"}, exports
        assert exports["model.int8.qad.onnx"]["qad"]["steps"] == 2
        bench = json.loads((r / "bench.json").read_text())
        assert any((row.get("file") or "").endswith("model.int8.qad.onnx") for row in bench["results"])
    evaluation = json.loads((run / "eval.json").read_text())
    assert evaluation["pruned"]["ratio"] == 0.3 and 0 <= evaluation["pruned"]["knn_top1"] <= 1

    again = run_pipeline(config, quick=True, progress=False)
    assert again.ran == [] and again.skipped == ["distill", "prune", "eval", "export", "bench", "report"]


@pytest.mark.parametrize(("setting", "needle"), [("prune_ratio=1.5", "--ratio"), ("prune_ratio=0", "prune_ratio"),
                                                  ("qad_steps=0", "qad_steps")])
def test_bad_compression_settings_are_one_line(tmp_path: Path, cli, setting: str, needle: str) -> None:
    config = tmp_path / "compress.yaml"
    config.write_text(yaml.safe_dump({**TINY, "out": str(tmp_path / "run")}))
    code, _, err = cli("run", config, "--quick", "--quiet", "--pipeline-set", setting)
    assert code == 2 and needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "student.json").exists()  # refused before training
