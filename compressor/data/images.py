"""The base of every data set (``ImageDataset``) and the one image decoder (``load_image``, ``to_rgb``).

Every data set yields ``(PIL.Image in RGB, label)``; ``label`` is -1 when the data has no labels.
An image that cannot be decoded (corrupt, truncated, a decompression bomb) yields ``None`` and a
warning naming the file; the loader drops it from the batch and counts it.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps
from torch.utils.data import Dataset

log = logging.getLogger("compressor")

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class ImageDataset(Dataset):
    """Base class: ``classes`` (names, empty when unlabeled) and ``has_labels``."""

    classes: list[str]

    def __len__(self) -> int:  # torch's Dataset declares no __len__; every dataset here has one
        raise NotImplementedError

    @property
    def has_labels(self) -> bool:
        return len(self.classes) > 0

    def describe(self) -> str:
        return f"{type(self).__name__}({len(self)} images, {len(self.classes)} classes)"


def load_image(path: str | Path | IO[bytes], name: str | None = None) -> Image.Image | None:
    """Decode an image to RGB, or return ``None`` (with a warning naming the file) when it cannot be.

    ``path`` may be an open binary file (a shard member's bytes); ``name`` then names it in the warning.
    """
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; treat the warning as the bomb it is.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                return to_rgb(ImageOps.exif_transpose(img))
    except (OSError, ValueError, SyntaxError, zlib.error, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as err:
        log.warning("skipping unreadable image %s (%s: %s)", name or path, type(err).__name__, err)
        return None


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB by the image's mode; a mode with no faithful conversion raises ``ValueError``.

    ``Image.convert("RGB")`` clips 16- and 32-bit integer pixels at 255 (a 16-bit PNG comes out
    white) and truncates float pixels in [0, 1] to 0 (a float TIFF comes out black): those modes
    are rescaled here from their value range instead. Transparent pixels are laid on white.
    """
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        a = np.asarray(img, dtype=np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{mode} image with NaN or infinite pixels")
        if mode == "F" and a.min() >= 0 and a.max() <= 1:
            scale = 255.0  # float images in [0, 1]
        elif a.min() >= 0 and a.max() <= 255 and mode == "F":
            scale = 1.0
        elif a.min() >= 0 and a.max() <= 65535:
            scale = 255.0 / 65535.0  # 16-bit samples (Pillow reads 16-bit PNGs as I or I;16)
        else:
            raise ValueError(f"{mode} image with values from {a.min():g} to {a.max():g}, outside any known range")
        gray = Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8), mode="L")
        return gray.convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in ("1", "L", "P", "RGB", "CMYK", "YCbCr", "RGBX"):
        return img.convert("RGB")  # Pillow converts these faithfully (CMYK, palette lookups included)
    raise ValueError(f"unsupported image mode {mode}")
