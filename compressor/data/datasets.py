"""Image datasets named by a SPEC string: a folder, WebDataset ``.tar`` shards, a Hugging Face dataset saved
with ``save_to_disk``, ``fashion-mnist`` or ``synthetic``.

Every dataset yields ``(PIL.Image in RGB, label)``; ``label`` is -1 when the data has no labels
(the base class and the decoder are in :mod:`compressor.data.images`; shards in :mod:`compressor.data.shards`,
saved Hugging Face datasets in :mod:`compressor.data.hf_datasets`).
"""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image

from compressor.data.hf_datasets import is_saved_dataset, open_saved_dataset
from compressor.data.images import IMAGE_EXTENSIONS, ImageDataset, load_image
from compressor.data.shard_spec import is_shard_spec
from compressor.data.shards import open_shards
from compressor.errors import CompressorError

log = logging.getLogger("compressor")

FMNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FMNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                  "Bag", "Ankle boot"]


class FolderDataset(ImageDataset):
    """Images under a folder; class sub-folders give labels, loose images give label -1."""

    def __init__(self, files: list[Path], labels: list[int], classes: list[str]) -> None:
        self.files, self.labels, self.classes = files, labels, classes

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Image.Image | None, int]:
        return load_image(self.files[i]), self.labels[i]

    @classmethod
    def scan(cls, root: Path) -> FolderDataset:
        subdirs = _class_dirs(root)
        files: list[Path] = []
        labels: list[int] = []
        classes: list[str] = []
        loose = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if subdirs and not loose:
            for d in subdirs:
                found = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
                if found:
                    classes.append(d.name)
                    files += found
                    labels += [len(classes) - 1] * len(found)
        else:
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            labels = [-1] * len(files)
        if not files:
            raise CompressorError(
                f"no images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); "
                "pass a folder of images, class sub-folders, or --data fashion-mnist / synthetic")
        return cls(files, labels, classes)


def _class_dirs(root: Path) -> list[Path]:
    """Sub-folders of ``root``, without hidden ones and without symlinks back into the tree (a loop or an
    alias would add a fake class holding copies of the other images)."""
    top = root.resolve()
    out, seen = [], set()
    for p in sorted(root.iterdir()):
        if p.name.startswith(".") or not p.is_dir():
            continue
        real = p.resolve()
        if real == top or real in top.parents or real in seen or (p.is_symlink() and top in real.parents):
            log.warning("skipping %s: a link back into the data folder (%s), not a class of its own", p, real)
            continue
        seen.add(real)
        out.append(p)
    return out


def _folder_dataset(root: Path, split: str) -> ImageDataset:
    if root.exists() and not root.is_dir():
        raise CompressorError(f"--data {str(root)!r} is a file; pass the folder that holds the images, "
                              "`fashion-mnist` or `synthetic`")
    if root.is_symlink() and not root.exists():
        raise CompressorError(f"--data {str(root)!r} is a broken or looping symbolic link; pass the real folder")
    if not root.is_dir():
        raise CompressorError(f"data folder {str(root)!r} does not exist; pass an existing folder, "
                              "`fashion-mnist` or `synthetic` to --data")
    named = {p.name: p for p in root.iterdir() if p.is_dir()}
    if "train" in named and ("val" in named or "test" in named):
        sub = named["train"] if split == "train" else named.get("val") or named["test"]
        return FolderDataset.scan(sub)
    # No explicit split: a fixed 80/20 split (every 5th image is held out) so eval queries are unseen.
    full = FolderDataset.scan(root)
    keep = [i for i in range(len(full)) if (i % 5 == 4) == (split != "train")]
    if not keep:  # fewer than 5 images: no held-out part (eval refuses an empty query set)
        log.warning("%s has %d images, too few for a %s split (every 5th image is held out)", root, len(full), split)
    return FolderDataset([full.files[i] for i in keep], [full.labels[i] for i in keep], full.classes)


def find_fashion_mnist(root: str | None = None) -> Path | None:
    """Search order: ``root`` (--data-root), ``$COMPRESS_DATA``, the Debian package's folder."""
    for cand in (root, os.environ.get("COMPRESS_DATA"), FMNIST_SYSTEM_DIR):
        if cand:
            for d in (Path(cand), Path(cand) / "fashion-mnist"):
                if (d / FMNIST_FILES["train"][0]).is_file():
                    return d
    return None


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


class FashionMNIST(ImageDataset):
    """Fashion-MNIST from its four idx files (28×28 grayscale, returned as RGB)."""

    classes = FMNIST_CLASSES

    def __init__(self, folder: Path, split: str) -> None:
        images, labels = FMNIST_FILES["train" if split == "train" else "test"]
        self.images = _read_idx(folder / images)
        self.labels = _read_idx(folder / labels).astype(np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        return Image.fromarray(self.images[i], mode="L").convert("RGB"), int(self.labels[i])


def _download_fashion_mnist() -> Path:
    target = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "compressor" / "fashion-mnist"
    try:
        from torchvision.datasets import FashionMNIST as TVFashionMNIST

        TVFashionMNIST(str(target), train=True, download=True)
        TVFashionMNIST(str(target), train=False, download=True)
    except Exception as err:
        raise CompressorError(
            "Fashion-MNIST not found (looked in --data-root, $COMPRESS_DATA and "
            f"{FMNIST_SYSTEM_DIR}) and the download failed; install the Debian package "
            "dataset-fashion-mnist or set COMPRESS_DATA to a folder with the *-ubyte.gz files") from err
    return target / "FashionMNIST" / "raw"


class SyntheticDataset(ImageDataset):
    """Deterministic coloured-pattern images in ``num_classes`` classes, for smoke tests (no files)."""

    def __init__(self, size: int = 512, num_classes: int = 10, image_size: int = 64, seed: int = 0) -> None:
        self.size, self.image_size, self.seed = size, image_size, seed
        self.classes = [f"class{i}" for i in range(num_classes)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        label = i % len(self.classes)
        rng = np.random.default_rng(self.seed * 1_000_003 + i)
        proto = np.random.default_rng(label + 17)  # the class prototype: a colour and a stripe frequency
        colour = proto.uniform(40, 215, size=3)
        freq = 1 + label % 5
        y, x = np.mgrid[0:self.image_size, 0:self.image_size] / self.image_size
        wave = np.sin(2 * np.pi * freq * (x if label % 2 else y))[..., None]
        img = colour + 40 * wave + rng.normal(0, 20, size=(self.image_size, self.image_size, 3))
        return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB"), label


def build_dataset(spec: str, split: str = "train", root: str | None = None) -> ImageDataset:
    """The dataset named by ``spec`` (a folder, ``.tar`` shards, a ``save_to_disk`` folder, ``fashion-mnist`` or
    ``synthetic``) for ``split``.

    ``split`` is ``train`` or ``val``; ``val`` means the val or test part where the data has one.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    if is_shard_spec(spec):
        return open_shards(spec, split)
    if spec == "fashion-mnist":
        folder = find_fashion_mnist(root) or _download_fashion_mnist()
        return FashionMNIST(folder, split)
    if spec == "synthetic":
        return SyntheticDataset(size=512 if split == "train" else 128, seed=0 if split == "train" else 1)
    if is_saved_dataset(spec):
        return open_saved_dataset(spec, split)
    return _folder_dataset(Path(spec).expanduser(), split)
