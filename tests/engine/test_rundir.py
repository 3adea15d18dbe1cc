"""RunDir: one owner of the run directory's file names, one wording for missing and corrupt files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from compressor.errors import CompressorError
from compressor.models.saved import load_encoder, save_encoder
from compressor.models.students import build_student
from compressor.rundir import RunDir


def test_unfinished_run_names_the_real_directory(tmp_path: Path) -> None:
    """models/saved.py used to print a literal ``{run_dir}`` (a missing f-string prefix)."""
    run = tmp_path / "half-done"
    run.mkdir()
    with pytest.raises(CompressorError) as info:
        load_encoder(run)
    msg = str(info.value)
    assert "{run_dir}" not in msg
    assert f"compress distill --resume --out {run}" in msg and "student.json is missing" in msg


def test_bench_and_export_users_are_not_told_about_calib_data(tmp_path: Path) -> None:
    """A damaged config.yaml used to say "pass --calib-data", a flag `compress bench` does not have."""
    from compressor.export.images import run_data

    (tmp_path / "config.yaml").write_text("data: [unclosed\n")
    with pytest.raises(CompressorError) as info:
        run_data(tmp_path)
    assert "--calib-data" not in str(info.value)
    assert "config.yaml is corrupt" in str(info.value) and "--data SPEC" in str(info.value)


@pytest.mark.parametrize(("name", "content", "read"), [
    ("config.yaml", "a: [1\n", lambda r: r.read_config()),
    ("config.yaml", "- just\n- a list\n", lambda r: r.read_config()),
    ("student.json", "{not json", lambda r: r.read_meta()),
    ("student.json", "[1, 2]", lambda r: r.read_meta()),
])
def test_one_wording_for_corrupt_files(tmp_path: Path, name: str, content: str, read) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(CompressorError, match=rf"^{tmp_path / name} is corrupt \(.*\); "):
        read(RunDir(tmp_path))


@pytest.mark.parametrize("read", [lambda r: r.read_config(), lambda r: r.read_meta()])
def test_one_wording_for_missing_files(tmp_path: Path, read) -> None:
    with pytest.raises(CompressorError, match=r" is missing; "):
        read(RunDir(tmp_path))
    with pytest.raises(CompressorError, match=r"does not exist; pass the --out"):
        read(RunDir(tmp_path / "nowhere"))


def test_truncated_weights_use_the_same_wording(tmp_path: Path) -> None:
    torch.manual_seed(0)
    enc = build_student("resnet10t", 32)
    save_encoder(enc, tmp_path)
    back = load_encoder(tmp_path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(enc.eval()(x), back(x))
    weights = RunDir(tmp_path).weights_path()
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CompressorError, match=rf"^{weights} is corrupt"):
        load_encoder(tmp_path)
