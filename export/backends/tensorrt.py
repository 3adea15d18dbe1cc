"""TensorRT engines: ``trt-fp16`` (the fp32 ONNX with FP16 enabled; ``trt`` is another name for it) and
``trt-int8`` (explicit quantization from a signed, symmetric Q/DQ graph: ORT-calibrated, or the QAD graph);
bench runtime ``trt``.

TensorRT is imported lazily (export/tensorrt.py holds the builder, the loader and the runner)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from compressor.export.backend import ExportBackend, Format, Runner, register_backend
from compressor.export.job import ExportJob
from compressor.export.options import ExportOptions
from compressor.manifest import ExportEntry


@register_backend
class TensorRtBackend(ExportBackend):
    name = "tensorrt"
    formats = (
        # `--format trt` is an FP16 engine: what a TensorRT user means by "an engine" (Ultralytics' `engine`
        # export builds FP16 the same way); INT8 needs calibration data, so it is never the unnamed default.
        Format("trt-fp16", "model.fp16", "fp16", 0.999, aliases=("trt",)),
        Format("trt-int8", "model.int8", "int8", 0.98, qad=True),
    )
    suffixes = (".engine", ".plan")
    runtimes = ("trt",)

    def unavailable(self, fmt: str) -> str | None:
        from compressor.export.tensorrt import trt_unavailable

        return trt_unavailable()

    def export(self, job: ExportJob) -> ExportEntry:
        """Build the ONNX it needs (fp32 for trt-fp16, the calibrated or QAD Q/DQ graph for trt-int8), then the
        engine; the build's timing cache is kept beside it for the next build."""
        from compressor.export import tensorrt as trt

        fmt, opts = job.opts.format, job.opts
        fp32 = job.work / "fp32.onnx"
        facts = job.fp32_onnx(fp32)
        extra: dict = {}
        source = fp32
        if job.qad is not None:  # trt-int8: the trained signed-symmetric Q/DQ graph
            source = job.work / "qdq.onnx"
            _, extra = job.qad_onnx(source)
        elif fmt == "trt-int8":
            source = job.work / "qdq.onnx"
            extra = job.quantize(fp32, source, for_tensorrt=True)
        inputs = job.graph_inputs(job.check.images)
        precision = self.format(fmt).precision
        block = trt.build_engine(source, job.path, precision=precision, image_shape=inputs.shape[1:],
                                 batch=opts.trt_batch, timing_cache=job.work / "timing.cache")
        runner = trt.TrtRunner(trt.load_engine(job.path, None))
        output = runner.run(inputs, batch=opts.trt_batch[2])
        fidelity, _ = job.verdict(job.reference(), output, what="engine")
        return {**facts, "tensorrt": block, "fidelity": fidelity, **extra}

    def finish(self, work: Path, out_dir: Path) -> None:
        if (work / "timing.cache").is_file():
            shutil.copyfile(work / "timing.cache", out_dir / "timing.cache")

    def runner(self, runtime: str, path: Path, entry: ExportEntry, *, threads: int,
               reexport: Callable[[ExportOptions], ExportEntry] | None) -> tuple[Runner, str, str]:
        from compressor.export import tensorrt as trt

        rebuild = None
        if reexport is not None and entry:
            def rebuild() -> ExportEntry:
                profile = entry.get("tensorrt", {}).get("profile", {"min": 1, "opt": 8, "max": 32})
                baked = bool(entry.get("input", {}).get("preprocess_baked", False))
                return reexport(ExportOptions(format=entry["format"], bake_preprocess=baked,
                                              trt_batch=(profile["min"], profile["opt"], profile["max"])))

        trt_runner = trt.TrtRunner(trt.load_engine(path, entry.get("tensorrt"), rebuild))
        return trt_runner, entry.get("format", "trt-fp16"), entry.get("precision", "fp16")
