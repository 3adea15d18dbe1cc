"""ONNX files run by ONNX Runtime: ``onnx`` (fp32), ``onnx-fp16`` and ``onnx-int8`` (ORT static QDQ, or the
QAD graph); bench runtimes ``ort-cpu`` and ``ort-cuda``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compressor.export.backend import ExportBackend, Format, Runner, register_backend
from compressor.export.job import ExportJob
from compressor.export.options import ExportOptions
from compressor.manifest import ExportEntry


@register_backend
class OnnxRuntimeBackend(ExportBackend):
    name = "onnxruntime"
    formats = (
        Format("onnx", "model", "fp32", 0.9999),
        Format("onnx-fp16", "model.fp16", "fp16", 0.999, pick=False),  # no speed-up on x86 CPUs
        Format("onnx-int8", "model.int8", "int8", 0.98, qad=True),
    )
    suffixes = (".onnx",)
    runtimes = ("ort-cpu", "ort-cuda")

    def unavailable(self, fmt: str) -> str | None:
        return None  # onnx and onnxruntime are core dependencies

    def runtime_unavailable(self, runtime: str) -> str | None:
        from compressor.export.runtime import ort_available

        return ort_available(runtime)

    def export(self, job: ExportJob) -> ExportEntry:
        from compressor.export.metadata import contract, write_onnx_metadata
        from compressor.export.onnx import convert_fp16
        from compressor.export.runtime import make_session, run_batched

        fmt, opts, path = job.opts.format, job.opts, job.path
        reference = job.reference()
        extra: dict = {}
        if job.qad is not None:  # the trained fake-quantized graph itself, not a calibration of the fp32 one
            facts, extra = job.qad_onnx(path)
        else:
            fp32 = job.work / "fp32.onnx"
            facts = job.fp32_onnx(fp32)
            if fmt == "onnx":
                fp32.rename(path)
            elif fmt == "onnx-fp16":
                convert_fp16(fp32, path)
            else:
                extra = job.quantize(fp32, path)
        precision = self.format(fmt).precision
        write_onnx_metadata(path, contract(facts["input"], embed_dim=job.encoder.embed_dim, arch=job.encoder.arch,
                                           fmt=fmt, precision=precision, opset=opts.opset))
        session = make_session(path)
        output = run_batched(session, job.graph_inputs(job.check.images))
        knn = {}
        if fmt == "onnx-int8" and opts.knn:
            knn = job.knn_report(lambda x: run_batched(session, x), reference, output)
        fidelity, _ = job.verdict(reference, output)
        return {**facts, "fidelity": {**fidelity, **knn}, **extra}

    def runner(self, runtime: str, path: Path, entry: ExportEntry, *, threads: int,
               reexport: Callable[[ExportOptions], ExportEntry] | None) -> tuple[Runner, str, str]:
        from compressor.export.onnx import onnx_precision
        from compressor.export.runners import OrtRunner

        precision = entry.get("precision") or onnx_precision(path)
        fmt = entry.get("format") or {"fp32": "onnx", "fp16": "onnx-fp16", "int8": "onnx-int8"}[precision]
        return OrtRunner(path, backend=runtime, threads=threads), fmt, precision
