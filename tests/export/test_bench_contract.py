"""The bench contract of issue 38 on CPU: every row carries a compute-only and an end-to-end figure with their
labels (in the table, the JSON, the manifest and the report), CPU runners time one thing once, and the warm-up
is measured in seconds.

No latency is asserted (the machine is shared): only what was measured, how, and where it was written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from compressor.errors import CompressorError
from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.export.bencher import manifest_digest
from compressor.export.report import E2E_SAME, ONE, TIMINGS
from compressor.export.runners import OrtRunner, TorchRunner
from compressor.export.timing import measure
from tests.export.conftest import FAST, make_run

QUICK = {"warmup": 1, "warmup_s": 0.0, "iters": 4, "seconds": None, "threads": 1}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet10t at 32 px with its fp32 ONNX (this module's own: bench writes figures into its manifest)."""
    run = make_run(tmp_path_factory.mktemp("contract"), arch="resnet10t", image_size=32)
    export_run(run, ExportOptions(format="onnx", **FAST))
    return run


def test_cpu_bench_writes_both_figures_labelled_everywhere(small_run: Path, tmp_path: Path, cli) -> None:
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    code, stdout, stderr = cli("bench", small_run, "--backend", "torch,ort-cpu", "--batch", "1,2", "--iters", "4",
                               "--warmup", "1", "--warmup-s", "0.05", "--threads", "1", "--json", out, "--md", md)
    assert code == 0, stderr
    data = json.loads(out.read_text())
    rows = data["results"]
    assert {(r["backend"], r["batch"]) for r in rows} == {(b, n) for b in ("torch", "ort-cpu") for n in (1, 2)}
    for r in rows:  # CPU runtimes: one measurement, reported under both names, and said so
        assert r["mode"] == "latency" and r["timing"] == "host"
        assert (r["e2e_p50_ms"], r["e2e_p99_ms"], r["e2e_mean_ms"]) == (r["p50_ms"], r["p99_ms"], r["mean_ms"])
        assert r["e2e_throughput_ips"] == r["throughput_ips"]
        assert r["settings"]["warmup_s"] >= 0.05 and r["settings"]["warmup_calls"] >= 1
        assert "e2e_iters" not in r["settings"]  # timed once, not twice
    assert data["timings"]["host"] == {"compute": ONE, "end_to_end": ONE}
    assert "p50 ms compute" in stdout and "p50 ms e2e" in stdout and E2E_SAME in stdout
    text = md.read_text()
    assert "| p50 ms (compute) | p50 ms (end to end) |" in text and f"| {E2E_SAME} |" in text

    # The manifest entry of the ONNX file holds the same figures with their labels and how they were taken.
    entry = json.loads((small_run / "export" / "manifest.json").read_text())["exports"]["model.onnx"]
    rec = entry["bench"]["ort-cpu latency batch 2"]
    row = next(r for r in rows if r["backend"] == "ort-cpu" and r["batch"] == 2)
    assert rec["compute"]["label"] == rec["end_to_end"]["label"] == TIMINGS["host"][0]
    assert rec["compute"]["p50_ms"] == row["p50_ms"] == rec["end_to_end"]["p50_ms"]
    assert rec["settings"]["threads"] == 1 and rec["settings"]["warmup_s"] >= 0.05
    assert rec["hardware"]["cpu"] == data["env"]["cpu"] and rec["mode"] == "latency"
    assert not any(k.startswith("torch") for k in entry["bench"])  # the PyTorch student has no export entry


def test_cpu_runners_compute_in_host_memory(small_run: Path) -> None:
    """Compute is end to end on CPU runners: they offer no second callable (bench does not time twice)."""
    from compressor.models.saved import load_encoder

    x = np.zeros((1, 3, 32, 32), np.float32)
    assert TorchRunner(load_encoder(small_run)).end_to_end(x) is None
    ort = OrtRunner(small_run / "export" / "model.onnx", threads=1)
    assert ort.end_to_end(x) is None
    assert np.asarray(ort.prepare(x)()).shape[0] == 1


def test_recorded_figures_do_not_change_what_a_bench_depends_on(small_run: Path, fast: dict) -> None:
    """`compress run` keys its bench stage on the manifest: the figures bench adds must not make it stale, and a
    re-export must."""
    export = small_run / "export"
    before = manifest_digest(export)
    raw = (export / "manifest.json").read_bytes()
    bench(small_run, BenchOptions(backends=("ort-cpu",), batches=(3,), **QUICK))
    assert (export / "manifest.json").read_bytes() != raw  # figures were recorded ...
    assert manifest_digest(export) == before  # ... and are not an input of the next bench
    export_run(small_run, ExportOptions(format="onnx", **fast))
    assert manifest_digest(export) != before
    assert "bench" not in json.loads((export / "manifest.json").read_text())["exports"]["model.onnx"]


def test_warmup_in_seconds_is_honoured() -> None:
    calls: list[float] = []

    def step() -> None:
        calls.append(time.perf_counter())
        time.sleep(0.005)

    start = time.perf_counter()
    t = measure(step, warmup=1, warmup_s=0.15, iters=3, seconds=None)
    wall = time.perf_counter() - start
    assert t.iters == 3 and t.warmup_calls == len(calls) - 3
    assert t.warmup_s >= 0.15 and calls[t.warmup_calls] - calls[0] >= 0.15  # the first timed call after 0.15 s
    assert wall >= 0.15 + 3 * 0.005
    assert measure(step, warmup=4, warmup_s=0.0, iters=1, seconds=None).warmup_calls == 4  # calls still a floor


def test_bench_mode_options_are_checked(small_run: Path, cli) -> None:
    for args, match in ((["--mode", "throughput", "--streams", "0"], "--streams must be at least 1"),
                        (["--warmup-s", "-1"], "--warmup-s must be at least 0"),
                        (["--mode", "througput"], "unknown --mode 'througput'; did you mean throughput"),
                        (["--streams", "2"], "--streams sets the requests in flight of --mode throughput")):
        code, _, err = cli("bench", small_run, "--backend", "ort-cpu", *args)
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(CompressorError, match="--mode"):
        bench(small_run, BenchOptions(mode="burst"))
