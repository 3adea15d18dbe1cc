"""Catalogue — files and formats: configs, model descriptions and exported files that are not what they claim."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.catalogue import TINY, digest, one_line_error


@pytest.mark.parametrize(("content", "match"), [
    (b"student: r\xe9snet\n", r"is not UTF-8 text \(byte \d+\); save it as UTF-8"),
    (b"- a\n- b\n", r"must be a mapping of option: value \(got list\)"),
    (b"recipe_config: 3\n", r"recipe_config .* must be dict"),
    (b"\t student: x\n", r"not valid YAML at line 1"),
], ids=["non-utf8", "a-list", "recipe_config-not-a-mapping", "tab"])
def test_config_file_contents(cli, tmp_path: Path, content: bytes, match: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    one_line_error(cli, "distill", *TINY, "--config", cfg, "--out", tmp_path / "r", match=match)


def test_config_is_a_directory(cli, tmp_path: Path) -> None:
    one_line_error(cli, "distill", *TINY, "--config", tmp_path, "--out", tmp_path / "r", match=r"is a directory")


def test_run_config_yaml_not_utf8_on_resume(cli, finished_run: Path) -> None:
    (finished_run / "config.yaml").write_bytes(b"student: \xff\xfe\n")
    one_line_error(cli, "distill", *TINY, "--resume", "--max-steps", "3", "--out", finished_run,
                   match=r"config\.yaml' is not UTF-8")


def test_eval_reads_a_damaged_run_config(cli, finished_run: Path) -> None:
    (finished_run / "config.yaml").write_text("data: [unclosed\n")
    one_line_error(cli, "eval", finished_run, match=r"config\.yaml is corrupt \(not valid YAML at line")


def test_student_json_is_not_json(cli, finished_run: Path) -> None:
    (finished_run / "student.json").write_bytes(b"\x00\x01garbage")
    one_line_error(cli, "bench", finished_run, "--backend", "torch",
                   match=r"student\.json is (corrupt|not valid JSON)")


def test_student_json_is_a_list(cli, finished_run: Path) -> None:
    (finished_run / "student.json").write_text("[1, 2]")
    one_line_error(cli, "eval", finished_run, match=r"student\.json is corrupt \(not a JSON object\)")


def test_bench_a_file_that_is_not_onnx(cli, tmp_path: Path) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("this is a README, not a model\n")
    one_line_error(cli, "bench", fake, "--backend", "ort-cpu", match=r"model\.onnx is not a readable ONNX model")


def test_bench_an_empty_onnx_file(cli, tmp_path: Path) -> None:
    fake = tmp_path / "empty.onnx"
    fake.write_bytes(b"")
    one_line_error(cli, "bench", fake, "--backend", "ort-cpu", match=r"empty\.onnx' is empty")


def test_bench_a_file_of_unknown_kind(cli, tmp_path: Path) -> None:
    f = tmp_path / "model.tflite"
    f.write_bytes(b"x")
    one_line_error(cli, "bench", f, match=r"cannot bench model\.tflite: expected a run directory, a \.onnx")


def test_bench_marks_an_export_older_than_the_student(cli, finished_run: Path) -> None:
    code, _, err = cli("export", finished_run, "--format", "onnx", "--check-size", "8")
    assert code == 0, err
    onnx = finished_run / "export" / "model.onnx"
    old = (finished_run / "student.safetensors").stat().st_mtime - 60
    os.utime(onnx, (old, old))
    code, out, err = cli("bench", finished_run, "--backend", "ort-cpu", "--batch", "1", "--iters", "2",
                         "--warmup", "0", "--seconds", "0.01")
    assert code == 0, err
    assert "stale: model.onnx is older than" in out


def test_teacher_weights_is_a_directory(cli, tmp_path: Path) -> None:
    one_line_error(cli, "distill", *TINY[:-2], "--recipe", "feature-kd", "--teacher", "timm:test_resnet",
                   "--teacher-weights", tmp_path, "--max-steps", "1", "--out", tmp_path / "r",
                   match=r"is a directory; --teacher-weights takes a checkpoint file")


def test_teacher_weights_empty_file(cli, tmp_path: Path) -> None:
    w = tmp_path / "w.pth"
    w.write_bytes(b"")
    one_line_error(cli, "distill", *TINY[:-2], "--recipe", "feature-kd", "--teacher", "timm:test_resnet",
                   "--teacher-weights", w, "--max-steps", "1", "--out", tmp_path / "r",
                   match=r"w\.pth' is empty; pass a complete file")


def test_eval_of_a_missing_run(cli, tmp_path: Path) -> None:
    one_line_error(cli, "eval", tmp_path / "nope", match=r"run directory .* does not exist")


def test_export_keeps_the_run_when_the_format_is_unknown(cli, finished_run: Path) -> None:
    before = digest(finished_run)
    one_line_error(cli, "export", finished_run, "--format", "onxx", match=r"onxx")
    assert digest(finished_run) == before
