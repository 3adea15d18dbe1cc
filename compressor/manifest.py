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

from compressor.errors import CompressorError
from compressor.rundir import MANIFEST
from compressor.utils.io import atomic_write_text, file_record

FORMAT = "compressor-export/1"


def read_manifest(export_dir: str | Path) -> dict:
    """The manifest of ``export_dir`` (an empty one when there is none yet)."""
    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        return {"format": FORMAT, "exports": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CompressorError(f"{path} is not valid JSON ({err}); delete it and export again") from err
    data.setdefault("exports", {})
    return data


def record_export(export_dir: str | Path, file_name: str, entry: dict, *,
                  student: dict | None = None) -> Path:
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


def manifest_entry(path: str | Path) -> dict | None:
    """The manifest entry of an exported file, looked up in the manifest beside it."""
    path = Path(path)
    return read_manifest(path.parent)["exports"].get(path.name)


def verify_export(path: str | Path) -> None:
    """Refuse an exported file whose bytes are not those its manifest entry records (size first, then SHA-256).

    Entries written before the manifest recorded ``files``, and files without an entry, are not checked.
    """
    path = Path(path)
    entry = manifest_entry(path)
    if not entry or not isinstance(entry.get("files"), dict):
        return
    fix = f"re-export it with `compress export {path.parent.parent} --format {entry.get('format', 'onnx')}`"
    for name, want in entry["files"].items():
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
