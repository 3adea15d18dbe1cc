"""Deployment: export a run's student (ONNX, FP16, calibrated INT8, TensorRT) and benchmark it.

Installed as ``compressor.export``; import it under that name::

    from compressor.export import ExportOptions, export_run, BenchOptions, bench

    export_run("runs/r50", ExportOptions(format="onnx-int8", calib_size=256))
    report = bench("runs/r50", BenchOptions(backends=("torch", "ort-cpu"), batches=(1, 8)))
    report.to_json("bench.json")

Modules: ``onnx`` (torch → ONNX, simplify, FP16), ``quantize`` (ORT static INT8), ``tensorrt``
(engines; TensorRT imported lazily), ``parity`` (fidelity figures), ``exporter`` (the ``compress export``
pipeline; the manifest it writes is :mod:`compressor.manifest`), ``timing`` (the latency loop and its statistics),
``runners`` (one per bench backend), ``bencher`` (``bench``, the ``compress bench`` pipeline), ``report``
(table, JSON, Markdown, plot), ``env`` (versions and hardware), ``images`` (real inputs), ``runtime``
(ORT sessions), ``embed_files`` (``compress embed``), ``options`` (what export and bench take, with their defaults).

The package is also the function ``compressor.export(run, format, **options)`` of the top-level API
(:func:`compressor.api.export`): a name can be the package or the function, not both, so the package is
callable. The names below load on first use, so ``compressor.export.options`` (read by the CLI as it starts)
does not pull in torch, ONNX and the runtimes.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compressor.export.bencher import bench
    from compressor.export.exporter import FORMATS, ExportResult, export_run
    from compressor.export.options import BenchOptions, ExportOptions
    from compressor.export.report import BenchReport

_WHERE = {"bench": "bencher", "FORMATS": "exporter", "ExportResult": "exporter", "export_run": "exporter",
          "BenchOptions": "options", "ExportOptions": "options", "BenchReport": "report"}
__all__ = ["FORMATS", "BenchOptions", "BenchReport", "ExportOptions", "ExportResult", "bench", "export_run"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)


class _CallablePackage(types.ModuleType):
    """``compressor.export(run, "onnx-int8")`` exports as :func:`compressor.api.export` does, whichever came first."""

    def __call__(self, run: str | Path, format: str = "onnx", **options: Any) -> Path:
        from compressor.export.exporter import export_file

        return export_file(run, format, **options)


sys.modules[__name__].__class__ = _CallablePackage
