"""Every edge student of the default zoo: one real distillation step → ONNX and INT8 with parity → bench.

Before, the encoder took timm's ``num_features`` as the embedding width, and MobileNetV3/V4 (which
pool through a wider head) failed at step 1 with a shape mismatch in the projector.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compressor.engine.config import TrainConfig
from compressor.engine.trainer import train
from compressor.errors import CompressorError
from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.export.quantize import cpu_saturates_u8s8
from compressor.export.zoo import EDGE_STUDENTS
from compressor.models.students import build_student

# 32 px (every zoo member's patch/stride grid divides it), 8 parity and calibration images, one timed call.
SIZE = 32
TINY = {"check_size": 8, "calib_size": 8}
# On an x86 CPU without VNNI the INT8 weights are 7-bit (--reduce-range auto); this one-step mobilevitv2 then
# scores 0.952 against the 0.98 threshold (0.974 in the float-simulated 8-bit graph; docs/export.md), and the
# exporter must refuse it as it refuses any export below its threshold.
BELOW_THRESHOLD_AT_7_BITS = ("mobilevitv2_050",)


@pytest.mark.parametrize("arch", ["mobilenetv3_large_100", "mobilenetv4_conv_small", "resnet18"])
def test_embed_dim_is_what_the_model_outputs(arch: str) -> None:
    enc = build_student(arch, SIZE)
    enc.train()
    with torch.no_grad():
        out = enc.eval()(torch.zeros(2, 3, SIZE, SIZE))
    assert enc.embed_dim == out.shape[1]


@pytest.fixture
def two_threads():
    """The one-step students' weights depend on torch's thread count (the order of a conv's sums); the INT8
    figures above were taken with two threads, as a plain `pytest` runs, so the test runs with two under
    `make test`'s one-thread workers too."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.parametrize("arch", EDGE_STUDENTS)
def test_student_distills_exports_and_benches(arch: str, tmp_path: Path, two_threads: None) -> None:
    cfg = TrainConfig(student=arch, recipe="simclr", data="synthetic", max_steps=1, batch_size=4, image_size=SIZE,
                      out=str(tmp_path / "run"), device="cpu", stem="imagenet",  # the deployed stem, and cheap
                      recipe_config={"projector_dims": [32, 16]})
    run = train(cfg, progress=False)
    width = json.loads((run / "student.json").read_text())["embed_dim"]

    fp32 = export_run(run, ExportOptions(format="onnx", **TINY))
    assert fp32.entry["output"]["shape"] == ["batch", width]
    assert fp32.entry["fidelity"]["mean_cosine"] >= 0.9999  # the exporter's own threshold, checked again
    formats = {"onnx", "onnx-int8"}
    try:
        int8 = export_run(run, ExportOptions(format="onnx-int8", knn=False, **TINY))
        assert int8.entry["fidelity"]["mean_cosine"] >= 0.98
        assert int8.entry["size_bytes"] < fp32.entry["size_bytes"]
    except CompressorError as err:
        if not (cpu_saturates_u8s8() and arch in BELOW_THRESHOLD_AT_7_BITS):
            raise
        assert "failed its parity check and was not kept" in str(err) and "\n" not in str(err)
        assert not list((run / "export").glob("*int8*"))
        formats = {"onnx"}

    report = bench(run, BenchOptions(backends=("ort-cpu",), batches=(1,), warmup=1, iters=1, seconds=None,
                                     threads=1))
    rows = {r.format: r for r in report.results}
    assert set(rows) == formats
    assert rows["onnx"].cosine_vs_torch is not None and rows["onnx"].cosine_vs_torch > 0.9999
    assert all(r.p50_ms > 0 for r in rows.values())
