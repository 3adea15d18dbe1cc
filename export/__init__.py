"""Deployment: export a run's student (ONNX, FP16, calibrated INT8, TensorRT) and benchmark it.

Installed as ``compressor.export``; import it under that name::

    from compressor.export import ExportOptions, export_run, BenchOptions, bench

    export_run("runs/r50", ExportOptions(format="onnx-int8", calib_size=256))
    report = bench("runs/r50", BenchOptions(backends=("torch", "ort-cpu"), batches=(1, 8)))
    report.to_json("bench.json")

Modules: ``onnx`` (torch → ONNX, simplify, FP16), ``quantize`` (ORT static INT8), ``tensorrt``
(engines; TensorRT imported lazily), ``parity`` (fidelity figures), ``manifest`` (export/manifest.json),
``exporter`` (the ``compress export`` pipeline), ``timing`` (the latency loop and its statistics),
``runners`` (one per bench backend), ``bench`` (the ``compress bench`` pipeline), ``report``
(table, JSON, Markdown, plot), ``env`` (versions and hardware), ``images`` (real inputs), ``runtime``
(ORT sessions).
"""

from compressor.export.bench import BenchOptions, BenchReport, bench
from compressor.export.exporter import FORMATS, ExportOptions, ExportResult, export_run

__all__ = ["FORMATS", "BenchOptions", "BenchReport", "ExportOptions", "ExportResult", "bench", "export_run"]
