"""ONNX Runtime sessions with the settings that make exported encoders fast, and batched inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compressor.errors import CompressorError

PROVIDERS = {"ort-cpu": "CPUExecutionProvider", "ort-cuda": "CUDAExecutionProvider"}


def ort_available(backend: str) -> str | None:
    """``None`` when ``backend`` (ort-cpu / ort-cuda) can run here, else the reason it cannot."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed (pip install onnxruntime)"
    if PROVIDERS[backend] not in ort.get_available_providers():
        return (f"{PROVIDERS[backend]} is not in this onnxruntime build "
                f"(have {', '.join(ort.get_available_providers())}; pip install onnxruntime-gpu for CUDA)")
    return None


def make_session(path: str | Path, *, backend: str = "ort-cpu", threads: int | None = None):
    """An ``InferenceSession`` for ``path``.

    CPU settings, and why:
    - ``ORT_ENABLE_ALL``: the level that includes the layout optimisations; for a QDQ graph it turns
      DQ→Conv→Q into ``QLinearConv`` in NHWC with the VNNI kernels (the EXTENDED level is ~1.4× slower).
    - one inter-op thread and sequential execution: an encoder is a chain, there is nothing to overlap.
    - ``threads`` intra-op threads (default: ORT's choice, one per core).
    """
    import onnxruntime as ort

    if (reason := ort_available(backend)) is not None:
        raise CompressorError(f"cannot run {Path(path).name} on {backend}: {reason}")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3  # errors only: ORT's warnings about its own fused graphs are noise here
    providers = [PROVIDERS[backend]] + (["CPUExecutionProvider"] if backend != "ort-cpu" else [])
    try:
        return ort.InferenceSession(str(path), so, providers=providers)
    except Exception as err:  # ORT raises its own exception types (Fail, InvalidGraph, NotImplemented)
        raise CompressorError(f"onnxruntime cannot load {path}: {err}") from err


def run_batched(session, inputs: np.ndarray, batch: int = 32) -> np.ndarray:
    """Outputs of ``session`` for ``inputs`` fed ``batch`` at a time, concatenated."""
    name = session.get_inputs()[0].name
    outs = [session.run(None, {name: inputs[i:i + batch]})[0] for i in range(0, len(inputs), batch)]
    return np.concatenate(outs).astype(np.float32)
