"""A Hugging Face ``datasets`` data set saved with ``save_to_disk``, as a data SPEC: ``--data ./cifar10_disk``.

``Dataset.save_to_disk(path)`` writes ``path/{dataset_info.json, state.json, data-*.arrow}``;
``DatasetDict.save_to_disk(path)`` writes ``path/dataset_dict.json`` (``{"splits": [...]}``) and one such
folder per split. Either is recognised by those files (:func:`is_saved_dataset`) and read with
``datasets.load_from_disk``, memory-mapped: nothing is copied or converted.

Columns: the image is the column whose feature is ``datasets.Image`` (the one such column, or the one named
``image``/``img``); the label is a ``ClassLabel`` column (its names are the classes), else an integer column
named ``label``/``labels``/``target``/``class``; with neither the data is unlabelled (label -1), like a folder
of loose images. When the choice is ambiguous (CIFAR-100's ``fine_label`` and ``coarse_label``), or to pick
other columns, append ``#image=COL,label=COL`` to the SPEC; a column that is not there is one line listing
the columns.

Splits, as for a folder: a ``DatasetDict`` with ``train`` and ``validation`` (or ``val``, ``test``) gives
training and eval their own split; a single ``Dataset`` (or a dict with ``train`` alone) holds every 5th
row out for eval.

The image bytes are decoded by the one decoder of every data set (:func:`compressor.data.images.load_image`:
EXIF rotation, 16-bit and float modes, decompression bombs, unreadable images skipped with a warning), not by
``datasets``' own. :class:`HFDataset` is map-style, so the exactly-resumable loader works unchanged; it
pickles as the paths of its memory-mapped arrow files, so DataLoader workers re-open them cheaply.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from compressor.data.images import ImageDataset, load_image
from compressor.errors import CompressorError
from compressor.utils.extras import require

log = logging.getLogger("compressor")

USE = "--data with a Hugging Face dataset saved by save_to_disk"
DICT_FILE = "dataset_dict.json"  # DatasetDict.save_to_disk
SPLIT_FILES = ("dataset_info.json", "state.json")  # Dataset.save_to_disk
VAL_SPLITS = ("validation", "val", "test")
IMAGE_NAMES = ("image", "img")
LABEL_NAMES = ("label", "labels", "target", "class")


def split_spec(spec: str) -> tuple[Path, dict[str, str]]:
    """``PATH#image=COL,label=COL`` → (PATH, {"image": COL, "label": COL})."""
    path, _, options = spec.partition("#")
    chosen: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in options.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in ("image", "label"):
            raise CompressorError(f"--data {spec!r}: {item!r} is not a column choice; write PATH#image=COL,label=COL")
        chosen[key.strip()] = value.strip()
    return Path(path).expanduser(), chosen


def is_saved_dataset(spec: str) -> bool:
    """Whether ``spec`` names a folder written by ``save_to_disk`` (a ``Dataset`` or a ``DatasetDict``)."""
    path = split_spec(spec)[0] if "#" in spec else Path(spec).expanduser()
    return (path / DICT_FILE).is_file() or all((path / f).is_file() for f in SPLIT_FILES)


class HFDataset(ImageDataset):
    """Rows ``rows`` (all when ``None``) of a loaded ``datasets.Dataset``, as ``(PIL RGB image, label)``."""

    def __init__(self, ds: Any, image: str, label: str | None, folder: Path, split: str,
                 rows: list[int] | None = None) -> None:
        datasets = require("datasets", USE)
        # the raw bytes (or path) of each image, decoded by load_image rather than by datasets
        self.ds = ds.select_columns([c for c in (image, label) if c]).cast_column(image, datasets.Image(decode=False))
        self.image, self.label = image, label
        self.folder, self.split = folder, split  # what the teacher cache's dataset identity hashes
        self.rows = np.arange(len(ds)) if rows is None else np.asarray(rows, dtype=np.int64)
        feature = ds.features[label] if label else None
        if label is None:
            self.labels = np.full(len(self.rows), -1, dtype=np.int64)
            self.classes: list[str] = []
        else:
            # the arrow column at once (save_to_disk flattens any .select()/.shuffle() mapping into the rows)
            column = np.asarray(ds.data.column(label).to_numpy(zero_copy_only=False), dtype=np.int64)
            self.labels = column[self.rows]
            names = getattr(feature, "names", None)
            self.classes = list(names) if names else [str(c) for c in range(int(column.max(initial=-1)) + 1)]

    def __len__(self) -> int:
        return len(self.rows)

    def item_name(self, i: int) -> str:
        return f"{self.folder}[{int(self.rows[i])}]"

    def __getitem__(self, i: int) -> tuple[Image.Image | None, int]:
        cell = self.ds[int(self.rows[i])][self.image] or {}
        data, path = cell.get("bytes"), cell.get("path")
        if data is not None:
            return load_image(io.BytesIO(data), name=self.item_name(i)), int(self.labels[i])
        if path:
            return load_image(path), int(self.labels[i])
        log.warning("skipping %s: the image cell is empty", self.item_name(i))
        return None, int(self.labels[i])


def _pick(ds: Any, chosen: dict[str, str], where: Path) -> tuple[str, str | None]:
    """The image and label columns: the ones chosen after ``#``, else detected from the features."""
    datasets = require("datasets", USE)
    features = ds.features
    listing = ", ".join(f"{k} ({type(v).__name__})" for k, v in features.items())
    fix = f"append #image=COL,label=COL to --data {where} (columns: {listing})"
    for key in ("image", "label"):
        if chosen.get(key) and chosen[key] not in features:
            raise CompressorError(f"{where} has no column {chosen[key]!r}; columns: {listing}")
    images = [k for k, v in features.items() if isinstance(v, datasets.Image)]
    image = chosen.get("image") or _one(images, IMAGE_NAMES)
    if image is None:
        raise CompressorError(f"{where}: cannot tell the image column ({len(images)} columns of type Image); {fix}")
    if not isinstance(features[image], datasets.Image):
        raise CompressorError(f"{where}: column {image!r} holds {type(features[image]).__name__}, not images; {fix}")
    if "label" in chosen:
        return image, chosen["label"] or None  # "label=" (empty): train without labels
    classes = [k for k, v in features.items() if isinstance(v, datasets.ClassLabel)]
    ints = [k for k, v in features.items() if k.lower() in LABEL_NAMES and isinstance(v, datasets.Value)
            and v.dtype.startswith(("int", "uint"))]
    label = _one(classes, LABEL_NAMES) if classes else _one(ints, LABEL_NAMES)
    if label is None and len(classes) + len(ints) > 0:
        raise CompressorError(f"{where}: several label columns ({', '.join(classes or ints)}); {fix}")
    return image, label


def _one(columns: list[str], preferred: tuple[str, ...]) -> str | None:
    """The only column, or the one with a conventional name; ``None`` when that does not decide."""
    if len(columns) == 1:
        return columns[0]
    named = [c for c in columns if c.lower() in preferred]
    return named[0] if len(named) == 1 else None


def open_saved_dataset(spec: str, split: str) -> HFDataset:
    """The ``split`` (``train`` or ``val``) of the ``save_to_disk`` folder ``spec`` names."""
    datasets = require("datasets", USE)
    path, chosen = split_spec(spec)
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as err:  # datasets raises several types for missing or damaged arrow files
        first = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise CompressorError(f"cannot read the saved dataset {path} ({first}); save it again with "
                              "save_to_disk") from None
    rows: list[int] | None = None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        val = next((s for s in VAL_SPLITS if s in loaded), None)
        if "train" not in loaded:
            raise CompressorError(f"{path} has the splits {', '.join(names)} and no 'train'; save the training "
                                  "rows as the 'train' split (DatasetDict(train=..., validation=...))")
        name = "train" if split == "train" or val is None else val
        ds, where = loaded[name], path / name
        held_out = val is None
    else:
        ds, where, name, held_out = loaded, path, "all", True
    if held_out:  # a fixed 80/20 split (every 5th row is held out) so eval's queries are unseen, as for folders
        rows = [i for i in range(len(ds)) if (i % 5 == 4) == (split != "train")]
    image, label = _pick(ds, chosen, path)
    return HFDataset(ds, image, label, where, f"{name}:{split}" if held_out else name, rows)
