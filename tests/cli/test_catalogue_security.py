"""Catalogue — security: hostile files must be refused quickly, in bounded memory, without running anything.

The cases that used to hang (a FIFO, /dev/zero) or exhaust memory (a YAML billion laughs) run in a
real subprocess under a timeout, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.catalogue import TINY, assert_one_line, compress_subprocess, one_line_error

TEACHER = [*TINY[:-2], "--recipe", "feature-kd", "--teacher", "timm:test_resnet", "--max-steps", "1"]


def _laughs(levels: int = 9) -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for prev, cur in list(zip("abcdefgh", "bcdefghi", strict=True))[: levels - 1]:
        text += f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]\n"
    return text


def test_teacher_weights_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    proc = compress_subprocess("distill", *TEACHER, "--teacher-weights", fifo, "--out", tmp_path / "r", timeout=120)
    assert_one_line(proc, r"weights\.pth' is not a regular file \(a pipe, socket or device\)")


def test_teacher_weights_dev_zero_is_not_read(cli, tmp_path: Path) -> None:
    one_line_error(cli, "distill", *TEACHER, "--teacher-weights", "/dev/zero", "--out", tmp_path / "r",
                   match=r"/dev/zero' is not a regular file")


def test_config_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    proc = compress_subprocess("distill", *TINY, "--config", fifo, "--out", tmp_path / "r", timeout=120)
    assert_one_line(proc, r"c\.yaml' is not a regular file")


def test_billion_laughs_config_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    cfg = tmp_path / "laughs.yaml"
    cfg.write_text(_laughs() + "student: *i\n")
    proc = compress_subprocess("distill", *TINY, "--config", cfg, "--out", tmp_path / "r", timeout=120)
    assert_one_line(proc, r"expands to more than \d+ values .*write the values out plainly")


def test_billion_laughs_in_a_run_config_read_on_resume(cli, finished_run: Path) -> None:
    (finished_run / "config.yaml").write_text(_laughs())
    one_line_error(cli, "distill", *TINY, "--resume", "--max-steps", "3", "--out", finished_run,
                   match=r"expands to more than")


def test_type_error_never_prints_an_expanded_value(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    lol = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    cfg.write_text(f"student: {{a: &a {lol}, b: &b [{','.join(['*a'] * 9)}], c: [{','.join(['*b'] * 9)}]}}\n")
    err = one_line_error(cli, "distill", *TINY[2:], "--config", cfg, "--out", tmp_path / "r",
                         match=r"student in .* must be str, got a dict")
    assert len(err) < 300 and "lol" not in err


def test_config_larger_than_the_limit(cli, tmp_path: Path) -> None:
    cfg = tmp_path / "big.yaml"
    cfg.write_text("# " + "x" * (2 << 20) + "\n")
    one_line_error(cli, "distill", *TINY, "--config", cfg, "--out", tmp_path / "r", match=r"MiB limit")


def test_student_json_pointing_at_dev_zero(cli, finished_run: Path) -> None:
    (finished_run / "student.json").unlink()
    (finished_run / "student.json").symlink_to("/dev/zero")
    one_line_error(cli, "eval", finished_run, match=r"student\.json' is not a regular file")


def test_student_weights_fifo_does_not_hang(finished_run: Path) -> None:
    w = finished_run / "student.safetensors"
    w.unlink()
    os.mkfifo(w)
    proc = compress_subprocess("export", finished_run, "--format", "onnx", timeout=120)
    assert_one_line(proc, r"student\.safetensors' is not a regular file")


def test_run_config_symlink_loop(cli, finished_run: Path) -> None:
    cfg = finished_run / "config.yaml"
    cfg.unlink()
    cfg.symlink_to(cfg)
    one_line_error(cli, "eval", finished_run, match=r"config\.yaml|symbolic")


@pytest.mark.parametrize("name", ["evil.pth", "evil.pt"])
def test_pickle_with_code_is_refused_not_run(cli, tmp_path: Path, name: str) -> None:
    import pickle

    marker = tmp_path / "marker"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / name, "wb") as fh:
        pickle.dump({"state_dict": Exploit()}, fh)
    one_line_error(cli, "distill", *TEACHER, "--teacher-weights", tmp_path / name, "--out", tmp_path / "r",
                   match=r"--trust-checkpoint|weights_only")
    assert not marker.exists()
