"""``export/manifest.json``: one entry per exported file, rewritten atomically after every export.

``compressor.export`` writes it; the report, ``compress embed`` and ``compress bench`` read it. It sits in
the core, beside :mod:`compressor.rundir`, so that its readers need not import the export plug-in.

```
{"format": "compressor-export/1", "student": {...student.json...},
 "exports": {"model.int8.onnx": {"format": "onnx-int8", "precision": "int8", "size_mb": 24.1, "opset": 17,
                                 "input": {...}, "fidelity": {...}, "tools": {...}, ...}}}
```

Each entry's ``files`` records the size and SHA-256 of the bytes `compress export` wrote (the model file,
and an OpenVINO IR's ``.bin``); :func:`verify_export` compares them before a file is benched or embedded,
so a file replaced or damaged on disk is named instead of measured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict, cast

from compressor.errors import CompressorError
from compressor.rundir import MANIFEST
from compressor.utils.io import FileRecord, atomic_write_text, file_record

FORMAT = "compressor-export/1"


# The records are TypedDicts, not classes: the manifest is JSON that other tools read, so an entry stays the plain
# dict that json.loads gives (no conversion layer, the file's layout unchanged), while mypy checks every key a
# writer sets and a reader takes against the one declaration below. A new key is declared here first.
class InputRecord(TypedDict, total=False):
    """The graph's input: ``float32`` NCHW normalised, or ``uint8`` NHWC RGB with the preprocessing baked in."""

    name: str
    dtype: str
    layout: str  # NCHW | NHWC
    shape: list[int | str]  # "batch" for the dynamic axis
    color: str
    preprocess_baked: bool
    mean: list[float]
    std: list[float]
    note: str


class OutputRecord(TypedDict, total=False):
    name: str
    dtype: str
    shape: list[int | str]


class FidelityRecord(TypedDict, total=False):
    """The export check (export/parity.py): the exported file against the PyTorch student on real images, and for
    INT8 files the kNN top-1 of both on a bank and queries of the run's data."""

    reference: str  # what the file is compared with: "pytorch fp32"
    data: str  # the images' data spec and split
    sample: dict[str, Any] | None  # how the images were drawn (compressor/data/subset.py), None: the first N
    n_images: int
    mean_cosine: float
    min_cosine: float
    max_abs_diff: float
    threshold: float
    knn: str
    knn_bank: int
    knn_bank_sample: dict[str, Any] | None
    knn_queries: int
    knn_top1_fp32: float
    knn_top1_int8: float
    knn_delta_noise: float
    knn_discordant: dict[str, int]  # queries right in one precision only: fp32_only, int8_only


class ExportEntry(TypedDict, total=False):
    """One exported file's entry. ``file``, ``format`` and ``precision`` are always set by `compress export`; the
    blocks after them are set by the backends that have them (export/backends/)."""

    file: str
    format: str
    precision: str  # fp32 | fp16 | bf16 | int8
    size_bytes: int
    size_mb: float
    files: dict[str, FileRecord]
    input: InputRecord
    output: OutputRecord
    fidelity: FidelityRecord
    opset: int
    simplifier: str
    quantization: dict[str, Any]  # PTQ: tool, scheme, calibration images (export/quantize.py, export/openvino.py)
    qad: dict[str, Any]  # quantization-aware distillation (export/qad.py); present only for a QAD file
    openvino: dict[str, Any]  # OpenVINO version, inference precision, strict_fp32
    tensorrt: dict[str, Any]  # TensorRT version, GPU, optimisation profile (export/tensorrt.py)
    # `compress bench` figures, "<runtime> <mode> batch <n>" → compute and end-to-end figures with their labels,
    # settings and hardware (export/bencher.py: _record); not an input of a bench (bencher.manifest_digest)
    bench: dict[str, Any]
    architecture: str  # the timm folder: its timm architecture
    tools: dict[str, str]
    export_seconds: float
    created: str


class _ManifestKeys(TypedDict):
    format: str
    exports: dict[str, ExportEntry]


class Manifest(_ManifestKeys, total=False):
    student: dict[str, Any]  # the student's student.json (input size, mean, std, architecture)


def preprocess_baked(entry: ExportEntry) -> bool:
    """Whether the file takes ``uint8`` NHWC RGB pixels (the normalisation inside the graph)."""
    return bool(entry.get("input", {}).get("preprocess_baked", False))


def read_manifest(export_dir: str | Path) -> Manifest:
    """The manifest of ``export_dir`` (an empty one when there is none yet)."""
    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "exports": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CompressorError(f"{path} is not valid JSON ({err}); delete it and export again") from err
    if not isinstance(data, dict) or not isinstance(data.get("exports", {}), dict):
        raise CompressorError(f"{path} is not an export manifest (no exports mapping); delete it and export again")
    data.setdefault("exports", {})
    data.setdefault("format", FORMAT)
    return cast(Manifest, data)  # JSON from disk, its shape checked just above


def record_export(export_dir: str | Path, file_name: str, entry: ExportEntry, *,
                  student: dict[str, Any] | None = None) -> Path:
    """Add or replace the entry of ``file_name``; entries of files that no longer exist are dropped."""
    export_dir = Path(export_dir)
    data = read_manifest(export_dir)
    data["format"] = FORMAT
    if student is not None:
        data["student"] = student
    exports = {k: v for k, v in data["exports"].items() if (export_dir / k).exists()}
    exports[file_name] = entry
    data["exports"] = dict(sorted(exports.items()))
    path = export_dir / MANIFEST
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def manifest_entry(path: str | Path) -> ExportEntry | None:
    """The manifest entry of an exported file, looked up in the manifest beside it."""
    path = Path(path)
    return read_manifest(path.parent)["exports"].get(path.name)


def verify_export(path: str | Path) -> None:
    """Refuse an exported file whose bytes are not those its manifest entry records (size first, then SHA-256).

    Entries written before the manifest recorded ``files``, and files without an entry, are not checked.
    """
    path = Path(path)
    entry = manifest_entry(path)
    files = entry.get("files") if entry else None
    if not entry or not isinstance(files, dict):
        return
    fix = f"re-export it with `compress export {path.parent.parent} --format {entry.get('format', 'onnx')}`"
    for name, want in files.items():
        f = path.parent / name
        if not f.is_file():
            raise CompressorError(f"{f} is missing though {path.parent / MANIFEST} lists it; {fix}")
        size = f.stat().st_size
        if size != want.get("size_bytes"):
            raise CompressorError(f"{f} is {size} bytes, but `compress export` wrote {want.get('size_bytes')} "
                                  f"(truncated or replaced); {fix}")
        if file_record(f)["sha256"] != want.get("sha256"):
            raise CompressorError(f"{f} does not match the SHA-256 `compress export` recorded (changed on disk "
                                  f"after the export); {fix}")
