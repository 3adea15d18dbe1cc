"""TensorRT engines from the exported ONNX (TensorRT Python API, 8.6 and 10.x).

``tensorrt`` is imported lazily: nothing here is needed unless a ``trt-*`` format or the ``trt``
bench backend is asked for. An engine is tied to the TensorRT version and the GPU it was built on;
the manifest records both, and :func:`load_engine` rebuilds an engine that does not match.

- ``trt-fp16``: the fp32 ONNX with ``BuilderFlag.FP16``.
- ``trt-int8``: the QDQ ONNX of ``onnx-int8`` (explicit quantisation: the Q/DQ scales from our ORT
  calibration are used as they are, no TensorRT calibrator), with FP16 allowed for unquantised layers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from compressor.errors import CompressorError

log = logging.getLogger("compressor")

INSTALL_HINT = ("TensorRT is not installed: on a machine with an NVIDIA GPU and CUDA 12, "
                "`pip install tensorrt` (see https://docs.nvidia.com/deeplearning/tensorrt/latest/installing-tensorrt/installing.html)")


def trt_unavailable() -> str | None:
    """``None`` when engines can be built and run here, else the reason they cannot."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    import torch

    if not torch.cuda.is_available():
        return "TensorRT needs a CUDA GPU and none is visible (torch.cuda.is_available() is False)"
    return None


def import_tensorrt():
    if (reason := trt_unavailable()) is not None:
        raise CompressorError(reason)
    import tensorrt as trt

    return trt


def hardware() -> dict:
    """What an engine is tied to: the TensorRT version and the GPU (name, compute capability)."""
    import torch

    trt = import_tensorrt()
    major, minor = torch.cuda.get_device_capability(0)
    return {"tensorrt": trt.__version__, "gpu": torch.cuda.get_device_name(0),
            "compute_capability": f"{major}.{minor}"}


def build_engine(onnx_path: str | Path, engine_path: str | Path, *, precision: str, image_shape: tuple,
                 batch: tuple[int, int, int] = (1, 8, 32), timing_cache: str | Path | None = None,
                 workspace_gib: float = 4.0) -> dict:
    """Parse ``onnx_path`` and write a serialized engine; returns the manifest's ``tensorrt`` block.

    Args:
        precision: ``fp16`` or ``int8`` (the ONNX must then be the QDQ graph).
        image_shape: the input's shape without the batch axis, e.g. ``(3, 224, 224)``.
        batch: the optimisation profile's (min, opt, max) batch size.
        timing_cache: a file read before and written after the build; later builds reuse the timings.
    """
    trt = import_tensorrt()
    lo, opt, hi = batch
    if not 1 <= lo <= opt <= hi:
        raise CompressorError(f"the batch profile must satisfy 1 <= min <= opt <= max, not {batch}")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0  # TensorRT 10 networks are always explicit-batch; 8.x must be told
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise CompressorError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    config.set_flag(trt.BuilderFlag.FP16)  # int8 engines too: layers left unquantised run in fp16
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)  # with Q/DQ in the graph: explicit quantisation
    elif precision != "fp16":
        raise CompressorError(f"TensorRT precision must be fp16 or int8, not {precision!r}")
    name = network.get_input(0).name
    profile = builder.create_optimization_profile()
    profile.set_shape(name, (lo, *image_shape), (opt, *image_shape), (hi, *image_shape))
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache) if timing_cache else None
    cached = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    cache = config.create_timing_cache(cached)
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise CompressorError(f"TensorRT failed to build an engine from {onnx_path} (see its log above)")
    Path(engine_path).write_bytes(bytes(serialized))
    if cache_path:
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return {**hardware(), "profile": {"min": lo, "opt": opt, "max": hi}, "precision": precision,
            "timing_cache": cache_path.name if cache_path else None}


def load_engine(engine_path: str | Path, recorded: dict | None, rebuild: Callable[[], object] | None = None):
    """Deserialize an engine; one built for another TensorRT version or GPU is rebuilt first (logged)."""
    trt = import_tensorrt()
    here = hardware()
    if recorded and rebuild is not None:
        built = {k: recorded.get(k) for k in here}
        if built != here:
            log.warning("%s was built for %s; rebuilding it for %s", Path(engine_path).name, built, here)
            rebuild()
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise CompressorError(f"TensorRT cannot load {engine_path}; rebuild it with `compress export RUN "
                              "--format trt-fp16|trt-int8`")
    return engine


class TrtRunner:
    """Runs an engine on CUDA tensors: ``runner(batch_array) -> embeddings`` (synchronised)."""

    def __init__(self, engine) -> None:
        import torch

        self.torch = torch
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        trt = import_tensorrt()
        self.input = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream()

    def prepare(self, inputs: np.ndarray):
        """Copy a batch to the GPU once and bind it; returns a zero-argument callable for the timer."""
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(inputs)).cuda()
        self.context.set_input_shape(self.input, tuple(x.shape))
        out_shape = tuple(self.context.get_tensor_shape(self.output))
        y = torch.empty(out_shape, dtype=torch.float32, device="cuda")
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, y.data_ptr())

        def step() -> np.ndarray:
            self.context.execute_async_v3(self.stream.cuda_stream)
            self.stream.synchronize()  # the timer must see the GPU finish, not just the launch
            return y

        return step
