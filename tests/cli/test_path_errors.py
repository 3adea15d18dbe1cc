"""An output path below a regular file: one line naming the path and the problem, exit code 2, for every command
that writes somewhere (before any work), and the same line from the CLI's net for a path no command checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

# (command family, the arguments; BLOCKED is the path below a regular file)
BLOCKED = "blocker/below"
CASES = {
    "distill": ["distill", "--student", "resnet10t", "--data", "synthetic", "--max-steps", "1", "--out", BLOCKED],
    "run": ["run", "CONFIG", "--out", BLOCKED],
    "pick": ["pick", "--budget-ms", "5", "--candidates", "resnet10t", "--out", BLOCKED],
    "demo": ["demo", "--out", BLOCKED],
    "report": ["report", "RUN", "--out", BLOCKED],
    "prune": ["prune", "RUN", "--ratio", "0.3", "--out", BLOCKED],
    "export": ["export", "RUN", "--format", "onnx", "--out", BLOCKED],
    "embed": ["embed", "RUN", "IMAGES", "--out", BLOCKED + ".npy"],
    "eval --json": ["eval", "RUN", "--json", BLOCKED + ".json"],
    "bench --json": ["bench", "RUN", "--json", BLOCKED + ".json"],
    "cache build": ["cache", "build", BLOCKED, "--teacher", "timm:resnet10t", "--data", "synthetic"],
    "data shard": ["data", "shard", "IMAGES", BLOCKED],
}


@pytest.fixture
def places(tmp_path: Path, image_folder: Path) -> dict[str, str]:
    (tmp_path / "blocker").write_text("a regular file where a folder is needed\n")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"student": "resnet10t", "data": "synthetic", "max_steps": 1}))
    return {"CONFIG": str(config), "RUN": str(tmp_path / "some-run"), "IMAGES": str(image_folder)}


@pytest.mark.parametrize("family", list(CASES))
def test_output_below_a_file_is_one_line_naming_it(family: str, places: dict[str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, cli) -> None:
    monkeypatch.chdir(tmp_path)
    args = [places.get(a, a) for a in CASES[family]]
    code, _, err = cli(*args)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "blocker/below" in lines[0] and "blocker is a file" in lines[0], lines[0]


def test_an_out_from_a_config_file_gets_the_same_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    """`out:` in a `compress run` YAML is not a flag the command checks first: the CLI's net names it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("a file\n")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"student": "resnet10t", "data": "synthetic", "max_steps": 1,
                                      "out": "blocker/run"}))
    code, _, err = cli("run", config)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "blocker/run" in lines[0] and "blocker is a file" in lines[0] and "Error:" not in lines[0]


def test_a_file_where_a_folder_goes_and_a_folder_where_a_file_goes(tmp_path: Path, cli) -> None:
    (tmp_path / "plain").write_text("x\n")
    code, _, err = cli("pick", "--budget-ms", "5", "--out", tmp_path / "plain")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is a file, not a folder" in err
    code, _, err = cli("eval", tmp_path / "run", "--json", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "it is a folder; pass a file name" in err
