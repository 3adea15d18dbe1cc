"""A Hugging Face ``datasets`` data set saved with ``save_to_disk`` as ``--data``: images reach the model, splits and
labels as for folders, columns detected or named, and training on it resumes exactly.

The data sets are built as a user builds them (``Dataset.from_dict`` of PIL images, ``cast_column('image',
Image())``, ``save_to_disk``) from 28 px grayscale images in the manner of Fashion-MNIST. The reference for the
pixels is each source image through the same transform.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compressor.data.datasets import FMNIST_CLASSES, build_dataset
from compressor.data.loader import ViewDataset, run_loader
from compressor.data.teacher_cache import dataset_identity
from compressor.data.transforms import Views, eval_transform
from compressor.errors import CompressorError
from compressor.models.encoder import InputSpec
from tests.conftest import assert_resume_after_step_2_of_4_is_exact

datasets = pytest.importorskip("datasets")
CLASSES = FMNIST_CLASSES[:3]


def fmnist_like(n: int, seed: int) -> tuple[list[Image.Image], list[int]]:
    """``n`` 28x28 grayscale images, a class-dependent stripe pattern plus noise, labels cycling over 3 classes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:28, 0:28]
    images, labels = [], []
    for i in range(n):
        label = i % 3
        pattern = 128 + 100 * np.sin((x if label == 1 else y) * (label + 1) / 3)
        pixels = np.clip(pattern + rng.normal(0, 25, (28, 28)), 0, 255).astype(np.uint8)
        images.append(Image.fromarray(pixels, mode="L"))
        labels.append(label)
    return images, labels


def make(images: list[Image.Image], labels: list[int], **extra: list) -> datasets.Dataset:
    ds = datasets.Dataset.from_dict({"image": images, "label": labels, **extra})
    ds = ds.cast_column("image", datasets.Image())
    return ds.cast_column("label", datasets.ClassLabel(names=CLASSES))


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, list[Image.Image], list[int]]:
    """One ``Dataset`` of 25 rows (no splits): every 5th row is held out for eval."""
    images, labels = fmnist_like(25, 0)
    path = tmp_path / "fm_disk"
    make(images, labels).save_to_disk(str(path))
    return path, images, labels


def test_images_and_labels_reach_the_model(saved: tuple[Path, list[Image.Image], list[int]]) -> None:
    path, images, labels = saved
    train, val = build_dataset(str(path), "train"), build_dataset(str(path), "val")
    assert (len(train), len(val)) == (20, 5) and train.classes == CLASSES and train.has_labels
    spec = InputSpec(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    transform = eval_transform(spec)
    loader = run_loader(ViewDataset(train, Views(x=transform), seed=0), batch_size=8, start=0, stop=2, workers=0,
                        seed=0)
    train_rows = [i for i in range(25) if i % 5 != 4]
    seen = 0
    for batch in loader:
        for x, i, y in zip(batch["x"], batch["index"].tolist(), batch["label"].tolist(), strict=True):
            source = images[train_rows[i]]
            torch.testing.assert_close(x, transform(source.convert("RGB")), rtol=0, atol=0)
            assert y == labels[train_rows[i]]
            seen += 1
    assert seen == 16
    held_out = [build_dataset(str(path), "val")[j] for j in range(5)]
    for j, (img, label) in enumerate(held_out):
        assert np.array_equal(np.asarray(img), np.asarray(images[5 * j + 4].convert("RGB")))
        assert label == labels[5 * j + 4]


def test_dataset_dict_splits_and_loader_workers(tmp_path: Path) -> None:
    """``train`` + ``test`` splits: eval's queries are the test split; two DataLoader workers read the same."""
    train_images, train_labels = fmnist_like(12, 1)
    test_images, test_labels = fmnist_like(6, 2)
    path = tmp_path / "dd"
    datasets.DatasetDict(train=make(train_images, train_labels),
                         test=make(test_images, test_labels)).save_to_disk(str(path))
    train, val = build_dataset(str(path), "train"), build_dataset(str(path), "val")
    assert (len(train), len(val)) == (12, 6)
    assert np.array_equal(np.asarray(val[5][0]), np.asarray(test_images[5].convert("RGB"))) and val[5][1] == 2
    views = Views(x=eval_transform(InputSpec(28)))
    one, two = ([b["x"] for b in run_loader(ViewDataset(train, views, seed=0), 4, 0, 3, w, seed=0)] for w in (0, 2))
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert dataset_identity(train) != dataset_identity(val)  # the teacher cache tells the splits apart


def test_columns_detected_or_named(tmp_path: Path) -> None:
    images, labels = fmnist_like(10, 3)
    two = datasets.Dataset.from_dict({"img": images, "fine_label": labels, "coarse_label": [0] * 10})
    two = two.cast_column("img", datasets.Image())
    for col, names in (("fine_label", CLASSES), ("coarse_label", ["all"])):
        two = two.cast_column(col, datasets.ClassLabel(names=names))
    two.save_to_disk(str(tmp_path / "two"))
    with pytest.raises(CompressorError) as err:
        build_dataset(str(tmp_path / "two"))
    msg = str(err.value)
    assert "\n" not in msg and "several label columns (fine_label, coarse_label)" in msg
    assert "#image=COL,label=COL" in msg and "img (Image)" in msg and "coarse_label (ClassLabel)" in msg
    ds = build_dataset(f"{tmp_path / 'two'}#label=fine_label", "train")
    assert ds.classes == CLASSES and [ds[i][1] for i in range(4)] == [labels[i] for i in range(4)]
    with pytest.raises(CompressorError, match=r"has no column 'lbl'; columns: img \(Image\), fine_label"):
        build_dataset(f"{tmp_path / 'two'}#label=lbl")
    # no Image column: one line listing the columns
    datasets.Dataset.from_dict({"pixels": [[0, 1]] * 3, "label": [0, 1, 0]}).save_to_disk(str(tmp_path / "noimg"))
    with pytest.raises(CompressorError, match=r"cannot tell the image column \(0 columns of type Image\); append "
                                              r"#image=COL,label=COL .*columns: pixels \(List\), label \(Value\)"):
        build_dataset(str(tmp_path / "noimg"))
    # no label column: unlabelled, like a folder of loose images
    plain = datasets.Dataset.from_dict({"image": images}).cast_column("image", datasets.Image())
    plain.save_to_disk(str(tmp_path / "plain"))
    unlabelled = build_dataset(str(tmp_path / "plain"))
    assert not unlabelled.has_labels and unlabelled[0][1] == -1
    # an integer "label" column without ClassLabel names
    ints = datasets.Dataset.from_dict({"image": images, "label": labels}).cast_column("image", datasets.Image())
    ints.save_to_disk(str(tmp_path / "ints"))
    assert build_dataset(str(tmp_path / "ints")).classes == ["0", "1", "2"]


def test_a_missing_datasets_package_names_the_extra(saved: tuple[Path, list, list],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(CompressorError, match=r"needs datasets, which is not installed: pip install "
                                              r"'compressor\[hf\]'"):
        build_dataset(str(saved[0]))


def _cfg(data: str, out: Path, **kw):
    from compressor.engine.config import TrainConfig

    base = dict(student="resnet10t", recipe="simclr", data=data, batch_size=4, image_size=16, max_steps=4,
                checkpoint_every=2, keep_checkpoints=2, out=str(out), seed=1,
                recipe_config={"projector_dims": [32, 16]})
    return TrainConfig(**{**base, **kw})


def test_distill_on_a_saved_dataset_resumes_exactly(saved: tuple[Path, list, list], tmp_path: Path) -> None:
    """The pattern of the shards' test: a run "killed" after step 2 of 4 and resumed ends with the same weights."""
    spec = str(saved[0])  # 20 training rows: 5 batches of 4, so step 2 is mid-epoch
    assert_resume_after_step_2_of_4_is_exact(lambda out, **kw: _cfg(spec, out, **kw), tmp_path)
