"""Representative subsets: calibration, parity, kNN, bench inputs and ``eval --max-*`` see every class.

The data here is a class-folder set sorted by class with unequal class sizes, where the first N
files are all of class ``a``: the old "first N images" rule fails every test below.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from compressor.data.datasets import build_dataset
from compressor.data.subset import stratified_order
from compressor.eval.embed import embed_dataset
from compressor.export import ExportOptions, export_run
from compressor.models.encoder import InputSpec

SIZES = {"a": 30, "b": 12, "c": 3, "d": 9, "e": 6}  # sorted by name: the first 30 files are all "a"


@pytest.fixture
def sorted_folder(tmp_path: Path) -> Path:
    root = tmp_path / "sorted"
    for k, (name, n) in enumerate(SIZES.items()):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (20, 20), (40 * k, 255 - 40 * k, 7 * i % 255)).save(root / name / f"{i:03d}.png")
    return root


def test_order_prefixes_are_stratified() -> None:
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    order = stratified_order(labels, len(labels), seed=3)
    assert sorted(order.tolist()) == list(range(200))  # a permutation
    assert set(labels[order[:4]]) == {0, 1, 2, 3}  # one of each class first
    counts = Counter(labels[order[:40]].tolist())
    for c, size in enumerate([100, 50, 30, 20]):
        assert abs(counts[c] - 40 * size / 200) <= 1.5  # proportional to the class sizes
    assert np.array_equal(order, stratified_order(labels, 200, seed=3))  # seeded
    assert not np.array_equal(order, stratified_order(labels, 200, seed=4))


def test_unlabelled_is_a_seeded_permutation() -> None:
    order = stratified_order(None, 50, seed=1)
    assert sorted(order.tolist()) == list(range(50)) and order.tolist() != list(range(50))


def test_calibration_and_parity_cover_every_class(sorted_folder: Path, fresh_run: Path) -> None:
    res = export_run(fresh_run, ExportOptions(format="onnx-int8", calib_data=str(sorted_folder),
                                              data=str(sorted_folder), calib_size=8, check_size=5))
    q, fid = res.entry["quantization"], res.entry["fidelity"]
    train = build_dataset(str(sorted_folder), "train")  # the 80% split calibration draws from
    assert set(q["calib_sample"]["per_class"]) == set(SIZES)  # all 5 classes in 8 images
    assert sum(q["calib_sample"]["per_class"].values()) == 8 == len(q["calib_sample"]["files"])
    labels_of = {str(f): train.classes[y] for f, y in zip(train.files, train.labels, strict=True)}
    assert Counter(labels_of[f] for f in q["calib_sample"]["files"]) == Counter(q["calib_sample"]["per_class"])
    assert set(fid["sample"]["per_class"]) == set(SIZES)  # the held-out parity images too
    assert set(fid["knn_bank_sample"]["per_class"]) == set(SIZES)
    manifest = json.loads((res.manifest).read_text())
    assert manifest["exports"]["model.int8.onnx"]["quantization"]["calib_sample"]["strategy"]


def test_eval_max_images_covers_every_class(sorted_folder: Path) -> None:
    ds = build_dataset(str(sorted_folder), "train")
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    _, labels = embed_dataset(model, InputSpec(16), ds, limit=5)
    assert sorted(labels.tolist()) == list(range(5))


def test_training_subset_is_the_same_stratified_scheme(sorted_folder: Path) -> None:
    """`--max-images` draws with the scheme everything else uses (it was a plain random subset of its own)."""
    from compressor.data.subset import SubsetDataset, dataset_labels, representative_order, training_subset

    ds = build_dataset(str(sorted_folder), "train")
    sub = training_subset(ds, 10, seed=2)
    assert isinstance(sub, SubsetDataset) and sub.classes == ds.classes and sub.has_labels
    picked = list(sub.indices)
    assert picked == sorted(representative_order(ds, seed=2)[:10].tolist())  # the data set's own order
    labels = dataset_labels(sub)
    assert labels is not None and set(labels.tolist()) == set(range(len(SIZES)))  # every class in 10 images
    again = training_subset(ds, 10, seed=2)
    assert isinstance(again, SubsetDataset) and list(again.indices) == picked  # seeded
    assert training_subset(ds, None, seed=2) is ds and training_subset(ds, 10_000, seed=2) is ds
