"""``export/manifest.json``: one entry per exported file, rewritten atomically after every export.

``compressor.export`` writes it; the report, ``compress embed`` and ``compress bench`` read it. It sits in
the core, beside :mod:`compressor.rundir`, so that its readers need not import the export plug-in.

```
{"format": "compressor-export/1", "student": {...student.json...},
 "exports": {"model.int8.onnx": {"format": "onnx-int8", "precision": "int8", "size_mb": 24.1, "opset": 17,
                                 "input": {...}, "fidelity": {...}, "tools": {...}, ...}}}
```
"""

from __future__ import annotations

import json
from pathlib import Path

from compressor.errors import CompressorError
from compressor.rundir import MANIFEST
from compressor.utils.io import atomic_write_text

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
