"""What ``compress export`` and ``compress bench`` take, with every default declared here once.

The library (``export_run``, ``bench``) and the CLI both read these dataclasses: ``compress export``
builds its flags from ExportOptions' fields (default, type and help), as ``compress distill`` does from
TrainConfig's, so ``--help`` shows the values the library uses. Light to import (no
torch, ONNX or runtime), so the CLI can read it when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressor.engine.config import option
from compressor.engine.ranges import Range, check_range, flag
from compressor.errors import CompressorError

DEFAULT_OPSET = 17
MAX_OPSET = 20  # the highest torch.onnx.export(dynamo=False) writes
REDUCE_RANGE = ("auto", "on", "off")
BACKENDS = ("torch", "ort-cpu", "ort-cuda", "trt", "openvino")  # declared here, not in runners: no numpy
# latency: one request at a time (compute-only and end-to-end figures); throughput: several requests in flight
BENCH_MODES = ("latency", "throughput")
# Warm-up before timing, in seconds (trtexec's --warmUp default is 200 ms): long enough for a GPU's clocks and
# cuDNN/oneDNN kernel choice, short enough to add little to a CPU table of many rows.
WARMUP_S = 0.2


@dataclass
class ExportOptions:
    """Everything ``compress export`` takes (``export_run``): each field is one of its flags, help text included."""

    format: str = option("onnx", "onnx, onnx-fp16, onnx-int8, openvino, openvino-int8, trt-fp16, trt-int8 or timm; "
                                 "trt means trt-fp16 (an FP16 TensorRT engine); comma-separated for several "
                                 "(exported in turn).", aliases=("-f",))
    out_dir: Path | None = option(None, "Output folder (default: RUN/export).", flag="--out")
    opset: int = option(DEFAULT_OPSET, f"ONNX opset ({DEFAULT_OPSET} to {MAX_OPSET}).")
    bake_preprocess: bool = option(False, "Put the normalisation in the graph: the input becomes uint8 N×H×W×3 RGB.",
                                   flag="--bake-preprocess/--no-bake-preprocess")
    calib_data: str | None = option(None, "INT8 calibration data SPEC (default: the run's training data).")
    calib_size: int = option(512, "Number of INT8 calibration images.")
    calib_method: str = option("minmax", "INT8 calibration: minmax, entropy or percentile.")
    min_cosine: float | None = option(None, "Refuse the export below this mean cosine vs PyTorch (default 0.9999 "
                                            "onnx, 0.999 fp16 and openvino, 0.98 int8).")
    check_size: int = option(128, "Held-out images for the parity check (and kNN queries).")
    knn: bool = option(True, "For INT8 on labelled data, report kNN top-1 of fp32 vs int8.", flag="--knn/--no-knn")
    int8_exclude: tuple[str, ...] = option((), "ONNX node name to keep in float for INT8 (repeatable).", repeat=True)
    reduce_range: str = option("auto", "INT8 weights in 7 bits (ORT's reduce_range): on, off, or auto = on where "
                                       "this x86 CPU lacks VNNI (its uint8×int8 kernels saturate at 8 bits).")
    trt_batch: tuple[int, int, int] = option((1, 8, 32), "TensorRT optimisation profile: min,opt,max batch.",
                                             csv=True)
    data: str | None = option(None, "Data SPEC for the parity check (default: the run's).")
    data_root: str | None = option(None, "Where to look for fashion-mnist first.")
    strict_fp32: bool = option(False, "openvino: run in fp32 even where the CPU would pick bf16.",
                               flag="--strict-fp32")
    qad_steps: int | None = option(None, "INT8 formats: quantization-aware distillation first, N steps of NNCF "
                                         "fake-quantized training toward the fp32 student on the run's images "
                                         "(writes model.int8.qad.*, resumable from RUN/qad/; onnx-int8 and "
                                         "openvino-int8 share one training).")
    qad_lr: float = option(1e-5, "QAD learning rate (AdamW, cosine decay).")
    qad_batch_size: int = option(32, "QAD batch size.")


# field of ExportOptions → its range; every numeric field appears here (a test checks it).
EXPORT_RANGES: dict[str, Range] = {
    "opset": Range(DEFAULT_OPSET, MAX_OPSET, "LayerNormalization needs 17; torch's exporter writes up to 20"),
    "calib_size": Range(1, 100_000),
    "check_size": Range(1, 100_000),
    "min_cosine": Range(-1, 1),
    "trt_batch": Range(1, 65_536),
    "qad_steps": Range(1, 10_000_000, "QAD trains for a positive number of steps"),
    "qad_lr": Range(1e-12, 1.0),
    "qad_batch_size": Range(1, 65_536),
}


def check_export_options(opts: ExportOptions) -> None:
    """Every numeric option inside its range, whatever the format: one line naming the flag and the range."""
    for name, r in EXPORT_RANGES.items():
        value = getattr(opts, name)
        for v in value if isinstance(value, tuple) else (value,):
            check_range(flag(name), v, r, whole=name not in ("min_cosine", "qad_lr"))
    if len(opts.trt_batch) != 3 or not opts.trt_batch[0] <= opts.trt_batch[1] <= opts.trt_batch[2]:
        raise CompressorError(f"--trt-batch takes min,opt,max with min ≤ opt ≤ max, not {tuple(opts.trt_batch)}")


@dataclass
class BenchOptions:
    """Everything ``compress bench`` takes (``bench``)."""

    backends: tuple[str, ...] = BACKENDS
    batches: tuple[int, ...] = (1, 8, 32)
    threads: int | None = None  # default: every usable core
    warmup: int = 1  # untimed calls at least (the first allocates and picks kernels) ...
    warmup_s: float = WARMUP_S  # ... and untimed seconds at least
    iters: int | None = 50  # timed calls (latency) or requests in all (throughput), at most
    seconds: float | None = 10.0
    mode: str = "latency"  # one of BENCH_MODES
    streams: int | None = None  # throughput: requests in flight (default: the runtime's choice, see bencher)
    compile: bool = False
    torch_device: str = "cpu"
    data: str | None = None  # default: the run's data
    data_root: str | None = None
    cv_warn: float = 0.10
    progress: bool = False


def as_csv(values: tuple[object, ...]) -> str:
    """A tuple default as the comma-separated text of its flag (``(1, 8, 32)`` → ``"1,8,32"``)."""
    return ",".join(str(v) for v in values)
