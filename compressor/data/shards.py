"""WebDataset shards as a data SPEC: ``--data 'shards/train-{000000..000127}.tar'``.

A shard is a plain (uncompressed) tar file in the WebDataset layout: a sample is a run of consecutive
members sharing a key (the member name up to the first dot of its base name), here ``KEY.jpg``
(or any extension in ``IMAGE_EXTENSIONS``) and an optional ``KEY.cls`` holding the integer label.
``classes.json`` beside the shards (a list of names, index = ``.cls`` value) gives the class names;
:func:`compressor.data.shard_writer.write_shards` (``compress data shard FOLDER OUT``) writes both
from an image folder.

The SPEC is a path, a glob (``shards/*.tar``) or a bash-style brace expansion: a zero-padded range
``{000000..000127}`` or a list ``{a,b}``. Every name it lists must exist. (:mod:`compressor.data.shard_spec` reads it.)

:class:`ShardDataset` is *map-style*: opening it reads each shard's member headers (``tarfile`` gives
each member's data offset and size; the index is kept in ``SHARD.tar.idx.json`` beside each shard
where the folder is writable, and rebuilt when the shard's size or mtime changes), and ``ds[i]``
seeks to the image's bytes and decodes them. So the exactly-resumable loader
(``compressor/data/loader.py``) works unchanged: per-epoch permutations, DDP rank slicing and
DataLoader workers all index samples, and a resumed run skips exactly the batches already seen —
finer than the usual per-shard resume of streaming readers. Each process (each DataLoader worker)
opens its own file handle per shard, lazily, so workers never share a file position.

``compress data shard`` also records each shard's size and SHA-256 in ``shards.json`` beside it. A shard
whose size differs (cut short, replaced) is refused whenever the data set is opened; its SHA-256 is
checked whenever the shard is indexed, i.e. the first time and after any change of its size or mtime, so
a shard damaged in place since is named, never read. (Shards written by other tools carry no record:
a truncated one fails as an unreadable tar, except when it is cut between two samples.)

Reads are random-access seeks: the shards must be local or on a mounted file system. Streaming from
``http://``, ``s3://`` or ``pipe:`` URLs is not supported (a one-line error says so), nor are compressed
(``.tar.gz``) shards, which cannot be seeked into.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import logging
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from compressor.data.images import IMAGE_EXTENSIONS, ImageDataset, load_image
from compressor.data.shard_spec import shard_files
from compressor.errors import CompressorError
from compressor.utils.io import atomic_write_text, file_record

log = logging.getLogger("compressor")

CLASSES_FILE = "classes.json"
CHECKSUMS_FILE = "shards.json"  # {"files": {name: {"size_bytes", "sha256"}}}, written by `compress data shard`
REWRITE = "write the shards again into an empty folder with `compress data shard`, or leave this one out of --data"
INDEX_SUFFIX = ".idx.json"  # the sidecar index beside each shard: train-000000.tar.idx.json
SHARD_IMAGE_EXTENSIONS = {e.lstrip(".") for e in IMAGE_EXTENSIONS}


def _split_name(name: str) -> tuple[str, str] | None:
    """WebDataset's key and extension: ``dir/abc.seg.png`` → (``dir/abc``, ``seg.png``)."""
    m = re.match(r"^((?:.*/|)[^.]+)[.]([^/]*)$", name)
    return (m.group(1), m.group(2)) if m else None


def _index_shard(path: Path) -> Iterator[tuple[str, int, int, int]]:
    """``(key, image offset, image size, label)`` for each sample of one shard, in order."""
    sample: dict[str, Any] = {}
    no_image = 0

    def flush() -> Iterator[tuple[str, int, int, int]]:
        nonlocal no_image
        if sample.get("image"):
            yield sample["key"], *sample["image"], sample.get("label", -1)
        elif sample:
            no_image += 1

    try:
        with tarfile.open(path, mode="r:") as tar:
            for m in tar:
                parts = _split_name(m.name) if m.isfile() else None
                if parts is None:
                    continue
                key, ext = parts
                if key != sample.get("key"):
                    yield from flush()
                    sample = {"key": key}
                ext = ext.lower()
                if ext in SHARD_IMAGE_EXTENSIONS and "image" not in sample:  # not KEY.seg.png: another field
                    sample["image"] = (m.offset_data, m.size)
                elif ext == "cls":
                    fh = tar.extractfile(m)
                    text = fh.read(64).decode("ascii", "replace").strip() if fh else ""
                    if not re.fullmatch(r"-?\d+", text):
                        raise CompressorError(f"shard {path}: {m.name} holds {text!r}, not an integer class label; "
                                              "rewrite the shard (`compress data shard`)")
                    sample["label"] = int(text)
            yield from flush()
    except (tarfile.TarError, EOFError) as err:
        raise CompressorError(f"{path} is not a readable tar shard ({err}); pass uncompressed WebDataset .tar "
                              "files, e.g. written by `compress data shard`") from None
    except OSError as err:
        raise CompressorError(f"cannot read shard {path}: {err.strerror or err}") from None
    if no_image:
        log.warning("%s: %d samples have no image member (.jpg, .png, ...) and are left out", path, no_image)


def read_checksums(folder: Path) -> dict[str, dict]:
    """The size and SHA-256 ``compress data shard`` recorded for each shard in ``folder`` (``{}``: none)."""
    path = folder / CHECKSUMS_FILE
    if not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text())["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
    except (OSError, ValueError, TypeError, KeyError) as err:
        raise CompressorError(f"{path} is corrupt ({type(err).__name__}); {REWRITE}") from None
    return files


def shard_index(path: Path, record: dict | None = None) -> list[tuple[str, int, int, int]]:
    """:func:`_index_shard`, kept in ``PATH.idx.json`` beside the shard where the folder is writable.

    The sidecar is used only while the shard has the size and mtime it records; otherwise (and when it
    is unreadable) the shard is indexed again. Reading the headers costs ~60 µs per sample (a minute per
    million samples, on every rank); reading the sidecar ~7 µs. ``record`` (from ``shards.json``): the
    size is checked every time, the SHA-256 whenever the shard is indexed.
    """
    st = path.stat()
    if record is not None and st.st_size != record.get("size_bytes"):
        raise CompressorError(f"shard {path} is {st.st_size} bytes, but `compress data shard` wrote "
                              f"{record.get('size_bytes')} (cut short or replaced); {REWRITE}")
    stamp = [st.st_size, st.st_mtime_ns]
    sha = record.get("sha256") if record is not None else None
    side = path.with_name(path.name + INDEX_SUFFIX)
    try:
        cached = json.loads(side.read_text())
        if cached["version"] == 1 and cached["stamp"] == stamp and cached.get("sha256") == sha:
            return [(str(k), int(o), int(n), int(c)) for k, o, n, c in cached["samples"]]
    except (OSError, ValueError, TypeError, KeyError):
        pass  # none yet, or not ours: index the shard
    if sha is not None and file_record(path)["sha256"] != sha:
        raise CompressorError(f"shard {path} does not match the SHA-256 `compress data shard` recorded (changed on "
                              f"disk since); {REWRITE}")
    rows = list(_index_shard(path))
    with contextlib.suppress(OSError):  # a read-only or full file system: index again next time
        atomic_write_text(side, json.dumps({"version": 1, "stamp": stamp, "sha256": sha, "samples": rows}))
    return rows


def read_classes(folder: Path) -> list[str] | None:
    path = folder / CLASSES_FILE
    if not path.is_file():
        return None
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CompressorError(f"cannot read {path} ({err}); it should be a JSON list of class names") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CompressorError(f"{path} should be a JSON list of class names (index = the .cls label)")
    return names


class ShardDataset(ImageDataset):
    """Samples of WebDataset tar shards, read by seeking (see the module docstring)."""

    def __init__(self, shards: list[Path], shard_of: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                 labels: np.ndarray, keys: np.ndarray, classes: list[str], split: str = "all") -> None:
        self.shards, self.shard_of, self.offsets, self.sizes = shards, shard_of, offsets, sizes
        self.labels, self.keys, self.classes, self.split = labels, keys, classes, split
        self._handles: dict[int, io.BufferedReader] = {}
        self._pid = os.getpid()

    @classmethod
    def open(cls, spec: str) -> ShardDataset:
        shards = shard_files(spec)
        records = {folder: read_checksums(folder) for folder in {p.parent for p in shards}}
        rows = [(s, *r) for s, path in enumerate(shards)
                for r in shard_index(path, records[path.parent].get(path.name))]
        if not rows:
            raise CompressorError(f"the {len(shards)} shards of --data {spec!r} hold no images; write shards "
                                  "with `compress data shard FOLDER OUT`")
        shard_of, keys, offsets, sizes, labels = zip(*rows, strict=True)
        label_arr = np.asarray(labels, dtype=np.int64)
        classes = read_classes(shards[0].parent)
        top = int(label_arr.max())
        if top < 0:  # no .cls members: unlabelled
            classes = []
        elif classes is None:  # labels without names: name them by number
            classes = [str(i) for i in range(top + 1)]
        elif top >= len(classes):
            raise CompressorError(f"label {top} in the shards, but {shards[0].parent / CLASSES_FILE} names only "
                                  f"{len(classes)} classes; write the shards and classes.json together")
        return cls(shards, np.asarray(shard_of, dtype=np.int32), np.asarray(offsets, dtype=np.int64),
                   np.asarray(sizes, dtype=np.int64), label_arr,
                   np.asarray([k.encode() for k in keys], dtype=np.bytes_), classes)  # compact, shared by workers

    def select(self, indices: np.ndarray, split: str) -> ShardDataset:
        return ShardDataset(self.shards, self.shard_of[indices], self.offsets[indices], self.sizes[indices],
                            self.labels[indices], self.keys[indices], self.classes, split)

    def __len__(self) -> int:
        return len(self.offsets)

    def item_name(self, i: int) -> str:
        return f"{self.shards[int(self.shard_of[i])]}:{self.keys[i].decode()}"

    def __getitem__(self, i: int) -> tuple[Image.Image | None, int]:
        label = int(self.labels[i])
        try:
            data = self._read(i)
        except OSError as err:
            log.warning("skipping unreadable image %s (%s)", self.item_name(i), err)
            return None, label
        return load_image(io.BytesIO(data), name=self.item_name(i)), label

    def _read(self, i: int) -> bytes:
        if self._pid != os.getpid():  # a forked worker: the parent's handles share its file positions
            self._handles, self._pid = {}, os.getpid()
        s = int(self.shard_of[i])
        fh = self._handles.get(s)
        if fh is None:
            fh = self._handles[s] = open(self.shards[s], "rb")  # noqa: SIM115  # kept open for the next reads
        fh.seek(int(self.offsets[i]))
        size = int(self.sizes[i])
        data = fh.read(size)
        if len(data) != size:
            raise OSError(f"shard truncated: {len(data)} of {size} bytes")
        return data

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers (spawn) get no open files
        return {**self.__dict__, "_handles": {}}


def _held_out_spec(spec: str, split: str) -> str | None:
    """``dir/val-*.tar`` (or ``test-``) when ``spec``'s file names say ``train`` and such shards exist."""
    folder, base = os.path.split(spec)
    if "train" not in base:
        return None
    for name in ("val", "test"):
        cand = os.path.join(folder, re.sub(r"\{[^{}]*\}", "*", base.replace("train", name)))
        if glob.glob(os.path.expanduser(cand)):
            return cand
    return None


def open_shards(spec: str, split: str) -> ShardDataset:
    """The ``split`` (``train`` or ``val``) of the shards ``spec`` names.

    Like a folder: when ``spec`` names ``train…`` shards and ``val…`` (or ``test…``) shards lie beside
    them, ``train`` is every sample of ``spec`` and ``val`` those shards; otherwise a fixed 80/20 split
    (every 5th sample held out for ``val``), so eval queries are never in the kNN bank.
    """
    held_out = _held_out_spec(spec, split)
    if held_out is not None:
        return ShardDataset.open(spec if split == "train" else held_out)
    full = ShardDataset.open(spec)
    keep = np.flatnonzero((np.arange(len(full)) % 5 == 4) == (split != "train"))
    if not len(keep):
        log.warning("%s has %d samples, too few for a %s split (every 5th sample is held out)", spec, len(full), split)
    return full.select(keep, split)
