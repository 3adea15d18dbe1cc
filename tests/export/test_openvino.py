"""OpenVINO IR and NNCF INT8: parity, manifest, refusal, the recorded inference precision, the bench backend."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from compressor.errors import CompressorError
from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.export.openvino import INSTALL_HINT, openvino_unavailable

pytestmark = pytest.mark.skipif(openvino_unavailable(nncf=True) is not None,
                                reason="needs the openvino extra: pip install 'compressor[openvino]'")


def test_ir_parity_precision_and_bench(fresh_run: Path, fast: dict) -> None:
    res = export_run(fresh_run, ExportOptions(format="openvino", **fast))
    assert res.path.name == "model.xml" and res.path.with_suffix(".bin").is_file()
    ov = res.entry["openvino"]
    assert ov["inference_precision"] in ("bf16", "fp32", "fp16") and ov["strict_fp32"] is False
    assert res.entry["fidelity"]["mean_cosine"] >= res.entry["fidelity"]["threshold"] == 0.999

    strict = export_run(fresh_run, ExportOptions(format="openvino", strict_fp32=True, **fast))
    assert strict.entry["openvino"]["inference_precision"] == "fp32"
    assert strict.entry["fidelity"]["mean_cosine"] >= strict.entry["fidelity"]["threshold"] == 0.9999

    int8 = export_run(fresh_run, ExportOptions(format="openvino-int8", **fast))
    q = int8.entry["quantization"]
    assert q["calib_images"] == 16 and q["tool"].startswith("nncf") and q["calib_sample"]["per_class"]
    assert int8.entry["fidelity"]["mean_cosine"] >= 0.98 and "knn_top1_int8" in int8.entry["fidelity"]
    assert int8.path.with_suffix(".bin").stat().st_size < res.path.with_suffix(".bin").stat().st_size / 2

    report = bench(fresh_run, BenchOptions(backends=("torch", "openvino"), batches=(1, 2), warmup=1, iters=2,
                                           seconds=None, threads=1))
    rows = {(r.format, r.batch): r for r in report.results if r.backend == "openvino"}
    assert set(rows) == {(f, b) for f in ("openvino", "openvino-int8") for b in (1, 2)}
    assert rows[("openvino", 2)].cosine_vs_torch > 0.9999  # strict fp32 was recorded in the IR and kept
    assert rows[("openvino-int8", 1)].precision == "int8" and rows[("openvino-int8", 1)].cosine_vs_torch > 0.98

    bare = fresh_run.parent / "bare" / "m.xml"  # the IR copied alone: its rt_info carries the contract
    bare.parent.mkdir()
    shutil.copyfile(int8.path, bare)
    shutil.copyfile(int8.path.with_suffix(".bin"), bare.with_suffix(".bin"))
    (row,) = bench(bare, BenchOptions(backends=("openvino",), batches=(1,), warmup=1, iters=1, seconds=None,
                                      threads=1)).results
    assert row.format == "openvino-int8"


def test_refuses_below_threshold(fresh_run: Path, fast: dict) -> None:
    with pytest.raises(CompressorError, match="parity check"):
        export_run(fresh_run, ExportOptions(format="openvino-int8", min_cosine=1.0, knn=False, **fast))  # INT8 < 1
    assert not list((fresh_run / "export").glob("*.xml")) and not list((fresh_run / "export").glob("*.bin"))


def test_install_hint_when_absent() -> None:
    code = ("import sys; sys.modules['openvino'] = None\n"
            "from compressor.export.openvino import openvino_unavailable; print(openvino_unavailable())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == INSTALL_HINT and "pip install" in out


def test_throughput_mode_keeps_an_async_queue_full(tmp_path: Path, fast: dict) -> None:
    """`bench --mode throughput` on an IR: compiled with the THROUGHPUT hint, an AsyncInferQueue kept full for the
    window (benchmark_app -hint throughput -api async), images/s and its settings recorded in the manifest."""
    import json

    from tests.export.conftest import make_run

    run = make_run(tmp_path, arch="resnet10t", image_size=32)
    res = export_run(run, ExportOptions(format="openvino", **fast))
    opts = BenchOptions(backends=("openvino",), batches=(1, 2), mode="throughput", streams=2, threads=2,
                        warmup_s=0.1, iters=None, seconds=0.3)
    report = bench(res.path, opts)
    assert [(r.batch, r.mode) for r in report.results] == [(1, "throughput"), (2, "throughput")]
    for r in report.results:
        s = r.settings
        assert s["hint"] == "THROUGHPUT" and s["streams"] == 2 and s["requests_in_flight"] >= 2
        assert "AsyncInferQueue" in s["api"] and s["inference_num_threads"] == 2
        assert s["warmup_s"] >= 0.1 and s["elapsed_s"] >= 0.3 and r.iters == s["requests"] >= 5 * 2
        assert r.throughput_ips == pytest.approx(r.batch * s["requests"] / s["elapsed_s"])
        assert r.timing == "host" and r.e2e_p50_ms == r.p50_ms and r.cosine_vs_torch > 0.99
    rec = json.loads((res.path.parent / "manifest.json").read_text())["exports"][res.path.name]["bench"]
    assert rec["openvino throughput batch 2"]["settings"]["hint"] == "THROUGHPUT"
    assert rec["openvino throughput batch 2"]["compute"]["throughput_ips"] == report.results[1].throughput_ips
    # latency mode on the same IR: one request at a time, computed in host memory (one figure under both names)
    (lat,) = bench(res.path, BenchOptions(backends=("openvino",), batches=(1,), warmup_s=0.0, iters=3,
                                          seconds=None, threads=2)).results
    assert lat.mode == "latency" and lat.timing == "host" and lat.e2e_p50_ms == lat.p50_ms
    assert set(rec) | {"openvino latency batch 1"} == set(json.loads(
        (res.path.parent / "manifest.json").read_text())["exports"][res.path.name]["bench"])
