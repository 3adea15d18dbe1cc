"""The typed manifest (compressor/manifest.py): what `compress export` and `compress bench` write is what the
TypedDicts declare, so mypy's view of every reader is the file's real layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from compressor.errors import CompressorError
from compressor.manifest import ExportEntry, FidelityRecord, InputRecord, Manifest, read_manifest
from compressor.rundir import MANIFEST
from compressor.utils.io import FileRecord


def _undeclared(record: dict[str, Any], declared: type, where: str) -> list[str]:
    keys = set(get_type_hints(declared))
    return [f"{where}.{k}" for k in record if k not in keys]


def test_every_key_an_export_and_a_bench_write_is_declared(exported_run: Path) -> None:
    from compressor.export import BenchOptions, bench

    bench(exported_run, BenchOptions(backends=("ort-cpu",), batches=(1,), iters=3, warmup=1))
    raw = json.loads((exported_run / "export" / MANIFEST).read_text())
    assert set(raw) <= set(get_type_hints(Manifest)), set(raw) - set(get_type_hints(Manifest))
    assert {"model.onnx", "model.int8.onnx"} <= set(raw["exports"])
    missing: list[str] = []
    for name, entry in raw["exports"].items():
        missing += _undeclared(entry, ExportEntry, name)
        missing += _undeclared(entry["input"], InputRecord, f"{name}.input")
        missing += _undeclared(entry["fidelity"], FidelityRecord, f"{name}.fidelity")
        for file, record in entry["files"].items():
            missing += _undeclared(record, FileRecord, f"{name}.files.{file}")
        for key in ("file", "format", "precision"):  # always written
            assert isinstance(entry[key], str), (name, key)
    assert not missing, f"written but not declared in compressor/manifest.py: {missing}"
    int8 = raw["exports"]["model.int8.onnx"]
    assert int8["precision"] == "int8" and "knn_top1_int8" in int8["fidelity"]


@pytest.mark.parametrize("text", ["[1, 2]", '{"exports": [1]}'])
def test_a_manifest_of_another_shape_is_a_one_line_error(tmp_path: Path, text: str) -> None:
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(CompressorError, match="not an export manifest") as err:
        read_manifest(tmp_path)
    assert "\n" not in str(err.value)
