"""Configuration: YAML fields = flags, flags win, unknown keys and wrong types are errors."""

from pathlib import Path

import pytest

from compressor.engine.config import parse_set_options, resolve_config
from compressor.engine.recipe import make_config
from compressor.engine.schedule import cosine_schedule
from compressor.errors import CompressorError
from compressor.recipes.mvmr import MVMR


def test_yaml_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("student: resnet18\ndata: synthetic\nbatch-size: 16\nrecipe_config: {lr: 0.5}\n")
    cfg = resolve_config({"batch_size": 8, "seed": None, "recipe_config": {"w_mse": 2.0}}, str(f))
    assert (cfg.student, cfg.batch_size, cfg.seed) == ("resnet18", 8, 0)
    assert cfg.recipe_config == {"lr": 0.5, "w_mse": 2.0}
    assert cfg.epochs == 1  # neither epochs nor max_steps: one epoch


@pytest.mark.parametrize(("text", "match"), [
    ("student: resnet18\nbatch_sise: 3\n", "unknown key 'batch_sise'.*batch_size"),
    ("student: resnet18\nbatch_size: many\n", "batch_size .* must be int"),
    ("student: [resnet18\n", "not valid YAML at line"),
    ("- a\n- b\n", "must be a mapping"),
])
def test_bad_yaml(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(CompressorError, match=match):
        resolve_config({}, str(f))


def test_recipe_options_are_checked() -> None:
    assert make_config(MVMR, {"projector_dims": [32, 16], "lr": 1}).projector_dims == (32, 16)
    with pytest.raises(CompressorError, match="unknown mvmr option 'lrr'.*'lr'"):
        make_config(MVMR, {"lrr": 1.0})
    with pytest.raises(CompressorError, match="mvmr.lr must be float"):
        make_config(MVMR, {"lr": "fast"})
    assert make_config(MVMR, parse_set_options(["lr=3e-4", "projector_dims=[8,8]"])).lr == 3e-4


def test_cosine_schedule_shape() -> None:
    s = cosine_schedule(100, 10, 1.0, 0.0)
    assert len(s) == 100 and s[0] == pytest.approx(0.1) and s[9] == pytest.approx(1.0)
    assert s[10] == pytest.approx(1.0) and s[-1] < 0.01
    assert all(a >= b for a, b in zip(s[10:], s[11:], strict=False))
