"""The CLI as a new user meets it: usage errors, --version, help that shows defaults, every config field a flag."""

from __future__ import annotations

import dataclasses
import re
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from compressor.engine.config import TrainConfig


def _flat(text: str) -> str:
    return " ".join(text.split())  # help wraps lines at the terminal width


@pytest.mark.parametrize(("args", "message"), [
    (["distil"], "No such command 'distil'. Did you mean 'distill'"),
    (["distill", "--studnet", "resnet18"], "No such option: --studnet"),
    (["list", "teacherz"], "'teacherz' is not one of"),
])
def test_usage_errors_are_clicks_own_message(cli, args: list[str], message: str) -> None:
    code, _, err = cli(*args)
    assert code == 2
    assert err.strip() == f"error: {_flat(err.strip()[7:])}" and message in err, err
    for wrapper in ("UsageError", "NoSuchOption", "BadParameter", "--debug", "Traceback"):
        assert wrapper not in err, err


def test_version(cli) -> None:
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"compress {version('compressor')}"


@pytest.mark.parametrize("command", ["distill", "eval", "export", "bench", "list", "demo"])
def test_on_off_flags_take_no_value_placeholder(cli, command: str) -> None:
    code, out, _ = cli(command, "--help")
    assert code == 0 and "--help" in out
    assert "<bool>" not in out and "BOOLEAN" not in out, out


def test_distill_help_shows_every_field_and_its_default(cli) -> None:
    code, out, _ = cli("distill", "--help")
    assert code == 0
    text = _flat(out.split("Options:", 1)[1])
    for f in dataclasses.fields(TrainConfig):
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        assert re.search(rf"(^| ){re.escape(flag)}\b", text), flag
        if f.default not in (None, "", False, dataclasses.MISSING):
            assert f"[default: {f.default}]" in text.split(flag, 1)[1].split(" --", 1)[0], (flag, f.default)


def test_every_field_reaches_the_run_and_config_yaml_records_resolved_values(cli, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("batch_size: 2\nlog_every: 5\n")
    run = tmp_path / "r"
    # --batch-size 4 equals nothing special, --keep-checkpoints/--log-every were not flags before; no --image-size
    code, _, err = cli("distill", "--config", base, "--student", "resnet10t", "--recipe", "simclr", "--data",
                       "synthetic", "--max-images", "4", "--batch-size", "4", "--max-steps", "2",
                       "--checkpoint-every", "1", "--keep-checkpoints", "1", "--log-every", "1",
                       "--set", "lr=3e-4", "--out", run, "--quiet")
    assert code == 0, err
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert (cfg["batch_size"], cfg["keep_checkpoints"], cfg["log_every"]) == (4, 1, 1)
    assert cfg["recipe_config"]["lr"] == pytest.approx(3e-4)
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 1
    meta = yaml.safe_load((run / "student.json").read_text())
    assert cfg["image_size"] == meta["image_size"] and cfg["image_size"] is not None  # the resolved size
    assert cfg["out"] == str(run)


def test_a_flag_equal_to_its_default_still_beats_the_yaml_file(tmp_path: Path, cli) -> None:
    """Flags carry their real defaults now; only the ones typed on the command line override the file."""
    from compressor.engine.config import resolve_config

    f = tmp_path / "c.yaml"
    f.write_text("student: resnet18\ndata: synthetic\nbatch_size: 16\nseed: 3\n")
    cfg = resolve_config({"batch_size": 64}, f)
    assert (cfg.batch_size, cfg.seed) == (64, 3)
