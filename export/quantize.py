"""Static INT8 quantisation with ONNX Runtime: QDQ, per-channel int8 weights, uint8 activations.

Choices, each measured on a ResNet-50 at 224 px on an AVX-512 VNNI CPU (docs/benchmarks.md):

- **uint8 activations × int8 weights (U8S8)**. ORT's default for ``quantize_static`` is int8
  activations (S8S8), which the x86 kernels run 2.5–2.9× slower: VNNI's ``vpdpbusd`` multiplies
  unsigned by signed bytes, so S8S8 needs extra work per multiply-add.
- **Pre-processing first** (``quant_pre_process``: shape inference and ORT's graph clean-up), as
  ORT recommends: every tensor then has a known shape and type for the quantiser.
- **Per-channel symmetric weights**: the accuracy every conv net needs, at no cost in speed.
- **QDQ format**: ORT fuses DQ→Conv→Q into ``QLinearConv`` at load time, and the same file is the
  explicit-quantisation input TensorRT wants (``trt-int8``).
- **For TensorRT** (``for_tensorrt=True``, what ``trt-int8`` builds from): TensorRT accepts only
  signed, symmetric Q/DQ (int8, zero point 0), so activations are int8 symmetric there, and biases
  stay float (TensorRT fuses them itself and has no int32-bias DQ). That graph is slow on ORT's x86
  kernels (S8S8) and is never written as ``onnx-int8``.
- **7-bit weights on x86 CPUs without VNNI** (``reduce_range``, ORT's own advice for U8S8 there): their
  kernels multiply with ``vpmaddubsw``, whose int16 pair sums saturate with 8-bit weights. Measured on an
  AVX2-only EPYC (docs/export.md): mobilenetv4_conv_small's parity cosine 0.973 → 0.993, equal to the
  float-simulated QDQ graph once the weights are 7-bit.
- Calibration runs in chunks (``CalibStridedMinMax``), so 512 images of 224 px fit in memory for
  every method, the histogram ones included.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from compressor.errors import CompressorError
from compressor.registry import unknown_name_message

log = logging.getLogger("compressor")

CALIB_METHODS = ("minmax", "entropy", "percentile")


class ArrayReader:
    """A ``CalibrationDataReader`` over an in-memory array, fed ``batch`` images at a time.

    ``set_range`` and ``__len__`` let ORT calibrate chunk by chunk (``CalibStridedMinMax``).
    """

    def __init__(self, input_name: str, images: np.ndarray, batch: int = 8) -> None:
        self.input_name = input_name
        self.batches = [images[i:i + batch] for i in range(0, len(images), batch)]
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict | None:
        batch = next(self._it, None)
        return None if batch is None else {self.input_name: batch}

    def rewind(self) -> None:
        self.set_range(0, len(self.batches))


def _calib_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    table = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}
    if name not in table:
        raise CompressorError(unknown_name_message("calibration method", name, list(table)))
    return table[name]


def cpu_saturates_u8s8() -> bool:
    """An x86 CPU without VNNI (AVX2 or AVX-512F only): ORT's uint8×int8 kernels saturate at 8-bit weights."""
    import platform

    from compressor.export.env import cpu_flags

    flags = set(cpu_flags())  # empty where /proc/cpuinfo is not there to read: unknown, not "no VNNI"
    is_x86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
    return is_x86 and bool(flags) and not flags & {"avx512_vnni", "avx_vnni"}


def resolve_reduce_range(setting: str, *, for_tensorrt: bool = False) -> bool:
    """``--reduce-range``: ``on``/``off`` as said; ``auto`` is on for ORT's CPU kernels on an x86 CPU without VNNI
    (never for TensorRT, whose GPU kernels do not saturate), and says so once."""
    if setting != "auto":
        return setting == "on"
    if for_tensorrt or not cpu_saturates_u8s8():
        return False
    log.info("INT8 weights in 7 bits (--reduce-range auto): this x86 CPU has no VNNI, and ORT's uint8×int8 "
             "kernels saturate at 8; for a VNNI target pass --reduce-range off")
    return True


def quantize_int8(src: str | Path, dst: str | Path, calib: np.ndarray, *, method: str = "minmax",
                  exclude: Sequence[str] = (), batch: int = 8, chunk: int = 4, for_tensorrt: bool = False,
                  reduce_range: bool = False) -> dict:
    """Quantise the fp32 ONNX ``src`` to a QDQ INT8 ``dst`` calibrated on ``calib`` (what the graph takes).

    Args:
        calib: calibration inputs in the graph's input layout and dtype.
        method: ``minmax`` (ranges = observed extremes), ``entropy`` (KL-optimal clipping, TensorRT's
            classic method) or ``percentile`` (99.999th percentile of |x|).
        exclude: node names kept in float (e.g. a sensitive first or last layer).
        batch: images per calibration forward pass; ``chunk`` batches are held in memory at a time.
        for_tensorrt: signed symmetric activations and float biases (TensorRT's explicit quantisation).
        reduce_range: weights in 7 bits (:func:`resolve_reduce_range`).

    Returns the manifest's ``quantization`` block.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    calib_method = _calib_method(method)
    if len(calib) == 0:
        raise CompressorError("no calibration images: pass --calib-data SPEC with images in it")
    with tempfile.TemporaryDirectory(prefix="compressor-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre))
        except Exception as err:  # symbolic shape inference gives up on some graphs; ONNX's own is enough
            log.info("symbolic shape inference failed (%s); pre-processing without it", err)
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        proto = onnx.load(str(pre), load_external_data=False)
        names = {n.name for n in proto.graph.node}
        unknown = [n for n in exclude if n not in names]
        if unknown:
            raise CompressorError(unknown_name_message("node to keep in float", unknown[0], sorted(names)))
        # The baked uint8→float normalisation is cheap and must stay exact: keep it out of the QDQ graph.
        from compressor.export.onnx import BAKED_SCOPE

        excluded = sorted(set(exclude) | {n for n in names if n.startswith(BAKED_SCOPE)})
        input_name = proto.graph.input[0].name
        reader = ArrayReader(input_name, calib, batch)
        with _quiet_ort():
            quantize_static(
                str(pre), str(dst), reader,
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=reduce_range,
                activation_type=QuantType.QInt8 if for_tensorrt else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=calib_method,
                nodes_to_exclude=excluded or None,
                calibration_providers=["CPUExecutionProvider"],
                extra_options={
                    "CalibStridedMinMax": _stride(len(reader), chunk),
                    "ActivationSymmetric": for_tensorrt,
                    "WeightSymmetric": True,
                    "QuantizeBias": not for_tensorrt,
                },
            )
    _drop_unused_opsets(Path(dst))
    activations = "int8 (per-tensor, symmetric)" if for_tensorrt else "uint8 (per-tensor, asymmetric)"
    return {"format": "QDQ", "activations": activations, "target": "tensorrt" if for_tensorrt else "onnxruntime",
            "weights": "int8 (per-channel, symmetric)" + (", 7-bit range" if reduce_range else ""),
            "reduce_range": reduce_range, "calib_method": method,
            "calib_images": int(len(calib)),
            "excluded_nodes": excluded}


def _drop_unused_opsets(path: Path) -> None:
    """Remove opset imports no node uses (ORT's quantiser adds ``com.microsoft`` even when it emits none of
    its ops), so strict consumers of the file (TensorRT's parser, converters to other formats) see only
    the domains the graph really needs."""
    import onnx

    proto = onnx.load(str(path))
    used = {n.domain or "" for n in proto.graph.node}
    for fn in proto.functions:
        used |= {n.domain or "" for n in fn.node}
    keep = [op for op in proto.opset_import if (op.domain or "") in used or op.domain in ("", "ai.onnx")]
    if len(keep) != len(proto.opset_import):
        del proto.opset_import[:]
        proto.opset_import.extend(keep)
        onnx.save(proto, str(path))


@contextlib.contextmanager
def _quiet_ort() -> Iterator[None]:
    """ORT's quantiser prints progress and logs on the root logger (e.g. that a LayerNorm's 1-D weight
    falls back to per-tensor); keep both out of the user's terminal, at debug level in our log."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield
    finally:
        root.setLevel(level)
        if printed.getvalue():
            log.debug("onnxruntime.quantization: %s", printed.getvalue().strip())


def _stride(n_batches: int, chunk: int) -> int:
    """The largest divisor of ``n_batches`` not above ``chunk`` (ORT needs the stride to divide the data)."""
    for s in range(min(chunk, n_batches), 0, -1):
        if n_batches % s == 0:
            return s
    return 1
