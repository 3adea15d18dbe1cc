"""RunDir: one owner of the run directory's file names, one wording for missing and corrupt files."""

from __future__ import annotations

import re
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


RUN_FILES = ("config.yaml", "run.json", "metrics.jsonl", "student.json", "student.safetensors", "checkpoints",
             "manifest.json", "eval.json", "bench.json", "bench-teacher.json", "pipeline.json", "report.md",
             "report.html")


def _run_file_literals(root: Path) -> list[str]:
    """``path:line: literal`` for each string constant that is a run file's name or a path ending in one
    (prose that mentions a file, as help text or an error message does, is not a way to reach it)."""
    import ast
    import re

    spelled = re.compile(rf"(^|/)({'|'.join(map(re.escape, RUN_FILES))})$")

    found = []
    for folder in ("compressor", "recipes", "export", "benchmarks"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and spelled.search(node.value):
                    found.append(f"{path.relative_to(root).as_posix()}:{node.lineno}: {node.value!r}")
    return found


def test_run_file_names_are_spelled_in_rundir_only() -> None:
    """Each run-file name is a literal once, in compressor/rundir.py; every other module (and the benchmark
    scripts) reaches the file through :class:`RunDir`. torch hub's own ``checkpoints`` folder is not a run file."""
    root = Path(__file__).resolve().parents[2]
    hits = [h for h in _run_file_literals(root) if not h.startswith("compressor/rundir.py:")]
    torch_hub = re.compile(r"compressor/models/_hub\.py:\d+: 'checkpoints'$")
    assert [h for h in hits if not torch_hub.match(h)] == []


def test_the_run_file_check_finds_a_spelled_name(tmp_path: Path) -> None:
    (tmp_path / "compressor").mkdir()
    (tmp_path / "compressor" / "x.py").write_text('p = run / "student.json"\nq = "see student.json for more"\n')
    assert _run_file_literals(tmp_path) == ["compressor/x.py:1: 'student.json'"]
