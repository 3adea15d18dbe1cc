"""OpenVINO IRs: ``openvino`` (fp32 weights; the CPU plugin picks bf16 where it can) and ``openvino-int8`` (NNCF
post-training quantization, or the QAD graph's FakeQuantize ops); bench runtime ``openvino``.

OpenVINO and NNCF are the ``openvino`` extra (export/openvino.py holds the conversion and the runner)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from compressor.export.backend import ExportBackend, Format, Runner, register_backend
from compressor.export.job import ExportJob
from compressor.export.options import ExportOptions
from compressor.manifest import ExportEntry


@register_backend
class OpenVinoBackend(ExportBackend):
    name = "openvino"
    formats = (
        # the CPU plugin runs an fp32 IR in bf16 where the CPU has it: fp16-like threshold, 0.9999 with strict_fp32
        Format("openvino", "model", "fp32", 0.999),
        Format("openvino-int8", "model.int8", "int8", 0.98, qad=True),
    )
    suffixes = (".xml",)
    runtimes = ("openvino",)

    def unavailable(self, fmt: str) -> str | None:
        from compressor.export.openvino import openvino_unavailable

        return openvino_unavailable(nncf=fmt == "openvino-int8")

    def runtime_unavailable(self, runtime: str) -> str | None:
        from compressor.export.openvino import openvino_unavailable

        return openvino_unavailable()

    def sidecars(self, name: str) -> tuple[str, ...]:
        return (str(Path(name).with_suffix(".bin")),)

    def export(self, job: ExportJob) -> ExportEntry:
        """fp32 ONNX → OpenVINO IR (NNCF-quantised for ``openvino-int8``), compiled and checked like ONNX."""
        from compressor.export import openvino as ovx
        from compressor.export.metadata import contract

        fmt, opts = job.opts.format, job.opts
        source = job.work / "fp32.onnx"
        facts = job.fp32_onnx(source)
        precision = self.format(fmt).precision
        props = contract(facts["input"], embed_dim=job.encoder.embed_dim, arch=job.encoder.arch, fmt=fmt,
                         precision=precision, opset=opts.opset)
        extra: dict = {}
        calib_inputs = None
        if job.qad is not None:  # the trained graph with OpenVINO FakeQuantize ops: converted, not re-calibrated
            source = job.work / "fq.onnx"
            _, extra = job.qad_onnx(source)
        elif fmt == "openvino-int8":
            calib = job.calibration_images()
            calib_inputs = job.graph_inputs(calib.images)
            extra = {"quantization": {"calib_data": calib.source, "calib_sample": calib.sample,
                                      "calib_images": len(calib)}}
        block = ovx.convert(source, job.path, props, strict_fp32=opts.strict_fp32, calib=calib_inputs)
        if "quantization" in block:
            extra["quantization"].update(block.pop("quantization"))
        runner = ovx.OpenVinoRunner(job.path, strict_fp32=opts.strict_fp32)
        block["inference_precision"] = runner.inference_precision
        reference = job.reference()
        output = runner.run(job.graph_inputs(job.check.images))
        knn = job.knn_report(runner.run, reference, output) if fmt == "openvino-int8" and opts.knn else {}
        fidelity, _ = job.verdict(reference, output, note=f" (inference precision {runner.inference_precision})")
        return {**facts, "openvino": block, "fidelity": {**fidelity, **knn}, **extra}

    def runner(self, runtime: str, path: Path, entry: ExportEntry, *, threads: int,
               reexport: Callable[[ExportOptions], ExportEntry] | None) -> tuple[Runner, str, str]:
        from compressor.export.openvino import OpenVinoRunner

        ov_runner = OpenVinoRunner(path, threads=threads)
        precision = "int8" if entry.get("precision") == "int8" else ov_runner.inference_precision
        return ov_runner, entry.get("format") or "openvino", precision
