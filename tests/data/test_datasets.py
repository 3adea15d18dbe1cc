"""Datasets: folders (labels, splits), corrupt files and decompression bombs, Fashion-MNIST, views."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from compressor.data.datasets import build_dataset
from compressor.data.loader import ViewDataset, collate_views
from compressor.data.transforms import SameView, Views, augment_transform, eval_transform
from compressor.errors import CompressorError
from compressor.models.encoder import InputSpec
from tests.conftest import requires_fmnist


def test_class_folders_give_labels(image_folder: Path) -> None:
    train, val = build_dataset(str(image_folder), "train"), build_dataset(str(image_folder), "val")
    assert train.classes == ["class0", "class1", "class2"]
    assert len(train) + len(val) == 18 and len(val) > 0
    img, label = train[0]
    assert img.mode == "RGB" and label == 0


def test_train_val_subfolders_split(tmp_path: Path) -> None:
    for split, n in (("train", 4), ("val", 2)):
        for c in ("a", "b"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.new("L", (8, 8), 10 * i).save(d / f"{i}.png")
    assert len(build_dataset(str(tmp_path), "train")) == 8
    val = build_dataset(str(tmp_path), "val")
    assert len(val) == 4 and val.classes == ["a", "b"]
    assert val[0][0].mode == "RGB"  # grayscale becomes 3 channels


def test_missing_and_empty_folders_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CompressorError, match="does not exist"):
        build_dataset(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(CompressorError, match="no images found"):
        build_dataset(str(tmp_path / "empty"))


def test_corrupt_image_and_bomb_are_skipped_with_a_warning(image_folder: Path, caplog, monkeypatch) -> None:
    bad = image_folder / "class0" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    bomb = image_folder / "class1" / "bomb.png"
    Image.new("L", (300, 300)).save(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)  # 300² > 2×100²: Pillow's bomb error
    ds = build_dataset(str(image_folder), "train")
    views = ViewDataset(ds, Views(x=eval_transform(InputSpec(16))), seed=0)
    with caplog.at_level(logging.WARNING, logger="compressor"):
        batch = collate_views([views[i] for i in range(len(views))])
    names = {Path(p).name for p in batch["_skipped"]}
    assert {"broken.png", "bomb.png"} <= names
    assert batch["x"].shape[0] == len(views) - len(batch["_skipped"])
    assert "broken.png" in caplog.text and "bomb.png" in caplog.text


def test_synthetic_is_deterministic_and_labelled() -> None:
    a, b = build_dataset("synthetic"), build_dataset("synthetic")
    assert a.has_labels and len(a.classes) == 10
    assert a[5][0].tobytes() == b[5][0].tobytes()


@requires_fmnist
def test_fashion_mnist() -> None:
    train, test = build_dataset("fashion-mnist", "train"), build_dataset("fashion-mnist", "val")
    assert (len(train), len(test)) == (60000, 10000)
    img, label = train[0]
    assert img.size == (28, 28) and img.mode == "RGB" and 0 <= label < 10


def test_views_have_each_models_size_and_normalisation() -> None:
    img = Image.new("RGB", (50, 40), (128, 64, 32))
    s, t = InputSpec(32, (0.5,) * 3, (0.5,) * 3), InputSpec(48, (0.0,) * 3, (1.0,) * 3)
    out = Views(x=eval_transform(s), t=eval_transform(t))(img)
    assert out["x"].shape == (3, 32, 32) and out["t"].shape == (3, 48, 48)
    assert out["t"][0].mean().item() == pytest.approx(128 / 255, abs=1e-3)
    assert out["x"][0].mean().item() == pytest.approx((128 / 255 - 0.5) / 0.5, abs=1e-3)
    torch.manual_seed(0)
    same = SameView(x=s, t=t)(img)
    assert same["x"].shape == (3, 32, 32) and same["t"].shape == (3, 48, 48)
    aug = augment_transform(s)(img)
    assert aug.shape == (3, 32, 32)
