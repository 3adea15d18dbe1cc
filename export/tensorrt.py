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
from typing import Any

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


class EngineBuffers:
    """The memory an engine's input and output addresses point to, owned here for the runner's whole life.

    TensorRT keeps raw addresses (``set_tensor_address``), not references: a tensor bound and then dropped (a
    local of ``prepare``, as before issue 38) is freed by PyTorch's allocator and its memory handed to the next
    tensor while the engine still reads it. Here every bound tensor is an attribute of this object: allocated
    at the largest batch asked for so far, bound once (again only when it grows), and a smaller batch uses its
    first rows (the same address). ``host_input``/``host_output`` are the pinned staging buffers of the
    end-to-end path (host memory is pinned only beside a CUDA device).

    Pure PyTorch, no TensorRT: ``bind`` is the engine context's ``set_tensor_address``, so the contract (every
    bound address belongs to a tensor this object keeps) is tested on CPU tensors.
    """

    def __init__(self, input_name: str, output_name: str, *, device: str, input_dtype: Any,
                 output_dtype: Any) -> None:
        import torch

        self.names = (input_name, output_name)
        self.device = torch.device(device)
        self.dtypes = (input_dtype, output_dtype)
        self.input = self.output = self.host_input = self.host_output = torch.empty(0)
        self.bound: dict[str, int] = {}  # name → the address handed to the engine (a data_ptr of a tensor above)

    def fit(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...],
            bind: Callable[[str, int], object]) -> bool:
        """Room for one batch of ``input_shape`` (whose output is ``output_shape``); when the tensors must grow,
        new ones replace them and their addresses are bound. Returns whether that happened."""
        import torch

        fits = (self.input.dim() == len(input_shape) and self.output.dim() == len(output_shape)
                and self.input.shape[0] >= input_shape[0] and tuple(self.input.shape[1:]) == tuple(input_shape[1:])
                and self.output.shape[0] >= output_shape[0]
                and tuple(self.output.shape[1:]) == tuple(output_shape[1:]))
        if fits:
            return False
        pin = self.device.type == "cuda"
        self.input = torch.empty(input_shape, dtype=self.dtypes[0], device=self.device)
        self.output = torch.empty(output_shape, dtype=self.dtypes[1], device=self.device)
        self.host_input = torch.empty(input_shape, dtype=self.dtypes[0], pin_memory=pin)
        self.host_output = torch.empty(output_shape, dtype=self.dtypes[1], pin_memory=pin)
        for name, tensor in zip(self.names, (self.input, self.output), strict=True):
            bind(name, tensor.data_ptr())
            self.bound[name] = tensor.data_ptr()
        return True

    def owner(self, address: int) -> Any:
        """The tensor of this object whose memory starts at ``address`` (``None``: nothing here holds it)."""
        return next((t for t in (self.input, self.output) if t.numel() and t.data_ptr() == address), None)


class TrtRunner:
    """Runs an engine on one CUDA stream, in the bench runner contract (:mod:`compressor.export.runners`).

    - ``prepare(batch)``: copies the batch into the runner's device input once; its step runs the engine on it
      and returns the device output (compute only, synchronised: ``trtexec --noDataTransfers``).
    - ``end_to_end(batch)``: its step copies the host array in, runs, copies the embeddings out and returns
      them as a NumPy array (what an application feeding host images sees; pinned staging, as trtexec).

    Every copy and the engine run go on ``self.stream``, and the device buffers were allocated on it, so no
    other stream touches them (no ``record_stream`` needed); each step synchronises that stream before it
    returns, so its result may be read on any stream. A step belongs to the batch it was made for: after a
    later ``prepare``/``end_to_end`` (which rebinds the shape and refills the buffers) it refuses to run.
    """

    backend = "trt"

    def __init__(self, engine: Any) -> None:
        import torch

        self.torch = torch
        self.engine = engine
        self.context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        trt = import_tensorrt()
        self.input = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream()
        dtypes = [torch.from_numpy(np.empty(0, dtype=trt.nptype(engine.get_tensor_dtype(n)))).dtype
                  for n in (self.input, self.output)]
        self.buffers = EngineBuffers(self.input, self.output, device="cuda", input_dtype=dtypes[0],
                                     output_dtype=dtypes[1])
        self._current: object = None  # the token of the step whose batch is in the buffers

    def _load_shape(self, shape: tuple[int, ...]) -> object:
        """Set the batch shape, make room (binding new buffers), and return the token of the steps made now."""
        if not self.context.set_input_shape(self.input, shape):
            raise CompressorError(f"batch {shape[0]} is outside this engine's optimisation profile; re-export it "
                                  "with a --trt-batch min,opt,max that covers it")
        out_shape = tuple(self.context.get_tensor_shape(self.output))
        with self.torch.cuda.stream(self.stream):  # allocated on the stream that uses them
            self.buffers.fit(tuple(shape), out_shape, self.context.set_tensor_address)
        self._current = token = object()
        return token

    def _check(self, token: object) -> None:
        if self._current is not token:
            raise RuntimeError("this step's batch was replaced by a later prepare()/end_to_end(); make it again")

    def _execute(self) -> None:
        """Enqueue the engine on the runner's stream (returns at launch)."""
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise CompressorError("TensorRT failed to run the engine (see its log above)")

    def prepare(self, inputs: np.ndarray) -> Callable[[], Any]:
        """Copy a batch to the GPU once; the step runs the engine and returns the output left on the device."""
        torch = self.torch
        host = torch.from_numpy(np.ascontiguousarray(inputs))
        token = self._load_shape(tuple(host.shape))
        b = len(host)
        with torch.cuda.stream(self.stream):
            self.buffers.input[:b].copy_(host)
        self.stream.synchronize()
        out = self.buffers.output[:b]

        def step() -> Any:
            self._check(token)
            self._execute()
            self.stream.synchronize()  # the timer must see the GPU finish, not just the launch
            return out

        return step

    def end_to_end(self, inputs: np.ndarray) -> Callable[[], np.ndarray]:
        """The step takes the host batch in, runs the engine and returns the embeddings in host memory."""
        torch = self.torch
        src = torch.from_numpy(np.ascontiguousarray(inputs))
        token = self._load_shape(tuple(src.shape))
        b = len(src)
        buf = self.buffers
        h_in, h_out, d_in, d_out = buf.host_input[:b], buf.host_output[:b], buf.input[:b], buf.output[:b]

        def step() -> np.ndarray:
            self._check(token)
            h_in.copy_(src)  # the application's array into pinned memory (a host copy)
            with torch.cuda.stream(self.stream):
                d_in.copy_(h_in, non_blocking=True)  # host → device, on the engine's stream
                self._execute()
                h_out.copy_(d_out, non_blocking=True)  # device → host, after the engine on the same stream
            self.stream.synchronize()
            return h_out.numpy().copy()  # the pinned buffer is refilled by the next call

        return step

    def run(self, inputs: np.ndarray, batch: int = 32) -> np.ndarray:
        """Embeddings of ``inputs`` fed ``batch`` at a time (host in, host out)."""
        outs = [self.end_to_end(inputs[i:i + batch])() for i in range(0, len(inputs), batch)]
        return np.concatenate(outs).astype(np.float32)
