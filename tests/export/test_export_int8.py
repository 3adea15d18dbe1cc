"""INT8 export: a calibrated QDQ graph (uint8 activations, per-channel int8 weights), report, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from compressor.errors import CompressorError
from compressor.export import ExportOptions, export_run
from compressor.export.quantize import ArrayReader, _stride, cpu_saturates_u8s8


def test_int8_graph_is_qdq_u8s8_per_channel(exported_run: Path) -> None:
    proto = onnx.load(str(exported_run / "export" / "model.int8.onnx"))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > ops.count("QuantizeLinear")
    weight_dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"
                 and inits.get(n.input[0]) is not None and inits[n.input[0]].ndim == 4]
    assert len(weight_dq) == ops.count("Conv")  # every conv's weights are int8
    for n in weight_dq:
        assert inits[n.input[0]].dtype == np.int8
        assert inits[n.input[1]].size == inits[n.input[0]].shape[0]  # one scale per output channel
    act_q = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert all(inits[n.input[2]].dtype == np.uint8 for n in act_q)  # U8 activations: the fast VNNI path


def test_int8_report_in_manifest(exported_run: Path) -> None:
    entry = json.loads((exported_run / "export" / "manifest.json").read_text())["exports"]["model.int8.onnx"]
    assert entry["precision"] == "int8" and entry["format"] == "onnx-int8"
    fid, q = entry["fidelity"], entry["quantization"]
    assert 0.98 <= fid["mean_cosine"] <= 1.0 and fid["threshold"] == 0.98
    # synthetic data has labels: kNN top-1 of fp32 and int8 embeddings, bank = calibration-size train images
    assert 0.0 <= fid["knn_top1_int8"] <= 1.0 and 0.0 <= fid["knn_top1_fp32"] <= 1.0
    assert fid["knn_bank"] == 16 and fid["knn_queries"] == 16
    # the delta is paired: only the queries one precision gets right and the other wrong move it
    b, c = fid["knn_discordant"]["fp32_only"], fid["knn_discordant"]["int8_only"]
    assert fid["knn_top1_int8"] - fid["knn_top1_fp32"] == pytest.approx((c - b) / 16)
    assert fid["knn_delta_noise"] == pytest.approx(2 * math.sqrt(b + c) / 16)
    assert q["calib_method"] == "minmax" and q["calib_images"] == 16 and q["calib_data"] == "synthetic:train"
    fp32 = entry["size_bytes"] / (exported_run / "export" / "model.onnx").stat().st_size
    assert fp32 < 0.3  # int8 weights: about a quarter of the fp32 file


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_histogram_calibration_methods(fresh_run: Path, fast: dict, method: str) -> None:
    fast["calib_size"] = 8
    res = export_run(fresh_run, ExportOptions(format="onnx-int8", calib_method=method, knn=False, **fast))
    assert res.entry["quantization"]["calib_method"] == method
    assert res.entry["fidelity"]["mean_cosine"] >= 0.98


def test_calibration_on_other_data_and_exclusions(fresh_run: Path, fast: dict, image_folder: Path) -> None:
    res = export_run(fresh_run, ExportOptions(format="onnx-int8", calib_data=str(image_folder), knn=False,
                                              int8_exclude=("/backbone/conv1/Conv",), **fast))
    q = res.entry["quantization"]
    assert q["calib_data"] == f"{image_folder}:train" and q["calib_images"] == 15  # 18 images, 3 held out
    assert "/backbone/conv1/Conv" in q["excluded_nodes"]
    proto = onnx.load(str(res.path))
    stem = next(n for n in proto.graph.node if n.name == "/backbone/conv1/Conv")
    assert stem.input[1] in {t.name for t in proto.graph.initializer}  # fp32 weights, not a DequantizeLinear


def test_int8_refused_below_min_cosine(fresh_run: Path, fast: dict) -> None:
    with pytest.raises(CompressorError, match=r"onnx-int8 export failed .*--calib-method"):
        export_run(fresh_run, ExportOptions(format="onnx-int8", min_cosine=0.9999999, knn=False, **fast))
    assert not (fresh_run / "export" / "model.int8.onnx").exists()
    with pytest.raises(CompressorError, match="unknown calibration method 'kl'"):
        export_run(fresh_run, ExportOptions(format="onnx-int8", calib_method="kl", **fast))
    with pytest.raises(CompressorError, match="node to keep in float"):
        export_run(fresh_run, ExportOptions(format="onnx-int8", int8_exclude=("/nope/Conv",), **fast))


def _weight_codes(path: Path) -> np.ndarray:
    proto = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    return np.concatenate([inits[n.input[0]].ravel() for n in proto.graph.node if n.op_type == "DequantizeLinear"
                           and inits.get(n.input[0]) is not None and inits[n.input[0]].ndim == 4])


def test_reduce_range_puts_weights_in_7_bits_and_auto_follows_the_cpu(fresh_run: Path, fast: dict) -> None:
    fast["calib_size"] = 8
    seen = {}
    for setting in ("on", "off", "auto"):
        res = export_run(fresh_run, ExportOptions(format="onnx-int8", reduce_range=setting, knn=False,
                                                  min_cosine=0.0, **fast))
        seen[setting] = (res.entry["quantization"]["reduce_range"], int(np.abs(_weight_codes(res.path)).max()))
    assert seen["on"][0] is True and seen["on"][1] <= 64  # symmetric 7-bit codes
    assert seen["off"][0] is False and seen["off"][1] == 127  # each channel's largest weight takes the full code
    assert seen["auto"] == seen["on" if cpu_saturates_u8s8() else "off"]
    with pytest.raises(CompressorError, match="unknown --reduce-range value 'yes'"):
        export_run(fresh_run, ExportOptions(format="onnx-int8", reduce_range="yes", **fast))


def test_reader_feeds_chunks() -> None:
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    r = ArrayReader("images", x, batch=3)
    assert len(r) == 4
    assert [b["images"].shape[0] for b in iter(r.get_next, None)] == [3, 3, 3, 1]
    r.set_range(1, 2)
    assert r.get_next()["images"][0, 0] == 3 and r.get_next() is None
    assert _stride(64, 4) == 4 and _stride(63, 4) == 3 and _stride(61, 4) == 1 and _stride(2, 4) == 2
