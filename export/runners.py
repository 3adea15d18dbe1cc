"""One runner per bench backend: ``torch`` (eager, optionally compiled), ``ort-cpu``, ``ort-cuda``, ``trt``
(:mod:`compressor.export.tensorrt`), ``openvino`` (:mod:`compressor.export.openvino`).

The contract bench times, the same for every runner so that rows compare like with like:

- ``prepare(inputs) -> step``: **compute only**. The batch is put where the backend computes (copied to the
  GPU once, outside the timed call); ``step()`` runs the model once and returns the embeddings left where
  they were computed (a CUDA tensor, an ORT value on the GPU), with the GPU work synchronised.
- ``end_to_end(inputs) -> step | None``: **end to end**. ``step()`` takes the host array, runs the model and
  returns the embeddings in host memory: every copy in and out is inside the timed call. ``None`` (or no such
  method) means the runner computes in host memory, so its compute step *is* end to end: bench reports one
  timing under both names and says so, rather than timing the same thing twice.
- ``throughput(inputs, ...) -> Throughput`` (optional): several requests in flight (``bench --mode
  throughput``); ORT here, OpenVINO's ``AsyncInferQueue`` in its module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from compressor.export.timing import Throughput

Step = Callable[[], object]


def backend_unavailable(backend: str, *, torch_device: str = "cpu") -> str | None:
    """``None`` when ``backend`` can run on this machine, else one line saying why not."""
    if backend == "torch":
        import torch

        if torch_device == "cuda" and not torch.cuda.is_available():
            return "--torch-device cuda asked for but no CUDA GPU is visible"
        return None
    from compressor.export.backend import backend_for_runtime

    if (owner := backend_for_runtime(backend)) is not None:  # the export backend whose files this runtime runs
        return owner.runtime_unavailable(backend)
    raise ValueError(backend)


def as_numpy(out: object) -> np.ndarray:
    if isinstance(out, (list, tuple)):
        out = out[0]
    if hasattr(out, "detach"):
        out = out.detach().float().cpu().numpy()
    elif hasattr(out, "numpy"):  # an onnxruntime OrtValue (on the GPU for ort-cuda's compute step)
        out = out.numpy()
    return np.asarray(out, dtype=np.float32)


class TorchRunner:
    """The PyTorch student, eager (or ``torch.compile``-d), under ``inference_mode``."""

    backend = "torch"

    def __init__(self, encoder, *, device: str = "cpu", compile: bool = False) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.model = encoder.eval().to(self.device)
        self.format = "pytorch"
        if compile:
            self.model = torch.compile(self.model)
            self.format = "pytorch-compiled"

    def prepare(self, inputs: np.ndarray) -> Step:
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(inputs)).to(self.device)
        cuda = self.device.type == "cuda"

        def step() -> object:
            with torch.inference_mode():
                y = self.model(x)
            if cuda:
                torch.cuda.synchronize()  # a CUDA call returns at launch; wait for the result
            return y

        if self.format == "pytorch-compiled":
            self._compile(step)
        return step

    def end_to_end(self, inputs: np.ndarray) -> Step | None:
        """On CUDA: host array → device → model → host array in each call; ``None`` on CPU (compute is end to end)."""
        if self.device.type == "cpu":
            return None
        torch = self.torch
        host = torch.from_numpy(np.ascontiguousarray(inputs))

        def step() -> object:
            x = host.to(self.device)
            with torch.inference_mode():
                y = self.model(x)
            return y.cpu().numpy()  # the copy back waits for the model: no separate synchronise

        if self.format == "pytorch-compiled":
            self._compile(step)
        return step

    def _compile(self, step: Step) -> None:
        """Run ``step`` once so that torch.compile compiles for its batch shape outside the timed calls."""
        try:
            step()
        except Exception as err:  # inductor raises many types (missing compiler, unsupported op)
            from compressor.errors import CompressorError

            raise CompressorError(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                                  "bench without --compile") from err


class OrtRunner:
    """An ONNX file in an ONNX Runtime session (``ort-cpu`` or ``ort-cuda``)."""

    def __init__(self, path: str | Path, *, backend: str = "ort-cpu", threads: int | None = None) -> None:
        from compressor.export.runtime import make_session

        self.backend = backend
        self.path = Path(path)
        self.threads = threads
        self.session = make_session(path, backend=backend, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self._bound: tuple = ()  # ort-cuda: the device input and binding of the latest prepare, kept alive here
        self._streams: dict[tuple[int, int], list] = {}  # (streams, threads each) → sessions, made once

    def prepare(self, inputs: np.ndarray) -> Step:
        feed = {self.input_name: np.ascontiguousarray(inputs)}
        if self.backend == "ort-cpu":
            return lambda: self.session.run(None, feed)[0]
        # ort-cuda, compute only: the batch is copied to the GPU once and bound (IOBinding), the output is left
        # on the GPU. Run() synchronises the CUDA stream at its end (ORT's default), so the call is complete.
        import onnxruntime as ort

        x = ort.OrtValue.ortvalue_from_numpy(feed[self.input_name], "cuda", 0)
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self.input_name, x)
        binding.bind_output(self.output_name, "cuda")
        self._bound = (x, binding)

        def step() -> object:
            self.session.run_with_iobinding(binding)
            return binding.get_outputs()[0]

        return step

    def end_to_end(self, inputs: np.ndarray) -> Step | None:
        """ort-cuda: ``run()`` with a host array copies it in and the embeddings out in each call."""
        if self.backend == "ort-cpu":
            return None
        feed = {self.input_name: np.ascontiguousarray(inputs)}
        return lambda: self.session.run(None, feed)[0]

    def throughput(self, inputs: np.ndarray, *, streams: int | None, threads: int, warmup: int, warmup_s: float,
                   iters: int | None, seconds: float | None) -> Throughput:
        """``streams`` sessions (default: one per thread), each with ``threads // streams`` intra-op threads and
        one Python thread calling ``run`` back to back (ORT releases the GIL inside ``run``); host arrays in
        and out, so on ``ort-cuda`` the figure is end to end."""
        from compressor.export.runtime import make_session
        from compressor.export.timing import measure_streams

        n = streams or max(1, threads)
        each = max(1, threads // n)
        if (n, each) not in self._streams:
            self._streams[(n, each)] = [make_session(self.path, backend=self.backend, threads=each)
                                        for _ in range(n)]
        feed = {self.input_name: np.ascontiguousarray(inputs)}
        steps = [lambda s=s: s.run(None, feed)[0] for s in self._streams[(n, each)]]
        result = measure_streams(steps, len(inputs), warmup=warmup, warmup_s=warmup_s, iters=iters,
                                 seconds=seconds)
        result.settings.update(requests_in_flight=n, intra_op_threads=each, inter_op_threads=1,
                               api=f"{n} ONNX Runtime sessions, one Python thread each (sync run)")
        return result
