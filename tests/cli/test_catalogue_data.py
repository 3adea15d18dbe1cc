"""Catalogue — data: what --data points at, images in every mode, and eval sets that cannot be honest."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cli.catalogue import TINY, digest, one_line_error

SIMCLR = ["distill", "--student", "test_resnet", "--recipe", "simclr", "--image-size", "32", "--quiet",
          "--set", "projector_dims=[16,16]", "--batch-size", "4"]


def test_data_is_a_file(cli, tmp_path: Path) -> None:
    f = tmp_path / "images.zip"
    f.write_bytes(b"PK")
    one_line_error(cli, *SIMCLR, "--data", f, "--max-steps", "1", "--out", tmp_path / "r",
                   match=r"--data .*images\.zip' is a file; pass the folder")


def test_data_folder_missing(cli, tmp_path: Path) -> None:
    one_line_error(cli, *SIMCLR, "--data", tmp_path / "nope", "--max-steps", "1", "--out", tmp_path / "r",
                   match=r"does not exist; pass an existing folder")


def test_data_is_a_symlink_loop(cli, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    one_line_error(cli, *SIMCLR, "--data", loop, "--max-steps", "1", "--out", tmp_path / "r",
                   match=r"broken or looping symbolic link")


def _labelled(root: Path, n: int = 4) -> Path:
    for c, colour in enumerate([(220, 20, 20), (20, 220, 20)]):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (20, 20), colour).save(root / f"c{c}" / f"{i}.png")
    return root


def test_symlink_loop_inside_the_data_adds_no_class(tmp_path: Path, caplog) -> None:
    from compressor.data.datasets import build_dataset

    root = _labelled(tmp_path / "d", n=5)
    (root / "again").symlink_to(root)  # a loop back to the root
    (root / "alias").symlink_to(root / "c0")  # a second name for a class
    ds = build_dataset(str(root), "train")
    assert ds.classes == ["c0", "c1"]
    assert "link back into the data folder" in caplog.text


def test_every_image_unreadable_writes_no_checkpoint(cli, tmp_path: Path) -> None:
    """A pass where every image fails must not count steps: no checkpoint, so no "finished" untrained student."""
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(6):
        (bad / f"img{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    run = tmp_path / "r"
    one_line_error(cli, *SIMCLR, "--data", bad, "--max-steps", "3", "--checkpoint-every", "1", "--out", run,
                   match=r"every image failed to load.*img\d\.png")
    assert not list(run.glob("checkpoints/*.pt"))
    one_line_error(cli, *SIMCLR, "--data", bad, "--max-steps", "3", "--resume", "--out", run,
                   match=r"no checkpoint.*without --resume")
    assert not (run / "student.safetensors").exists()


def _modes(folder: Path) -> None:
    """One image per awkward mode, each a mid-grey (or a known colour) when decoded right."""
    folder.mkdir(parents=True)
    Image.fromarray(np.full((24, 24), 32768, np.uint16)).save(folder / "gray16.png")
    Image.fromarray(np.full((24, 24), 0.5, np.float32), mode="F").save(folder / "float.tiff")
    Image.new("CMYK", (24, 24), (0, 0, 0, 127)).save(folder / "cmyk.jpg")
    Image.new("RGB", (24, 24), (128, 128, 128)).convert("P").save(folder / "palette.png")
    Image.new("LA", (24, 24), (128, 255)).save(folder / "la.png")
    img = Image.new("RGB", (24, 16), (128, 128, 128))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: displayed 16 wide, 24 high
    img.save(folder / "exif.jpg", exif=exif)


def test_images_are_converted_by_mode(tmp_path: Path) -> None:
    from compressor.data.datasets import load_image

    _modes(tmp_path / "m")
    for name in ("gray16.png", "float.tiff", "cmyk.jpg", "palette.png", "la.png"):
        px = np.asarray(load_image(tmp_path / "m" / name))
        assert 110 <= px.mean() <= 145, (name, px.mean())  # mid-grey, not saturated (255) or black (0)
    assert load_image(tmp_path / "m" / "exif.jpg").size == (16, 24)


def test_float_image_with_nan_is_skipped_with_a_warning(tmp_path: Path, caplog) -> None:
    from compressor.data.datasets import load_image

    a = np.full((8, 8), 0.5, np.float32)
    a[0, 0] = np.nan
    Image.fromarray(a, mode="F").save(tmp_path / "nan.tiff")
    assert load_image(tmp_path / "nan.tiff") is None
    assert "nan.tiff" in caplog.text


def test_training_on_images_of_every_mode(cli, tmp_path: Path) -> None:
    _modes(tmp_path / "m")
    code, _, err = cli(*SIMCLR, "--data", tmp_path / "m", "--max-steps", "1", "--out", tmp_path / "r")
    assert code == 0, err
    assert "skipping" not in err


def test_eval_with_too_few_images_for_a_split(cli, finished_run: Path, tmp_path: Path) -> None:
    small = _labelled(tmp_path / "small", n=2)  # 4 images: no held-out fifth
    one_line_error(cli, "eval", finished_run, "--data", small, "--no-linear",
                   match=r"no held-out images to use as queries")


def test_eval_with_queries_that_are_bank_images(cli, finished_run: Path, tmp_path: Path) -> None:
    data = tmp_path / "split"
    _labelled(data / "train", n=3)
    os.symlink(data / "train", data / "val")
    one_line_error(cli, "eval", finished_run, "--data", data, "--no-linear",
                   match=r"query images are also in the kNN bank.*separate train/ and val/")


def test_eval_needs_labels(cli, finished_run: Path, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    for i in range(6):
        Image.new("RGB", (16, 16), (i * 30, 0, 0)).save(loose / f"{i}.png")
    before = digest(finished_run)
    one_line_error(cli, "eval", finished_run, "--data", loose, match=r"evaluation needs labels: use class sub")
    assert digest(finished_run) == before


def test_supervised_recipe_on_unlabelled_data(cli, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    for i in range(4):
        Image.new("RGB", (16, 16), (i * 30, 0, 0)).save(loose / f"{i}.png")
    one_line_error(cli, "distill", "--student", "test_resnet", "--recipe", "supervised", "--data", loose,
                   "--max-steps", "1", "--out", tmp_path / "r", "--quiet", match=r"supervised.*no labels")


@pytest.mark.parametrize("spec", ["", " "])
def test_data_empty_spec(cli, tmp_path: Path, spec: str) -> None:
    one_line_error(cli, "distill", *TINY[:4], "--data", spec, "--out", tmp_path / "r",
                   match=r"--data|does not exist")
