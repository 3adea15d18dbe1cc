"""What ``compress export`` and ``compress bench`` take, with every default declared here once.

The library (``export_run``, ``bench``) and the CLI both read these dataclasses: the CLI's flags take
their defaults from the fields, so ``--help`` shows the values the library uses. Light to import (no
torch, ONNX or runtime), so the CLI can read it when it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_OPSET = 17
BACKENDS = ("torch", "ort-cpu", "ort-cuda", "trt", "openvino")  # declared here, not in runners: no numpy


@dataclass
class ExportOptions:
    """Everything ``compress export`` takes (``export_run``)."""

    format: str = "onnx"
    out_dir: Path | None = None  # default RUN/export
    opset: int = DEFAULT_OPSET
    bake_preprocess: bool = False
    calib_data: str | None = None  # default: the run's training data
    calib_size: int = 512
    calib_method: str = "minmax"
    min_cosine: float | None = None  # default: the format's threshold in exporter.FORMATS
    check_size: int = 128  # held-out images for the parity check (and kNN queries)
    knn: bool = True
    int8_exclude: tuple[str, ...] = ()
    trt_batch: tuple[int, int, int] = (1, 8, 32)
    data: str | None = None  # default: the run's data (from config.yaml)
    data_root: str | None = None
    strict_fp32: bool = False  # openvino: compile with INFERENCE_PRECISION_HINT=f32 instead of the device's pick


@dataclass
class BenchOptions:
    """Everything ``compress bench`` takes (``bench``)."""

    backends: tuple[str, ...] = BACKENDS
    batches: tuple[int, ...] = (1, 8, 32)
    threads: int | None = None  # default: every usable core
    warmup: int = 5
    iters: int | None = 50
    seconds: float | None = 10.0
    compile: bool = False
    torch_device: str = "cpu"
    data: str | None = None  # default: the run's data
    data_root: str | None = None
    cv_warn: float = 0.10
    progress: bool = False


def as_csv(values: tuple[object, ...]) -> str:
    """A tuple default as the comma-separated text of its flag (``(1, 8, 32)`` → ``"1,8,32"``)."""
    return ",".join(str(v) for v in values)
