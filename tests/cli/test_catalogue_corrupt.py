"""Catalogue — corrupt derived data: files our own commands wrote, damaged on disk afterwards.

An exported model (``compress export``), a teacher-embedding cache (``compress cache build``) and WebDataset
shards (``compress data shard``) each carry a record made when they were written (sizes and SHA-256 in
the manifest and ``shards.json``; a CRC-32 per cache row). A file cut short or with one flipped bit is
named with the command that fixes it, never read silently; ``compress cache build`` repairs its cache.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.cli.catalogue import TINY, one_line_error


def _flip(path: Path, at: int) -> None:
    """One bit flipped at byte ``at``, the size unchanged (as a failing disk or a bad copy does)."""
    data = bytearray(path.read_bytes())
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


def _cut(path: Path, size: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(size)


# -- exported files -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported_master(finished_run_master: Path, tmp_path_factory) -> Path:
    from compressor.export.exporter import ExportOptions, export_run

    run = tmp_path_factory.mktemp("exported") / "run"
    shutil.copytree(finished_run_master, run)
    export_run(run, ExportOptions(format="onnx", check_size=8))
    return run


@pytest.fixture
def exported(exported_master: Path, tmp_path: Path) -> Path:
    shutil.copytree(exported_master, tmp_path / "run")
    return tmp_path / "run"


def test_exported_file_with_a_flipped_bit(cli, exported: Path, tmp_path: Path) -> None:
    model = exported / "export" / "model.onnx"
    _flip(model, model.stat().st_size // 2)
    fix = re.escape(f"; re-export it with `compress export {exported} --format onnx`")
    msg = re.escape(f"{model} does not match the SHA-256 `compress export` recorded (changed on disk after the "
                    "export)") + fix
    one_line_error(cli, "bench", exported, "--backend", "ort-cpu", "--batch", "1", "--iters", "1", match=msg)
    one_line_error(cli, "bench", model, "--backend", "ort-cpu", "--batch", "1", "--iters", "1", match=msg)
    one_line_error(cli, "embed", model, tmp_path, "--out", tmp_path / "e.npy", match=msg)
    assert not (tmp_path / "e.npy").exists()


def test_exported_file_cut_short(cli, exported: Path) -> None:
    model = exported / "export" / "model.onnx"
    size = model.stat().st_size
    _cut(model, size // 2)
    one_line_error(cli, "bench", exported, "--backend", "ort-cpu", "--batch", "1", "--iters", "1",
                   match=re.escape(f"{model} is {size // 2} bytes, but `compress export` wrote {size} (truncated or "
                                   f"replaced); re-export it with `compress export {exported} --format onnx`"))


# -- the teacher cache ----------------------------------------------------------------------------
# a weights file, not `random`: random teacher weights are drawn from each command's own RNG state, so a
# cache built by `compress cache build` never matches a distill run's random teacher
TEACHER_WEIGHTS = Path(tempfile.mkdtemp(prefix="tc-weights-")) / "resnet10t.pth"
CACHE = ["--teacher", "timm:resnet10t", "--teacher-weights", str(TEACHER_WEIGHTS), "--teacher-image-size", "32",
         "--data", "synthetic", "--max-images", "8", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def cache_master(tmp_path_factory) -> Path:
    import timm
    import torch
    from typer.testing import CliRunner

    from compressor.cli.main import app

    torch.manual_seed(0)
    torch.save(timm.create_model("resnet10t", num_classes=0).state_dict(), TEACHER_WEIGHTS)
    folder = tmp_path_factory.mktemp("tcache") / "tc"
    res = CliRunner().invoke(app, ["cache", "build", str(folder), *CACHE])
    assert res.exit_code == 0, res.output
    return folder


@pytest.fixture
def cache(cache_master: Path, tmp_path: Path) -> Path:
    shutil.copytree(cache_master, tmp_path / "tc")
    return tmp_path / "tc"


def _distill_with(cli, cache: Path, tmp_path: Path, match: str) -> None:
    args = [a for a in TINY if a not in ("simclr",)]
    args[args.index("--recipe") + 1:args.index("--recipe") + 1] = ["mvmr"]
    one_line_error(cli, "distill", *args, "--teacher", "timm:resnet10t", "--teacher-weights", str(TEACHER_WEIGHTS),
                   "--teacher-image-size", "32", "--max-images", "8", "--max-steps", "1", "--teacher-cache", cache,
                   "--out", tmp_path / "r", match=match)


def _build(cli, cache: Path) -> str:
    code, out, err = cli("cache", "build", cache, *CACHE)
    assert code == 0, err
    return " ".join(out.split())


def test_teacher_cache_with_a_flipped_bit(cli, cache: Path, tmp_path: Path) -> None:
    emb = cache / "embeddings.npy"
    header = emb.stat().st_size - 8 * 512 * 4  # resnet10t: 512 floats per row
    _flip(emb, header + 5 * 512 * 4 + 7)  # row 5
    _distill_with(cli, cache, tmp_path, re.escape(
        f"teacher cache {cache} is damaged (1 of 8 rows do not match their checksums (first: row 5)); run `compress "
        f"cache build {cache}` with this --teacher and --data to recompute them, or delete the folder"))
    assert _build(cli, cache).endswith("8 of 8 embeddings (1 computed now, 7 already there)")  # repaired
    assert _build(cli, cache).endswith("(0 computed now, 8 already there)")


def test_teacher_cache_cut_short(cli, cache: Path, tmp_path: Path) -> None:
    """The last row loses its tail: named as damage (a size or a checksum mismatch), then rebuilt."""
    emb = cache / "embeddings.npy"
    _cut(emb, emb.stat().st_size - 100)
    _distill_with(cli, cache, tmp_path, re.escape(f"teacher cache {cache} is damaged (") + r".*\); run `compress "
                  r"cache build .*` with this --teacher and --data to (repair it|recompute them), or delete\b.*$")
    assert re.search(r"8 of 8 embeddings \([1-8] computed now", _build(cli, cache))  # repaired
    assert np.load(cache / "filled.npy").all()


# -- WebDataset shards -----------------------------------------------------------------------------
@pytest.fixture
def shards(cli, image_folder: Path, tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "shards"
    code, spec, err = cli("data", "shard", image_folder, out, "--shard-size", "6")
    assert code == 0, err
    return out, str(out / "train-{000000..000002}.tar")


REWRITE = "write the shards again into an empty folder with `compress data shard`, or leave this one out of --data"


def test_shard_cut_between_two_samples(cli, shards: tuple[Path, str], tmp_path: Path) -> None:
    """tar reads such a file as a complete, shorter shard: only the recorded size tells."""
    out, spec = shards
    shard = out / "train-000001.tar"
    size = shard.stat().st_size
    _cut(shard, 512 * 12)  # a whole number of tar blocks: the first sample or two, intact
    one_line_error(cli, "distill", *TINY, "--data", spec, "--max-steps", "1", "--out", tmp_path / "r",
                   match=re.escape(f"shard {shard} is {512 * 12} bytes, but `compress data shard` wrote {size} (cut "
                                   f"short or replaced); {REWRITE}"))


def test_shard_with_a_flipped_bit_after_it_was_indexed(cli, shards: tuple[Path, str], tmp_path: Path) -> None:
    from compressor.data.shards import ShardDataset

    out, spec = shards
    assert len(ShardDataset.open(spec)) == 18  # indexed and verified once: the sidecars are written
    shard = out / "train-000002.tar"
    _flip(shard, 2048)
    one_line_error(cli, "distill", *TINY, "--data", spec, "--max-steps", "1", "--out", tmp_path / "r",
                   match=re.escape(f"shard {shard} does not match the SHA-256 `compress data shard` recorded "
                                   f"(changed on disk since); {REWRITE}"))
