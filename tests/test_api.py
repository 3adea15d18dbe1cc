"""The top-level API: compressor.distill → export → embed → load on a real tiny run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import compressor
from compressor.errors import CompressorError


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api") / "run"
    return compressor.distill("test_resnet", data="synthetic", recipe="simclr", out=out, batch_size=8, image_size=32,
                              max_images=16, max_steps=2, recipe_config={"projector_dims": [16, 16]})


def _images(folder: Path, n: int = 5) -> Path:
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(folder / "sub" / f"{i}.png")
    return folder


def test_distill_writes_a_run_that_load_reads(run: Path) -> None:
    assert (run / "student.safetensors").is_file()
    student = compressor.load(run)
    assert not student.training and student.spec.image_size == 32
    assert student(torch.zeros(2, 3, 32, 32)).shape == (2, student.embed_dim)


def test_embed_rows_are_the_loaded_students_outputs(run: Path, tmp_path: Path) -> None:
    folder = _images(tmp_path / "imgs")
    vectors, files = compressor.embed(run, folder)
    assert files == [f"sub/{i}.png" for i in range(5)] and vectors.shape == (5, compressor.load(run).embed_dim)
    # the same numbers through load(): the student's eval transform by hand (resize, normalise)
    from compressor.data.transforms import eval_transform

    student = compressor.load(run)
    x = torch.stack([eval_transform(student.spec)(Image.open(folder / f).convert("RGB")) for f in files])
    with torch.no_grad():
        np.testing.assert_allclose(vectors, student(x).numpy(), rtol=1e-4, atol=1e-5)
    out = tmp_path / "emb.npy"
    compressor.embed(run, folder, out=out)
    np.testing.assert_array_equal(np.load(out), vectors)


def test_export_returns_the_file_and_embed_reads_it(run: Path, tmp_path: Path) -> None:
    onnx_file = compressor.export(run, "onnx", check_size=8, knn=False)
    assert onnx_file.suffix == ".onnx" and onnx_file.is_file()
    folder = _images(tmp_path / "imgs")
    from_onnx, _ = compressor.embed(onnx_file, folder)
    from_torch, _ = compressor.embed(run, folder)
    np.testing.assert_allclose(from_onnx, from_torch, rtol=1e-3, atol=1e-4)


def test_unknown_option_is_one_line_naming_the_closest() -> None:
    with pytest.raises(CompressorError, match=r"unknown option 'epoch'; did you mean 'epochs'"):
        compressor.distill("resnet18", data="synthetic", epoch=3)
    with pytest.raises(CompressorError, match=r"unknown option 'calib_sise'; did you mean 'calib_size'"):
        compressor.export("runs/none", "onnx-int8", calib_sise=8)


def test_export_is_callable_whichever_import_came_first() -> None:
    # `import compressor.export.options` (as the CLI does) binds the package to the name: it must still be the call
    code = ("import compressor.export.options, compressor, inspect\n"
            "print(callable(compressor.export), 'format' in str(inspect.signature(compressor.export.__call__)))\n"
            "import sys; print(sorted(m for m in ('torch', 'numpy', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["True True", "[]"]
