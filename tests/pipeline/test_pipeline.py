"""`compress run`: every stage runs once, is skipped when current, re-runs when its inputs change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from compressor.pipeline import run_pipeline

TINY = {"student": "resnet10t", "teacher": "timm:resnet10t", "teacher_weights": "random",
        "teacher_image_size": 32, "recipe": "mvmr", "recipe_config": {"projector_dims": [32, 32]},
        "data": "synthetic", "image_size": 32, "batch_size": 8, "max_steps": 2, "log_every": 1,
        "pipeline": {"export": ["onnx"]}}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipe")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "out": str(root / "run")}))
    return path


def test_stages_run_then_skip_then_follow_their_inputs(tiny_config: Path, cli) -> None:
    first = run_pipeline(tiny_config, quick=True, progress=False)
    assert first.ran == ["distill", "eval", "export", "bench", "report"]
    run = first.run_dir
    assert (run / "export" / "model.onnx").is_file() and first.report.is_file()

    again = run_pipeline(tiny_config, quick=True, progress=False)
    assert again.ran == [] and again.skipped == ["distill", "eval", "export", "bench", "report"]

    # Another export list: export, bench and report follow; distill and eval stay current.
    more = run_pipeline(tiny_config, quick=True, progress=False, pipeline_overrides={"export": ["onnx-int8"]})
    assert more.ran == ["export", "bench", "report"], more
    bench = json.loads((run / "bench.json").read_text())
    assert {r["format"] for r in bench["results"]} >= {"pytorch", "onnx", "onnx-int8"}

    forced = run_pipeline(tiny_config, quick=True, progress=False, pipeline_overrides={"export": ["onnx-int8"]},
                          force=["eval"], only=["eval"])
    assert forced.ran == ["eval"]

    # A changed training configuration is not silently trained over: the error names --force distill.
    code, _, err = cli("run", tiny_config, "--quick", "--quiet", "--max-steps", "3")
    assert code != 0 and "--force distill" in err and "Traceback" not in err
    assert (run / "student.json").is_file()  # nothing lost


def test_overrides_and_bad_input_are_one_line_errors(tiny_config: Path, cli) -> None:
    for args, needle in ((["--max-stpes", "2"], "--max-steps"), (["--only", "train"], "distill"),
                         (["--pipeline-set", "exports=onnx"], "export"), (["--batch-size", "many"], "batch_size")):
        code, _, err = cli("run", tiny_config, "--quiet", *args)
        assert code != 0, args
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_parse_distill_flags_follows_trainconfig() -> None:
    from compressor.pipeline.config import parse_distill_flags

    got = parse_distill_flags(["--max-steps", "2", "--teacher-weights=random", "--resume", "--set", "lr=1e-3",
                               "--image-size", "32", "--teacher", "timm:resnet10t"])
    # --set values stay as typed, like distill's; the recipe's config coerces them (the one coercion path)
    assert got == {"max_steps": 2, "teacher_weights": "random", "resume": True, "recipe_config": {"lr": "1e-3"},
                   "image_size": 32, "teacher": "timm:resnet10t"}
    from compressor.engine.recipe import get_recipe, make_config

    assert make_config(get_recipe("mvmr"), got["recipe_config"]).lr == 1e-3
