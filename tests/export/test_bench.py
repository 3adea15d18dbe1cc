"""compress bench: the JSON schema, sane statistics, agreement with an independent ORT timing, outputs.

No test asserts a latency: the machine is shared and noisy. Timings are only compared with each other
within generous factors.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from compressor.errors import CompressorError
from compressor.export import BenchOptions, bench
from compressor.export.report import SCHEMA_KEYS
from compressor.export.timing import measure

QUICK = {"warmup": 2, "iters": 8, "seconds": None}


def _check_rows(results: list[dict]) -> None:
    for r in results:
        assert set(SCHEMA_KEYS) <= set(r)
        assert r["precision"] in ("fp32", "fp16", "int8")
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["std_ms"] >= 0 and r["mean_ms"] > 0
        assert r["throughput_ips"] == pytest.approx(r["batch"] * 1e3 / r["mean_ms"])
        assert r["size_mb"] > 0 and r["params_m"] == pytest.approx(11.18, abs=0.05)
        assert r["gflops"] == pytest.approx(0.296, rel=0.05)  # ResNet-18 at 64 px: 1.82 GMAC × (64/224)² × 2
        floor = 0.98 if r["precision"] == "int8" else 0.999
        assert floor <= r["cosine_vs_torch"] <= 1.0 + 1e-6


def test_bench_run_schema_and_agreement_with_plain_ort(exported_run: Path, tmp_path: Path, cli) -> None:
    out = tmp_path / "bench.json"
    code, stdout, stderr = cli("bench", exported_run, "--backend", "torch,ort-cpu", "--batch", "1",
                               "--iters", "10", "--warmup", "2", "--threads", "2", "--json", out)
    assert code == 0, stderr
    data = json.loads(out.read_text())
    assert {"cpu", "cores", "threads", "gpu", "versions"} <= set(data["env"])
    assert data["env"]["threads"] == 2 and data["env"]["versions"]["onnxruntime"] == ort.__version__
    rows = {(r["backend"], r["format"]): r for r in data["results"]}
    assert set(rows) == {("torch", "pytorch"), ("ort-cpu", "onnx"), ("ort-cpu", "onnx-int8")}
    _check_rows(data["results"])
    assert rows[("torch", "pytorch")]["cosine_vs_torch"] == pytest.approx(1.0)

    # An independent timing of the same file with a plain session: same order of magnitude.
    path = exported_run / "export" / "model.onnx"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    for _ in range(3):
        sess.run(None, {"images": x})
    times = []
    for _ in range(10):
        t = time.perf_counter()
        sess.run(None, {"images": x})
        times.append((time.perf_counter() - t) * 1e3)
    ratio = rows[("ort-cpu", "onnx")]["p50_ms"] / float(np.median(times))
    assert 0.2 < ratio < 5, f"bench p50 / plain ORT p50 = {ratio:.2f}"
    assert "bench" not in stderr.lower() or "error" not in stderr.lower()


def test_bench_one_file_with_its_run_as_reference(exported_run: Path) -> None:
    report = bench(exported_run / "export" / "model.int8.onnx",
                   BenchOptions(backends=("ort-cpu",), batches=(1, 3), **QUICK))
    assert [(r.format, r.batch) for r in report.results] == [("onnx-int8", 1), ("onnx-int8", 3)]
    _check_rows(report.to_dict()["results"])


def test_bench_lone_file_without_run(exported_run: Path, tmp_path: Path) -> None:
    lone = tmp_path / "m.onnx"
    lone.write_bytes((exported_run / "export" / "model.onnx").read_bytes())
    report = bench(lone, BenchOptions(backends=("ort-cpu",), batches=(2,), **QUICK))
    (row,) = report.results
    assert row.precision == "fp32" and row.cosine_vs_torch is None and row.gflops is None
    assert row.params_m == pytest.approx(11.18, abs=0.05)  # counted from the graph's initialisers
    assert any("random pixels" in n for n in report.notes)


def test_unavailable_backends_are_one_line_each(exported_run: Path) -> None:
    report = bench(exported_run, BenchOptions(backends=("torch", "ort-cuda", "trt"), batches=(1,), **QUICK))
    assert {r.backend for r in report.results} == {"torch"}
    skipped = [n for n in report.notes if "skipped" in n]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert any(n.startswith("ort-cuda: skipped: CUDAExecutionProvider") for n in skipped)
    assert all("\n" not in n for n in report.notes)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="onnxruntime-gpu is here")
def test_ort_cuda_alone_without_the_gpu_package_is_one_line_naming_it(exported_run: Path) -> None:
    with pytest.raises(CompressorError, match=r"^ort-cuda cannot run here: .*pip install onnxruntime-gpu") as err:
        bench(exported_run, BenchOptions(backends=("ort-cuda",), batches=(1,), **QUICK))
    assert "\n" not in str(err.value)


def test_markdown_and_plot(exported_run: Path, tmp_path: Path, cli) -> None:
    md, png = tmp_path / "b.md", tmp_path / "b.png"
    args = ["bench", exported_run, "--backend", "ort-cpu", "--batch", "1,2", "--iters", "3", "--warmup", "1",
            "--md", md]
    try:
        import matplotlib  # noqa: F401

        args += ["--plot", png]
    except ImportError:
        png = None
    code, _, stderr = cli(*args)
    assert code == 0, stderr
    assert md.read_text().startswith("| backend | format | precision | batch | p50 ms")
    if png is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_errors(tmp_path: Path, cli) -> None:
    code, _, err = cli("bench", tmp_path / "nothing.onnx")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("bench", tmp_path, "--backend", "ort-cpux")
    assert code == 2 and "did you mean ort-cpu" in err
    code, _, err = cli("bench", tmp_path, "--batch", "1,x")
    assert code == 2 and "--batch" in err


def test_measure_counts_and_budget() -> None:
    calls = []
    t = measure(lambda: calls.append(1), warmup=3, iters=7, seconds=None)
    assert t.iters == 7 and len(calls) == 10
    t = measure(lambda: time.sleep(0.01), warmup=0, iters=None, seconds=0.001, min_iters=4)
    assert t.iters == 4 and t.p50 >= 9.0  # the budget is spent, but the minimum is still timed
    assert t.p50 <= t.p90 <= t.p99 and t.cv >= 0
