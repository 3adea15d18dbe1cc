"""``compress embed``: a folder → embeddings equal to the student's own, from a run or its ONNX export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from compressor.data.transforms import eval_transform
from compressor.models.saved import load_encoder, save_encoder
from compressor.models.students import build_student
from tests.models.test_teachers import _randomize


@pytest.fixture
def run_and_images(tmp_path: Path) -> tuple[Path, Path]:
    run = tmp_path / "run"
    save_encoder(_randomize(build_student("resnet10t", 32)), run)
    (run / "config.yaml").write_text("data: synthetic\n")
    imgs = tmp_path / "imgs"
    (imgs / "sub").mkdir(parents=True)
    g = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(g.integers(0, 256, (30 + i, 41, 3), dtype=np.uint8)).save(imgs / f"{i}.png")
    (imgs / "sub" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return run, imgs


def _reference(run: Path, imgs: Path, files: list[str]) -> np.ndarray:
    enc = load_encoder(run)
    x = torch.stack([eval_transform(enc.spec)(Image.open(imgs / f).convert("RGB")) for f in files])
    with torch.no_grad():
        return enc(x).numpy()


def test_embed_run_dir(cli, run_and_images: tuple[Path, Path], tmp_path: Path,
                       caplog: pytest.LogCaptureFixture) -> None:
    run, imgs = run_and_images
    code, out, err = cli("embed", run, imgs, "--out", tmp_path / "e.npy", "--batch-size", "2", "--quiet")
    assert code == 0, err
    assert "broken.jpg" in caplog.text and "5 embeddings of dimension 512" in out
    files = (tmp_path / "e.files.txt").read_text().split()
    assert files == [f"{i}.png" for i in range(5)]
    emb = np.load(tmp_path / "e.npy")
    np.testing.assert_allclose(emb, _reference(run, imgs, files), rtol=1e-5, atol=1e-5)
    code, _, err = cli("embed", run, imgs, "--out", tmp_path / "e.safetensors", "--quiet")
    assert code == 0, err
    np.testing.assert_allclose(load_file(str(tmp_path / "e.safetensors"))["embeddings"], emb, rtol=1e-5, atol=1e-6)
    code, _, err = cli("embed", run, imgs, "--out", tmp_path / "e.csv", "--quiet")
    assert code != 0 and ".npy, .safetensors or .parquet" in err and "Traceback" not in err


def test_embed_onnx_export(cli, run_and_images: tuple[Path, Path], tmp_path: Path) -> None:
    from compressor.export import ExportOptions, export_run

    run, imgs = run_and_images
    onnx = export_run(run, ExportOptions(format="onnx", check_size=8, knn=False)).path
    code, _, err = cli("embed", onnx, imgs, "--out", tmp_path / "o.npy", "--quiet")
    assert code == 0, err
    files = (tmp_path / "o.files.txt").read_text().split()
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), _reference(run, imgs, files), rtol=1e-3, atol=1e-4)
