"""ONNX and ONNX-FP16 export: the graph's interface, parity with PyTorch, the manifest, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from compressor.data.datasets import build_dataset
from compressor.data.transforms import eval_transform
from compressor.errors import CompressorError
from compressor.export import ExportOptions, export_run
from compressor.models.saved import load_encoder


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _real_images(run: Path, n: int) -> tuple[torch.Tensor, list]:
    enc = load_encoder(run)
    ds = build_dataset("synthetic", "val")
    pil = [ds[i][0] for i in range(n)]
    return torch.stack([eval_transform(enc.spec)(im) for im in pil]), pil


def test_onnx_interface_and_parity(exported_run: Path) -> None:
    path = exported_run / "export" / "model.onnx"
    proto = onnx.load(str(path))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("images", "embeddings")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 64, 64]  # dynamic batch only
    assert not any(n.op_type == "Identity" for n in proto.graph.node)  # simplified

    # An independent check: PyTorch and ORT on the same real images, at two batch sizes.
    x, _ = _real_images(exported_run, 5)
    with torch.no_grad():
        ref = load_encoder(exported_run)(x).numpy()
    sess = _session(path)
    for b in (1, 5):
        got = sess.run(None, {"images": x[:b].numpy()})[0]
        np.testing.assert_allclose(got, ref[:b], rtol=1e-3, atol=1e-4)


def test_manifest_records_the_export(exported_run: Path) -> None:
    manifest = json.loads((exported_run / "export" / "manifest.json").read_text())
    assert manifest["student"]["arch"] == "resnet18"
    entry = manifest["exports"]["model.onnx"]
    assert entry["format"] == "onnx" and entry["precision"] == "fp32" and entry["opset"] >= 17
    assert entry["size_bytes"] == (exported_run / "export" / "model.onnx").stat().st_size
    assert entry["input"]["name"] == "images" and entry["input"]["dtype"] == "float32"
    assert entry["input"]["shape"] == ["batch", 3, 64, 64]
    assert entry["input"]["mean"][0] == pytest.approx(0.485)
    fid = entry["fidelity"]
    assert fid["mean_cosine"] >= 0.9999 and fid["max_abs_diff"] < 1e-3 and fid["data"] == "synthetic:val"
    for tool in ("torch", "onnx", "onnxruntime", "onnxslim"):
        assert tool in entry["tools"]
    assert "onnxslim" in entry["simplifier"]


def test_bake_preprocess_takes_uint8_rgb(fresh_run: Path, fast: dict) -> None:
    res = export_run(fresh_run, ExportOptions(format="onnx", bake_preprocess=True, **fast))
    assert res.path.name == "model.rgb8.onnx" and res.entry["input"]["dtype"] == "uint8"
    x, pil = _real_images(fresh_run, 4)
    # What an application does: decode, resize/crop, and hand over the raw bytes.
    raw = np.stack([np.asarray(im.resize((64, 64))) for im in pil]).astype(np.uint8)
    got = _session(res.path).run(None, {"images": raw})[0]
    with torch.no_grad():
        ref = load_encoder(fresh_run)(x).numpy()
    assert _cos(got, ref).min() > 0.9999


def test_fp16_has_half_weights_and_float_io(fresh_run: Path, fast: dict) -> None:
    res = export_run(fresh_run, ExportOptions(format="onnx-fp16", **fast))
    proto = onnx.load(str(res.path))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert res.entry["fidelity"]["mean_cosine"] >= 0.999 and res.entry["precision"] == "fp16"
    assert res.path.stat().st_size < 0.6 * (11.2e6 * 4)  # about half of the fp32 file


def test_failed_parity_leaves_nothing_behind(fresh_run: Path, fast: dict) -> None:
    # fp16 weights cannot reach a cosine of exactly 1 (a threshold above 1 is refused up front: test_export_options)
    with pytest.raises(CompressorError, match=r"mean cosine .* below the threshold 1\.0"):
        export_run(fresh_run, ExportOptions(format="onnx-fp16", min_cosine=1.0, **fast))
    export_dir = fresh_run / "export"
    # no model file, no temporary folder, no manifest; only the folder's lock file (RUN/export/.lock), which
    # stays between holders by design (removing it could let two writers lock two different files)
    assert [p.name for p in export_dir.iterdir()] in ([], [".lock"])


def test_unknown_format_and_missing_run(fresh_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CompressorError, match="did you mean onnx-int8"):
        export_run(fresh_run, ExportOptions(format="onnx-in8"))
    with pytest.raises(CompressorError, match="does not exist"):
        export_run(tmp_path / "nope", ExportOptions(format="onnx"))
