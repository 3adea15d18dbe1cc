"""``compress data shard FOLDER OUT``: an image folder written as WebDataset shards (read by :mod:`.shards`)."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np

from compressor.data.datasets import FolderDataset
from compressor.data.images import IMAGE_EXTENSIONS
from compressor.data.shards import CHECKSUMS_FILE, CLASSES_FILE, read_checksums, read_classes
from compressor.errors import CompressorError
from compressor.utils.io import FileRecord, atomic_write, atomic_write_text, file_record


def write_shards(folder: str | Path, out: str | Path, *, shard_size: int = 1000, prefix: str = "train",
                 seed: int | None = 0, progress: bool = True) -> str:
    """Write the images under ``folder`` as WebDataset shards ``OUT/PREFIX-000000.tar …``; returns the SPEC.

    Class sub-folders give ``.cls`` labels and ``OUT/classes.json``. ``seed`` shuffles the order first
    (so every shard mixes classes); ``None`` keeps the folder's order. Image bytes are copied as they
    are (an unreadable image is found, and skipped, when read). Each shard is written atomically, and
    its size and SHA-256 are recorded in ``OUT/shards.json`` (checked by the reader).
    """
    folder, out = Path(folder).expanduser(), Path(out).expanduser()
    if shard_size < 1:
        raise CompressorError(f"--shard-size must be at least 1, not {shard_size}")
    if not prefix or not re.fullmatch(r"[\w-]+", prefix):
        raise CompressorError(f"--prefix {prefix!r}: use letters, digits, '-' and '_' only")
    if not folder.is_dir():
        raise CompressorError(f"image folder {str(folder)!r} does not exist or is not a folder; pass a folder of "
                              "images (class sub-folders give labels)")
    subdirs = {p.name for p in folder.iterdir() if p.is_dir()}
    if "train" in subdirs and subdirs & {"val", "test"}:
        raise CompressorError(f"{folder} holds train/ and val/ splits; shard each one: `compress data shard "
                              f"{folder}/train OUT --prefix train`, then `{folder}/val OUT --prefix val`")
    try:
        ds = FolderDataset.scan(folder)
    except CompressorError:
        raise CompressorError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}); "
                              "pass a folder of images or of class sub-folders") from None
    old = read_classes(out) if out.is_dir() else None
    if ds.classes and old is not None and old != ds.classes:
        raise CompressorError(f"{out / CLASSES_FILE} lists other classes than {folder}'s sub-folders; shard into "
                              "another folder (the labels of both would not agree)")
    if out.is_dir() and any(out.glob(f"{prefix}-*.tar")):
        raise CompressorError(f"{out} already holds {prefix}-*.tar shards; pass an empty folder or another --prefix")
    n = len(ds)
    order = np.random.default_rng(seed).permutation(n) if seed is not None else np.arange(n)
    count = -(-n // shard_size)
    width = max(6, len(str(count - 1)))
    out.mkdir(parents=True, exist_ok=True)
    if ds.classes:
        atomic_write_text(out / CLASSES_FILE, json.dumps(ds.classes, indent=1) + "\n")
    bar = None
    if progress:
        from compressor.utils.progress import make_progress

        bar = make_progress()
        bar.start()
    task = bar.add_task("sharding", total=n) if bar else None
    written: dict[str, FileRecord] = {}
    try:
        for s in range(count):
            part = order[s * shard_size:(s + 1) * shard_size]

            def write(tmp: Path, part: np.ndarray = part, s: int = s) -> None:
                with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
                    for j, i in enumerate(part):
                        src = ds.files[int(i)]
                        key = f"{s * shard_size + j:09d}"
                        try:
                            image = src.read_bytes()
                        except OSError as err:
                            raise CompressorError(f"cannot read {src}: {err.strerror or err}") from None
                        members = [(f"{key}{src.suffix.lower()}", image),
                                   (f"{key}.json", json.dumps({"path": str(src.relative_to(folder))}).encode())]
                        if ds.labels[int(i)] >= 0:
                            members.append((f"{key}.cls", str(ds.labels[int(i)]).encode()))
                        for name, data in members:
                            info = tarfile.TarInfo(name)
                            info.size, info.mode, info.mtime = len(data), 0o444, 0  # the same bytes every time
                            tar.addfile(info, io.BytesIO(data))
                        if bar is not None and task is not None:
                            bar.advance(task)

            shard = out / f"{prefix}-{s:0{width}d}.tar"
            atomic_write(shard, write)
            written[shard.name] = file_record(shard)
    finally:
        if written:  # what was written, even when a later shard failed
            records = {**read_checksums(out), **written}
            atomic_write_text(out / CHECKSUMS_FILE, json.dumps({"files": dict(sorted(records.items()))},
                                                              indent=1) + "\n")
        if bar is not None:
            bar.stop()
    last = f"{count - 1:0{width}d}"
    return str(out / (f"{prefix}-{last}.tar" if count == 1 else f"{prefix}-{{{0:0{width}d}..{last}}}.tar"))
