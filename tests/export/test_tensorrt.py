"""TensorRT engines: built, checked and benched where TensorRT and a CUDA GPU exist; skipped elsewhere.

TensorRT cannot be installed on the machines this project is developed on, so the build tests only
run on a machine that has it; the test that does run everywhere checks the failure a user sees.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compressor.errors import CompressorError
from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.export.tensorrt import INSTALL_HINT, trt_unavailable

REASON = trt_unavailable()
requires_trt = pytest.mark.skipif(REASON is not None, reason=f"needs tensorrt and a CUDA GPU: {REASON}")


@pytest.mark.skipif(REASON is None, reason="TensorRT is available here")
def test_trt_formats_fail_with_the_install_hint(fresh_run: Path, fast: dict, cli) -> None:
    with pytest.raises(CompressorError) as err:
        export_run(fresh_run, ExportOptions(format="trt-fp16", **fast))
    assert str(err.value) in (" ".join(INSTALL_HINT.split()), " ".join(str(REASON).split()))
    assert not (fresh_run / "export" / "model.fp16.engine").exists()
    code, _, stderr = cli("export", fresh_run, "--format", "trt-int8", "--check-size", "4")
    assert code == 2 and len(stderr.strip().splitlines()) == 1


@requires_trt
@pytest.mark.parametrize("fmt", ["trt-fp16", "trt-int8"])
def test_trt_engine_build_manifest_and_bench(fresh_run: Path, fast: dict, fmt: str) -> None:
    res = export_run(fresh_run, ExportOptions(format=fmt, trt_batch=(1, 2, 4), **fast))
    entry = json.loads((fresh_run / "export" / "manifest.json").read_text())["exports"][res.path.name]
    major, minor = torch.cuda.get_device_capability(0)
    assert entry["tensorrt"]["compute_capability"] == f"{major}.{minor}"
    assert entry["tensorrt"]["gpu"] == torch.cuda.get_device_name(0)
    assert entry["tensorrt"]["profile"] == {"min": 1, "opt": 2, "max": 4}
    assert (fresh_run / "export" / "timing.cache").is_file()
    report = bench(res.path, BenchOptions(backends=("trt",), batches=(1, 4), warmup=2, iters=5, seconds=None))
    assert [r.batch for r in report.results] == [1, 4]
    assert all(r.cosine_vs_torch > 0.98 for r in report.results)


@requires_trt
def test_engine_for_another_gpu_is_rebuilt(fresh_run: Path, fast: dict, caplog) -> None:
    res = export_run(fresh_run, ExportOptions(format="trt-fp16", trt_batch=(1, 1, 2), **fast))
    manifest = fresh_run / "export" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["exports"][res.path.name]["tensorrt"]["gpu"] = "Some Other GPU"
    manifest.write_text(json.dumps(data))
    bench(res.path, BenchOptions(backends=("trt",), batches=(1,), warmup=1, iters=2, seconds=None))
    assert "rebuilding" in caplog.text


def test_trt_int8_graph_is_signed_symmetric(exported_run: Path, tmp_path: Path) -> None:
    """What ``trt-int8`` builds from, checked without TensorRT: TensorRT takes only int8 Q/DQ with zero
    point 0 (no uint8, no asymmetric activations) and has no int32-bias DQ."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from compressor.export import images as img
    from compressor.export.quantize import quantize_int8
    from compressor.models.saved import load_encoder

    enc = load_encoder(exported_run)
    calib = img.load_images("synthetic", enc.spec, 8, split="train")
    dst = tmp_path / "qdq.trt.onnx"
    info = quantize_int8(exported_run / "export" / "model.onnx", dst, calib.images, for_tensorrt=True)
    assert info["target"] == "tensorrt"
    proto = onnx.load(str(dst))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    qdq = [n for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert sum(n.op_type == "QuantizeLinear" for n in qdq) > 0
    for n in qdq:
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8, (n.name, zp.dtype)  # signed: no uint8 anywhere, no int32 bias
        assert not zp.any(), n.name  # symmetric: zero point 0
    # and the ORT graph of the same model is the other kind (uint8 activations), so the test can tell them apart
    ort_proto = onnx.load(str(exported_run / "export" / "model.int8.onnx"))
    ort_inits = {t.name: numpy_helper.to_array(t) for t in ort_proto.graph.initializer}
    assert any(ort_inits[n.input[2]].dtype == np.uint8 for n in ort_proto.graph.node if n.op_type == "QuantizeLinear")
