"""The GPU runners of `compress bench` (issue 38): two timed callables each, compute only and end to end, and the
TensorRT runner's buffers alive for as long as the engine holds their addresses. Skip without CUDA (and without
onnxruntime-gpu / tensorrt for their tests), each with its reason.

Run on a lent GPU with ``python -m pytest -rs tests/gpu/test_bench_cuda.py``.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compressor.export.runners import as_numpy
from tests.export.conftest import FAST, make_run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")


def _ort_cuda_reason() -> str | None:
    from compressor.export.runtime import ort_available

    return ort_available("ort-cuda")


def _trt_reason() -> str | None:
    from compressor.export.tensorrt import trt_unavailable

    return trt_unavailable()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path, arch="resnet10t", image_size=32)


def _churn() -> list[torch.Tensor]:
    """Free what can be freed and hand the allocator's memory to new tensors, as a busy process would."""
    gc.collect()
    torch.cuda.empty_cache()
    return [torch.full((1 << 18,), 7.0, device="cuda") for _ in range(64)]


def test_torch_cuda_has_distinct_compute_and_end_to_end_steps(run: Path) -> None:
    from compressor.export.runners import TorchRunner
    from compressor.models.saved import load_encoder

    enc = load_encoder(run)
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with torch.inference_mode():
        reference = enc.eval()(torch.from_numpy(x)).numpy()  # CPU fp32: an independent reference
    runner = TorchRunner(load_encoder(run), device="cuda")
    compute, e2e = runner.prepare(x), runner.end_to_end(x)
    assert e2e is not None and e2e is not compute
    y = compute()
    assert isinstance(y, torch.Tensor) and y.is_cuda  # left on the device
    host = e2e()
    assert isinstance(host, np.ndarray)  # back in host memory inside the call
    np.testing.assert_allclose(as_numpy(y), reference, atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(host, reference, atol=1e-3, rtol=1e-3)


def test_bench_torch_cuda_reports_both_figures(run: Path, tmp_path: Path) -> None:
    from compressor.export import BenchOptions, bench

    report = bench(run, BenchOptions(backends=("torch",), batches=(1, 8), torch_device="cuda", warmup_s=0.1,
                                     iters=20, seconds=None))
    for r in report.results:
        assert r.timing == "device" and r.e2e_p50_ms is not None and r.e2e_p50_ms != r.p50_ms
        assert r.settings["e2e_iters"] == 20 and r.cosine_vs_torch > 0.999
    assert "| p50 ms (compute) | p50 ms (end to end) |" in report.to_markdown()


@pytest.mark.skipif(_ort_cuda_reason() is not None, reason=f"needs onnxruntime-gpu: {_ort_cuda_reason()}")
def test_ort_cuda_compute_step_leaves_the_output_on_the_gpu(run: Path) -> None:
    from compressor.export import BenchOptions, ExportOptions, bench, export_run
    from compressor.export.runners import OrtRunner
    from compressor.export.runtime import make_session

    path = export_run(run, ExportOptions(format="onnx", **FAST)).path
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    reference = make_session(path).run(None, {"images": x})[0]  # ORT on CPU
    runner = OrtRunner(path, backend="ort-cuda")
    compute, e2e = runner.prepare(x), runner.end_to_end(x)
    assert e2e is not None
    out = compute()
    assert out.device_name().lower() == "cuda"  # an OrtValue on the GPU: no copy back in the timed call
    _churn()
    np.testing.assert_allclose(as_numpy(compute()), reference, atol=1e-3, rtol=1e-3)
    np.testing.assert_allclose(e2e(), reference, atol=1e-3, rtol=1e-3)
    (row,) = bench(path, BenchOptions(backends=("ort-cuda",), batches=(2,), iters=10, seconds=None)).results
    assert row.timing == "device" and row.e2e_p50_ms is not None


@pytest.mark.skipif(_trt_reason() is not None, reason=f"needs tensorrt: {_trt_reason()}")
def test_trt_runner_keeps_its_buffers_and_uses_one_stream(run: Path) -> None:
    from compressor.export import ExportOptions, export_run
    from compressor.export.runtime import make_session
    from compressor.export.tensorrt import TrtRunner, load_engine

    res = export_run(run, ExportOptions(format="trt", trt_batch=(1, 2, 4), **FAST))  # the alias, end to end
    entry = json.loads((run / "export" / "manifest.json").read_text())["exports"][res.path.name]
    assert res.path.name == "model.fp16.engine" and entry["format"] == "trt-fp16"
    onnx = export_run(run, ExportOptions(format="onnx", **FAST)).path
    x = np.random.default_rng(2).standard_normal((4, 3, 32, 32)).astype(np.float32)
    reference = make_session(onnx).run(None, {"images": x})[0]

    runner = TrtRunner(load_engine(res.path, None))
    step = runner.prepare(x.copy())  # the caller's array and every local of prepare are gone after this line
    churn = _churn()
    for address in runner.buffers.bound.values():
        assert runner.buffers.owner(address) is not None  # the engine reads memory the runner holds
    out = step()
    assert out.is_cuda
    np.testing.assert_allclose(as_numpy(out), reference, atol=2e-2, rtol=2e-2)  # fp16 engine
    assert all(float(t[0]) == 7.0 for t in churn[:4])  # the engine wrote into its own memory, not these
    e2e = runner.end_to_end(x)
    np.testing.assert_allclose(e2e(), reference, atol=2e-2, rtol=2e-2)
    with pytest.raises(RuntimeError, match="replaced by a later"):
        step()  # its batch was replaced by end_to_end's: refused, not silently wrong
    np.testing.assert_allclose(runner.run(x[:3], batch=2), reference[:3], atol=2e-2, rtol=2e-2)
