"""Real images for parity checks, calibration and benchmarks, as the exported graph wants them.

Images come from a data SPEC (the run's ``data`` by default) through the same eval transform that
``compress eval`` uses, so the exported model is checked and calibrated on what it will see.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from compressor.errors import CompressorError
from compressor.models.encoder import InputSpec
from compressor.rundir import RunDir

log = logging.getLogger("compressor")


@dataclass
class ImageBatch:
    """``images``: N×3×H×W float32, normalised; ``labels``: N int64 or ``None`` when unlabelled."""

    images: np.ndarray
    labels: np.ndarray | None
    source: str  # "fashion-mnist:val", for messages and the manifest
    sample: dict | None = None  # which images: compressor.data.subset.Sample.record (None for random pixels)

    def __len__(self) -> int:
        return len(self.images)


def run_data(run_dir: str | Path) -> tuple[str | None, str | None]:
    """The data SPEC and data root a run was trained on (from its ``config.yaml``), or ``(None, None)``."""
    return RunDir(run_dir).data()


def load_images(spec: str, input_spec: InputSpec, n: int, *, split: str = "train",
                root: str | None = None, seed: int = 0) -> ImageBatch:
    """``n`` decodable images of ``spec``/``split`` through the eval transform: a seeded, class-stratified
    random sample (:mod:`compressor.data.subset`), never simply the first ``n`` files.

    ``split`` is ``train`` or ``val``; fewer than ``n`` images are returned when the data is smaller.
    The batch's ``sample`` says which images were used, for the manifest.
    """
    from compressor.data.datasets import build_dataset
    from compressor.data.subset import Sample, representative_order
    from compressor.data.transforms import eval_transform

    ds = build_dataset(spec, split, root)
    transform = eval_transform(input_spec)
    images: list[torch.Tensor] = []
    labels: list[int] = []
    used: list[int] = []
    for i in representative_order(ds, seed):
        if len(images) >= n:
            break
        img, label = ds[int(i)]
        if img is None:  # unreadable file: the dataset already warned with its name
            continue
        images.append(transform(img))
        labels.append(int(label))
        used.append(int(i))
    if not images:
        raise CompressorError(f"no readable images in {spec!r} ({split}); pass another data SPEC")
    lab = np.asarray(labels, dtype=np.int64) if ds.has_labels else None
    sample = Sample(np.asarray(used, dtype=np.int64), seed).record(ds)
    return ImageBatch(torch.stack(images).numpy().astype(np.float32), lab, f"{spec}:{split}", sample)


def to_uint8_nhwc(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Undo the normalisation: N×3×H×W float → N×H×W×3 uint8 RGB (what a baked-preprocess model takes).

    The eval transform scales uint8 pixels by 1/255 before normalising, so this recovers them exactly.
    """
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    pixels = np.rint((images * std + mean) * 255.0)
    return np.clip(pixels, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()


def random_images(spec: InputSpec, n: int, seed: int = 0) -> ImageBatch:
    """Uniform random pixels, normalised: the fallback when no data is reachable (benchmarks only)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, 3, spec.image_size, spec.image_size)).astype(np.float32) / 255.0
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return ImageBatch(((pixels - mean) / std).astype(np.float32), None, "random pixels")
