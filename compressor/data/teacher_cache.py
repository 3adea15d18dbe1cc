"""A teacher-embedding cache on disk: each image's embedding of a deterministic view, computed once.

For a recipe whose teacher sees a view that does not depend on the epoch (MV-MR's ``x_o``: resize +
centre crop), ``T(view(image))`` is a function of the image alone. The cache keeps it in a
memory-mapped ``.npy`` file (N×D float32) next to a fill mask (N bools), so it is reused across
epochs, runs and DDP ranks (each rank fills the rows of its own images), and a partly filled cache
simply continues. ``meta.json`` holds the key the embeddings depend on:

* the data set's identity (``dataset_identity``: file (or shard) names, sizes and mtimes, or the parameters
  of a generated set, and the subset taken by ``--max-images``),
* the teacher's name and a hash of its weights,
* the teacher's input size and normalisation, and the embedding width.

Opening a cache whose key differs is refused with a message naming each field that differs.
Rows are written before their fill flags, and both files are flushed after each batch, so a
killed process leaves at worst rows that are computed again, never a flag over a missing row.

Damage on disk is found when a cache is opened, never read silently: the arrays' headers and sizes
are checked (a truncated file), and every filled row against the CRC-32 recorded beside it in
``checksums.npy`` when it was written (a flipped bit; a flag set over a row never written). A row
checksum rather than one per file because a cache is filled a batch at a time, by several ranks, and
resumed; checking costs one read of the file (~1 s per GB). Training refuses a damaged cache with a
line naming the fix; ``compress cache build`` repairs it (recomputes the rows that fail, or rebuilds
files that are cut short).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from compressor.errors import CompressorError
from compressor.rundir import RunDir
from compressor.utils.io import atomic_write_text

log = logging.getLogger("compressor")

VERSION = 2  # 2: checksums.npy, a CRC-32 per row


def dataset_identity(ds: Any) -> str:
    """A digest of what the images are: file list with sizes and mtimes, or a generated set's parameters."""
    h = hashlib.sha256()
    indices = None
    while isinstance(ds, torch.utils.data.Subset):  # --max-images: which images of the base set
        indices = list(ds.indices) if indices is None else [int(ds.indices[i]) for i in indices]
        ds = ds.dataset
    h.update(type(ds).__name__.encode())
    h.update(str(len(ds)).encode())
    files = getattr(ds, "files", None)
    shards = getattr(ds, "shards", None)  # WebDataset shards: the tar files, and which part of them
    if shards is not None:
        for f in shards:
            st = os.stat(f)
            h.update(f"{Path(f).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        h.update(f"split={getattr(ds, 'split', '')}\n".encode())
    elif files is not None:
        for f in files:
            st = os.stat(f)
            h.update(f"{Path(f).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    else:
        for name in ("folder", "split", "size", "image_size", "num_classes", "seed"):
            if hasattr(ds, name):
                h.update(f"{name}={getattr(ds, name)}\n".encode())
        arr = getattr(ds, "images", None)  # an in-memory set (Fashion-MNIST): its pixels
        if isinstance(arr, np.ndarray):
            h.update(hashlib.sha256(np.ascontiguousarray(arr).tobytes()).digest())
        folder = getattr(ds, "folder", None)
        if folder is not None and Path(folder).is_dir():
            for p in sorted(Path(folder).iterdir()):
                st = p.stat()
                h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    if indices is not None:
        h.update(np.asarray(indices, dtype=np.int64).tobytes())
    return h.hexdigest()


def weights_hash(model: torch.nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of every tensor of the teacher's state dict."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}\0{tuple(t.shape)}\0{t.dtype}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(dataset: Any, teacher: Any) -> dict[str, Any]:
    """The key of ``teacher``'s (an ``Encoder``) embeddings of ``dataset``'s deterministic view."""
    spec = teacher.spec
    return {"version": VERSION, "dataset": dataset_identity(dataset), "num_images": len(dataset),
            "teacher": str(getattr(teacher, "info", {}).get("name", getattr(teacher, "name", "?"))),
            "weights": weights_hash(teacher), "image_size": int(spec.image_size),
            "mean": [float(v) for v in spec.mean], "std": [float(v) for v in spec.std],
            "dim": int(teacher.embed_dim)}


_NAMES = {"dataset": "data set (files, sizes or mtimes)", "num_images": "number of images",
          "teacher": "teacher", "weights": "teacher weights", "image_size": "teacher input size",
          "mean": "normalisation mean", "std": "normalisation std", "dim": "embedding width",
          "version": "cache format version"}


def _row_crcs(rows: np.ndarray) -> np.ndarray:
    """CRC-32 of each row's float32 bytes."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    return np.fromiter((zlib.crc32(r.tobytes()) for r in rows), dtype=np.uint32, count=len(rows))


# the files of a cache: name -> (dtype, shape given N and D)
_ARRAYS = {"embeddings.npy": (np.float32, lambda n, d: (n, d)), "filled.npy": (np.bool_, lambda n, d: (n,)),
           "checksums.npy": (np.uint32, lambda n, d: (n,))}


class TeacherCache:
    """``embeddings.npy`` (N×D float32) + ``filled.npy`` (N bool) + ``checksums.npy`` (N CRC-32) + ``meta.json``.

    ``verify`` checks every filled row on opening (rank 0 does; the other ranks open after it);
    ``repair`` (``compress cache build``) recomputes what fails instead of refusing.
    """

    emb: np.memmap  # set by _open_arrays
    filled: np.memmap
    crc: np.memmap

    def __init__(self, folder: str | Path, key: dict[str, Any], *, create: bool = True, verify: bool = True,
                 repair: bool = False) -> None:
        self.folder = Path(folder)
        meta = self.folder / "meta.json"
        n, d = int(key["num_images"]), int(key["dim"])
        if meta.is_file():
            old = json.loads(meta.read_text())
            diff = [k for k in _NAMES if old.get(k) != key.get(k)]
            if diff:
                what = "; ".join(f"{_NAMES[k]}: cache {_short(old.get(k))}, now {_short(key.get(k))}" for k in diff)
                raise CompressorError(f"teacher cache {self.folder} was built for another {what}. Use another "
                                      "--teacher-cache folder (or delete this one)")
        elif not create:
            raise CompressorError(f"{self.folder} is not a teacher cache (no meta.json); build one with "
                                  "`compress cache build`")
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._create_arrays(n, d)
            atomic_write_text(meta, json.dumps(key, indent=2) + "\n")  # last: marks the files complete
        self.key = key
        damage = self._open_arrays(n, d)
        if damage and repair:
            log.warning("teacher cache %s: %s; building it again", self.folder, damage)
            self._create_arrays(n, d)
            damage = self._open_arrays(n, d)
        if damage:
            raise CompressorError(f"teacher cache {self.folder} is damaged ({damage}); run `compress cache build "
                                  f"{self.folder}` with this --teacher and --data to repair it, or delete the folder")
        if verify:
            self._verify_rows(repair)

    def _create_arrays(self, n: int, d: int) -> None:
        for name, (dtype, shape) in _ARRAYS.items():
            np.lib.format.open_memmap(self.folder / name, mode="w+", dtype=dtype, shape=shape(n, d)).flush()

    def _open_arrays(self, n: int, d: int) -> str | None:
        """Map the three arrays; what is wrong with them (missing, cut short, another shape), else ``None``."""
        for name, (dtype, shape) in _ARRAYS.items():
            try:
                arr = np.load(self.folder / name, mmap_mode="r+")
            except FileNotFoundError:
                return f"{name} is missing"
            except (OSError, ValueError) as err:  # a header or body cut short: "mmap length is greater than…"
                return f"{name} is truncated or not an array: {str(err).splitlines()[0] if str(err) else err}"
            if arr.dtype != dtype or arr.shape != shape(n, d):
                return f"{name} holds {arr.dtype} {arr.shape}, not {np.dtype(dtype)} {shape(n, d)}"
            setattr(self, {"embeddings.npy": "emb", "filled.npy": "filled", "checksums.npy": "crc"}[name], arr)
        return None

    def _verify_rows(self, repair: bool, chunk: int = 4096) -> None:
        """Every filled row against its CRC-32; bad rows are refused, or (``repair``) marked to be computed again."""
        bad: list[int] = []
        for start in range(0, len(self), chunk):
            rows = np.flatnonzero(self.filled[start:start + chunk]) + start
            if len(rows):
                bad += rows[_row_crcs(self.emb[rows]) != self.crc[rows]].tolist()
        if not bad:
            return
        what = f"{len(bad)} of {self.num_filled} rows do not match their checksums (first: row {bad[0]})"
        if not repair:
            raise CompressorError(f"teacher cache {self.folder} is damaged ({what}); run `compress cache build "
                                  f"{self.folder}` with this --teacher and --data to recompute them, or delete the "
                                  "folder")
        log.warning("teacher cache %s: %s; computing them again", self.folder, what)
        self.filled[bad] = False
        self.filled.flush()

    def __len__(self) -> int:
        return int(self.filled.shape[0])

    def record_source(self, source: dict[str, Any] | None) -> None:
        """Note where the teacher's weights came from (``teacher_source``): a complete cache with a matching
        source lets a run skip building the teacher (``cached_teacher``)."""
        meta = json.loads((self.folder / "meta.json").read_text())
        if source is not None and meta.get("source") != source:
            atomic_write_text(self.folder / "meta.json", json.dumps({**meta, "source": source}, indent=2) + "\n")

    @property
    def num_filled(self) -> int:
        return int(self.filled.sum())

    @property
    def complete(self) -> bool:
        return bool(self.filled.all())

    def store(self, index: torch.Tensor, embeddings: torch.Tensor) -> None:
        idx = index.detach().cpu().numpy()
        rows = embeddings.detach().float().cpu().numpy()
        self.emb[idx] = rows
        self.crc[idx] = _row_crcs(rows)
        self.emb.flush()  # the rows and their checksums first, then the flags that vouch for them
        self.crc.flush()
        self.filled[idx] = True
        self.filled.flush()

    def fetch(self, index: torch.Tensor, compute: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The embeddings of images ``index``; the missing ones come from ``compute(mask)`` and are stored."""
        idx = index.detach().cpu()
        todo = torch.from_numpy(~self.filled[idx.numpy()].copy())
        if todo.any():
            self.store(idx[todo], compute(todo.to(index.device)))
        return torch.from_numpy(self.emb[idx.numpy()].copy())


def _short(v: Any) -> str:
    s = str(v)
    return s[:12] + "…" if len(s) > 16 else s


class _TeacherViews(torch.utils.data.Dataset):
    """The teacher's deterministic view of the images ``rows`` of ``base`` (for building a cache)."""

    def __init__(self, base: Any, rows: list[int], spec: Any) -> None:
        from compressor.data.transforms import eval_transform

        self.base, self.rows, self.tf = base, rows, eval_transform(spec)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img, _ = self.base[self.rows[i]]
        if img is None:
            raise CompressorError(f"image {self.rows[i]} of the data set cannot be read; a teacher cache needs "
                                  "every image")
        return self.tf(img), self.rows[i]


@torch.no_grad()
def fill_cache(cache: TeacherCache, teacher: Any, dataset: Any, *, batch_size: int = 256, workers: int = 0,
               device: str | torch.device = "cpu", progress: Callable[[int], None] | None = None) -> int:
    """Compute the embeddings of every image not yet in ``cache`` (in index order); returns how many."""
    rows = np.flatnonzero(~np.asarray(cache.filled)).tolist()
    if not rows:
        return 0
    loader = torch.utils.data.DataLoader(_TeacherViews(dataset, rows, teacher.spec), batch_size=batch_size,
                                         num_workers=workers, pin_memory=torch.device(device).type == "cuda")
    teacher.to(device).eval()
    done = 0
    for images, index in loader:
        cache.store(index, teacher(images.to(device, non_blocking=True)).float())
        done += len(index)
        if progress is not None:
            progress(done)
    return done


def attach_cache(recipe: Any, dataset: Any, folder: str | Path, *, is_main: bool = True,
                 source: dict[str, Any] | None = None, barrier: Callable[[], None] = lambda: None) -> TeacherCache:
    """Open (rank 0: create) the cache of ``recipe``'s teacher and hand it to the recipe.

    Only recipes whose ``teacher_cache_view`` names a view of their teacher that does not depend on
    the epoch take a cache. ``source`` (``teacher_source``) is recorded so that a later run can skip
    building the teacher once the cache is complete (``cached_teacher``). Under DDP, ``barrier`` (the
    trainer's) holds the other ranks until rank 0 has created the cache.
    """
    if not getattr(recipe, "teacher_cache_view", None):
        raise CompressorError(f"recipe {getattr(recipe, 'name', '?')} has no deterministic teacher view to "
                              "cache; drop --teacher-cache (mvmr takes one; feature-kd and moma with "
                              "--set teacher_view=clean and one teacher)")
    teacher = recipe.teacher
    key = teacher.key if isinstance(teacher, CachedTeacher) else cache_key(dataset, teacher)
    if is_main:
        cache = TeacherCache(folder, key)
        cache.record_source(source)
        barrier()
    else:
        barrier()
        cache = TeacherCache(folder, key, create=False, verify=False)  # rank 0 has checked it
    recipe.teacher_disk_cache = cache
    return cache


# -- a complete cache stands in for the teacher ------------------------------------------------------
def teacher_source(teacher: str, weights: str | None, image_size: int | None) -> dict[str, Any] | None:
    """Where the teacher's weights come from, without building it: name, weights argument, and the weights
    file's path, size and mtime. ``None`` when that cannot be known cheaply (random weights, nothing on disk)."""
    from compressor.models import _hub
    from compressor.models.teachers import resolve_teacher

    if weights == "random":
        return None
    if weights:
        path: Path | None = Path(weights).expanduser()
    else:
        target = resolve_teacher(teacher)
        if isinstance(target, Path):  # a run directory of ours
            path = RunDir(target).weights_path()
        else:
            path = next((p for p in map(_hub.cached, target.sources) if p is not None), None)
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return {"teacher": teacher, "weights": weights or "default", "image_size": image_size,
            "file": f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"}


class CachedTeacher(torch.nn.Module):
    """The teacher of a complete cache: its input contract and width, no weights and no forward pass."""

    _frozen = True

    def __init__(self, key: dict[str, Any], folder: Path) -> None:
        from compressor.models.encoder import InputSpec

        super().__init__()
        self.key, self.folder = key, folder
        self.name = str(key["teacher"])
        self.spec = InputSpec(int(key["image_size"]), tuple(key["mean"]), tuple(key["std"]))
        self.embed_dim = int(key["dim"])
        self.info = {"name": self.name, "weights": f"teacher cache {folder} ({key['weights'][:12]}…)"}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raise CompressorError(f"the teacher was not built because {self.folder} looked complete, but an image is "
                              "missing from it; delete the folder and build it again (`compress cache build`)")


def cached_teacher(folder: str | Path, dataset: Any, source: dict[str, Any] | None) -> CachedTeacher | None:
    """A stand-in teacher when ``folder`` holds a complete cache of this data set built from ``source``."""
    meta = Path(folder) / "meta.json"
    if source is None or not meta.is_file():
        return None
    try:
        key = json.loads(meta.read_text())
        filled = np.load(Path(folder) / "filled.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None  # the full check (and its error message) happens when the cache is opened
    if key.get("source") != source or key.get("version") != VERSION or not bool(np.asarray(filled).all()):
        return None
    if key.get("dataset") != dataset_identity(dataset) or key.get("num_images") != len(dataset):
        return None
    return CachedTeacher(key, Path(folder))
