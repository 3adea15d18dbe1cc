"""One runner per bench backend: ``torch`` (eager, optionally compiled), ``ort-cpu``, ``ort-cuda``, ``trt``,
``openvino`` (its runner lives in :mod:`compressor.export.openvino`).

A runner's ``prepare(inputs)`` puts one batch where the backend wants it and returns ``step``, a
zero-argument call that runs the model once and returns the embeddings (GPU work synchronised).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

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
            try:
                step()  # compiles for this batch shape, outside the timed calls
            except Exception as err:  # inductor raises many types (missing compiler, unsupported op)
                from compressor.errors import CompressorError

                raise CompressorError(f"torch.compile failed ({type(err).__name__}: {str(err)[:200]}); "
                                      "bench without --compile") from err
        return step


class OrtRunner:
    """An ONNX file in an ONNX Runtime session (``ort-cpu`` or ``ort-cuda``)."""

    def __init__(self, path: str | Path, *, backend: str = "ort-cpu", threads: int | None = None) -> None:
        from compressor.export.runtime import make_session

        self.backend = backend
        self.session = make_session(path, backend=backend, threads=threads)
        self.input_name = self.session.get_inputs()[0].name

    def prepare(self, inputs: np.ndarray) -> Step:
        feed = {self.input_name: np.ascontiguousarray(inputs)}
        # ort-cuda copies the batch to the GPU inside run(): its latency includes the transfer, as an
        # application feeding host images would see it.
        return lambda: self.session.run(None, feed)[0]
