"""OpenVINO IR (``openvino``) and NNCF-quantised INT8 IR (``openvino-int8``), and the ``openvino`` bench backend.

OpenVINO is the fastest CPU runtime for depthwise edge students (measured in docs/benchmarks.md):
on an AVX-512 BF16 CPU it runs fp32 IRs in bf16 by default, which ORT cannot do. Both packages are
optional (``pip install 'compressor[openvino]'``) and imported lazily.

- ``openvino``: the fp32 ONNX converted to IR (``model.xml`` + ``model.bin``) with float32 weights.
  The CPU plugin picks its inference precision at compile time (bf16 where the CPU has it, else
  fp32); the manifest records what it picked, and ``strict_fp32`` compiles with
  ``INFERENCE_PRECISION_HINT=f32`` (also recorded in the IR, so bench keeps it).
- ``openvino-int8``: NNCF post-training quantisation of that IR on the same representative
  calibration images as ``onnx-int8`` (symmetric activations, per-channel weights, NNCF's defaults).
- The IR's ``rt_info`` carries the same contract as the ONNX ``metadata_props``
  (:mod:`compressor.export.metadata`) under ``compressor_metadata``.
"""

from __future__ import annotations

import gc
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from compressor.errors import CompressorError
from compressor.utils.extras import install_hint

if TYPE_CHECKING:
    from compressor.export.timing import Throughput

log = logging.getLogger("compressor")

INSTALL_HINT = f"OpenVINO is not installed: {install_hint('openvino')} (openvino and nncf)"
RT_KEY = "compressor_metadata"
_PRECISIONS = {"bf16": "bf16", "f32": "fp32", "f16": "fp16"}


def openvino_unavailable(*, nncf: bool = False) -> str | None:
    """``None`` when OpenVINO (and NNCF, if asked) can be imported, else the one-line install hint."""
    try:
        import openvino  # noqa: F401
        if nncf:
            import nncf as _nncf  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


def _ov():
    if (reason := openvino_unavailable()) is not None:
        raise CompressorError(reason)
    import openvino as ov

    return ov


def bin_path(xml: str | Path) -> Path:
    return Path(xml).with_suffix(".bin")


def convert(onnx_path: str | Path, xml: str | Path, props: dict[str, str], *, strict_fp32: bool = False,
            calib: np.ndarray | None = None) -> dict:
    """Write the IR of ``onnx_path`` (NNCF-quantised when ``calib`` is given); returns the manifest block."""
    ov = _ov()
    model = ov.convert_model(str(onnx_path))
    block: dict = {"openvino": ov.__version__, "strict_fp32": strict_fp32}
    if calib is not None:
        if (reason := openvino_unavailable(nncf=True)) is not None:
            raise CompressorError(reason)
        import nncf

        dataset = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
        model = nncf.quantize(model, dataset, subset_size=len(calib))
        block["quantization"] = {"tool": f"nncf {nncf.__version__}", "preset": "performance (symmetric)",
                                 "calib_images": len(calib)}
    model.set_rt_info(json.dumps({**props, "openvino.strict_fp32": json.dumps(strict_fp32)}), [RT_KEY])
    ov.save_model(model, str(xml), compress_to_fp16=False)
    return block


def read_metadata(xml: str | Path) -> dict[str, str]:
    """The contract stored in the IR's ``rt_info`` (empty for an IR not written by compressor)."""
    ov = _ov()
    model = ov.Core().read_model(str(xml))
    if not model.has_rt_info([RT_KEY]):
        return {}
    return json.loads(model.get_rt_info([RT_KEY]).astype(str))


class OpenVinoRunner:
    """An IR compiled for the CPU with the latency hint; ``precision`` is what the plugin picked.

    It computes in host memory, so its compute step is end to end (no ``end_to_end`` of its own). Its
    :meth:`throughput` compiles the IR again with the THROUGHPUT hint and keeps an ``AsyncInferQueue`` full,
    as ``benchmark_app -hint throughput -api async`` does.
    """

    backend = "openvino"

    def __init__(self, xml: str | Path, *, threads: int | None = None, strict_fp32: bool | None = None) -> None:
        ov = _ov()
        self.core = ov.Core()
        if strict_fp32 is None:
            strict_fp32 = json.loads(read_metadata(xml).get("openvino.strict_fp32", "false"))
        self.xml, self.threads, self.strict_fp32 = Path(xml), threads, strict_fp32
        self.compiled = self._compile({"PERFORMANCE_HINT": "LATENCY"})
        self.request = self.compiled.create_infer_request()
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        self.inference_precision = _PRECISIONS.get(name, name)

    def prepare(self, inputs: np.ndarray):
        x = np.ascontiguousarray(inputs)
        request = self.request

        def step() -> np.ndarray:
            request.infer({0: x})
            return request.get_output_tensor(0).data

        return step

    def run(self, inputs: np.ndarray, batch: int = 32) -> np.ndarray:
        outs = [np.array(self.prepare(inputs[i:i + batch])(), dtype=np.float32)
                for i in range(0, len(inputs), batch)]
        return np.concatenate(outs)

    def _compile(self, config: dict) -> Any:
        """The IR compiled for the CPU with ``config`` plus this runner's threads and precision."""
        config = dict(config)
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        if self.strict_fp32:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            return self.core.compile_model(str(self.xml), "CPU", config)
        except RuntimeError as err:
            raise CompressorError(f"OpenVINO cannot compile {self.xml}: {str(err).splitlines()[0]}") from err

    def throughput(self, inputs: np.ndarray, *, streams: int | None, threads: int, warmup: int, warmup_s: float,
                   iters: int | None, seconds: float | None, min_iters: int = 5) -> Throughput:
        """Requests in flight through an ``AsyncInferQueue`` of the plugin's optimal size, compiled with the
        THROUGHPUT hint (``streams`` sets NUM_STREAMS; default: the hint's choice). A request's latency runs
        from its start (on an idle request) to its callback; images/s over the timed window.

        ``threads`` is already this runner's INFERENCE_NUM_THREADS (recorded in the settings)."""
        import time

        from compressor.export.timing import Throughput, Timing

        ov = _ov()
        config: dict = {"PERFORMANCE_HINT": "THROUGHPUT"}
        if streams:
            config["NUM_STREAMS"] = streams
        compiled = self._compile(config)
        nireq = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue = ov.AsyncInferQueue(compiled, nireq)
        latencies: list[float] = []
        queue.set_callback(lambda request, started: latencies.append(time.perf_counter() - started))
        x = np.ascontiguousarray(inputs)

        def submit() -> None:
            queue.get_idle_request_id()  # wait for a free request, so that the latency starts when it starts
            queue.start_async({0: x}, time.perf_counter(), share_inputs=True)

        start = time.perf_counter()  # warm-up: every request at least once, and warmup_s seconds
        sent = 0
        while sent < max(warmup, nireq) or time.perf_counter() - start < warmup_s:
            submit()
            sent += 1
        queue.wait_all()
        warm_s, warm_calls = time.perf_counter() - start, sent
        latencies.clear()
        limit = iters if iters is not None else float("inf")
        floor = min_iters * nireq
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter()
            deadline = start + seconds if seconds is not None else float("inf")
            sent = 0
            while sent < floor or (sent < limit and time.perf_counter() < deadline):
                submit()
                sent += 1
            queue.wait_all()
            elapsed = time.perf_counter() - start
        finally:
            if was_enabled:
                gc.enable()
        settings = {"streams": int(compiled.get_property("NUM_STREAMS")), "requests_in_flight": nireq,
                    "hint": "THROUGHPUT", "api": f"AsyncInferQueue of {nireq} requests (async)",
                    "inference_num_threads": int(compiled.get_property("INFERENCE_NUM_THREADS"))}
        return Throughput(Timing(np.asarray(latencies) * 1e3, warm_s, warm_calls),
                          images_per_s=len(x) * sent / elapsed, requests=sent, elapsed_s=elapsed, settings=settings)
