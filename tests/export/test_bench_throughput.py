"""`compress bench --mode throughput` on ONNX Runtime (OpenVINO's is in test_openvino.py, run in its own process):
several requests in flight, images/s over the window, recorded in the manifest with its settings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.export.timing import measure_streams
from tests.export.conftest import FAST, make_run


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = make_run(tmp_path_factory.mktemp("throughput"), arch="resnet10t", image_size=32)
    export_run(run, ExportOptions(format="onnx", **FAST))
    return run


def test_streams_keep_several_requests_in_flight() -> None:
    """Four streams of a 20 ms request that releases the GIL (as ORT's run does): ~4× the rate of one stream.
    The reference is arithmetic, not the code: a 20 ms request gives 50 per second per stream."""
    step = lambda: time.sleep(0.02)  # noqa: E731
    one = measure_streams([step], batch=2, warmup=1, warmup_s=0.0, iters=None, seconds=0.3)
    four = measure_streams([step] * 4, batch=2, warmup=1, warmup_s=0.05, iters=None, seconds=0.3)
    assert 50 <= one.images_per_s <= 2 * 50 * 1.05  # batch 2 at ≤ 50 requests/s
    assert four.images_per_s > 2.5 * one.images_per_s  # in flight together, not one after another
    assert four.images_per_s == pytest.approx(2 * four.requests / four.elapsed_s)
    assert four.requests >= 4 * 5 and four.latency.iters == four.requests  # at least 5 per stream
    assert four.latency.p50 >= 19.0 and four.latency.warmup_s >= 0.05 and four.settings["streams"] == 4


def test_a_failing_stream_raises_in_the_caller() -> None:
    def bad() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        measure_streams([lambda: None, bad], batch=1, warmup=1, warmup_s=0.0, iters=10, seconds=None)


def test_ort_throughput_mode_runs_and_is_recorded(small_run: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "tp.json"
    code, stdout, stderr = cli("bench", small_run, "--backend", "torch,ort-cpu", "--batch", "1,4", "--mode",
                               "throughput", "--streams", "2", "--threads", "2", "--seconds", "0.3", "--warmup-s",
                               "0.1", "--iters", "100000", "--json", out)
    assert code == 0, stderr
    data = json.loads(out.read_text())
    rows = data["results"]
    assert [(r["backend"], r["batch"], r["mode"]) for r in rows] == [("ort-cpu", 1, "throughput"),
                                                                    ("ort-cpu", 4, "throughput")]
    assert any(n.startswith("torch: skipped: --mode throughput") for n in data["notes"])
    for r in rows:
        s = r["settings"]
        assert s["streams"] == s["requests_in_flight"] == 2 and s["intra_op_threads"] == 1
        assert s["warmup_s"] >= 0.1 and s["elapsed_s"] >= 0.3 and s["requests"] == r["iters"] >= 10
        assert r["throughput_ips"] == pytest.approx(r["batch"] * s["requests"] / s["elapsed_s"])
        assert r["timing"] == "host" and r["cosine_vs_torch"] > 0.999
    assert "throughput, 2 in flight" in stdout

    entry = json.loads((small_run / "export" / "manifest.json").read_text())["exports"]["model.onnx"]
    rec = entry["bench"]["ort-cpu throughput batch 4"]
    assert rec["mode"] == "throughput" and rec["compute"]["throughput_ips"] == rows[1]["throughput_ips"]
    assert rec["settings"]["requests_in_flight"] == 2 and rec["settings"]["threads"] == 2
    assert "ONNX Runtime sessions" in rec["settings"]["api"]


def test_default_streams_are_one_per_thread(small_run: Path) -> None:
    (row,) = bench(small_run, BenchOptions(backends=("ort-cpu",), batches=(1,), mode="throughput", threads=2,
                                           warmup_s=0.0, iters=20, seconds=None)).results
    assert row.settings["requests_in_flight"] == 2 and row.settings["intra_op_threads"] == 1
    assert row.iters >= 10  # the floor of 5 per stream holds even under a smaller --iters
