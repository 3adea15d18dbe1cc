"""Self-describing ONNX files: ``metadata_props`` carry the preprocessing contract, bench reads it back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.export.bencher import _spec_from_file
from compressor.models.encoder import Encoder, InputSpec
from compressor.models.saved import save_encoder
from compressor.models.students import build_student

SPEC = InputSpec(48, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3))  # not ImageNet's: a bare file must not fall back to it


def _run(root: Path) -> Path:
    torch.manual_seed(0)
    enc = build_student("resnet18", 48)
    run = root / "run"
    save_encoder(Encoder(enc.backbone, name="resnet18", arch="resnet18", spec=SPEC, embed_dim=enc.embed_dim), run)
    (run / "config.yaml").write_text("data: synthetic\n")
    return run


def test_metadata_props_hold_the_contract_and_bench_reads_them(tmp_path: Path) -> None:
    run = _run(tmp_path)
    res = export_run(run, ExportOptions(format="onnx-int8", check_size=8, calib_size=8, knn=False))
    # read with ONNX Runtime's own API, independent of our reader
    meta = ort.InferenceSession(str(res.path), providers=["CPUExecutionProvider"]).get_modelmeta()
    props = meta.custom_metadata_map
    assert json.loads(props["input.mean"]) == list(SPEC.mean) and json.loads(props["input.std"]) == list(SPEC.std)
    assert props["input.image_size"] == "48" and props["input.layout"] == "NCHW"
    assert props["output.embed_dim"] == "512" and props["model.arch"] == "resnet18"
    assert props["model.format"] == "onnx-int8" and props["provenance.compressor"]

    bare = tmp_path / "elsewhere" / "model.onnx"  # copied alone: no manifest, no run
    bare.parent.mkdir()
    shutil.copyfile(res.path, bare)
    spec = _spec_from_file(bare)
    assert spec.image_size == SPEC.image_size
    assert np.allclose(spec.mean, SPEC.mean) and np.allclose(spec.std, SPEC.std)
    report = bench(bare, BenchOptions(backends=("ort-cpu",), batches=(1,), warmup=1, iters=1, seconds=None,
                                      threads=1))
    (row,) = report.results
    assert row.format == "onnx-int8" and row.precision == "int8"


def test_baked_file_benches_bare(tmp_path: Path) -> None:
    run = _run(tmp_path)
    res = export_run(run, ExportOptions(format="onnx", bake_preprocess=True, check_size=4))
    bare = tmp_path / "model.rgb8.onnx"
    shutil.copyfile(res.path, bare)
    props = {p.key: p.value for p in onnx.load(str(bare)).metadata_props}
    assert props["input.dtype"] == "uint8" and props["input.preprocess_baked"] == "true"
    report = bench(bare, BenchOptions(backends=("ort-cpu",), batches=(2,), warmup=1, iters=1, seconds=None,
                                      threads=1))
    assert report.results[0].batch == 2


def test_int8_file_imports_only_the_opsets_it_uses(exported_run: Path) -> None:
    proto = onnx.load(str(exported_run / "export" / "model.int8.onnx"))
    used = {n.domain or "" for n in proto.graph.node}
    imported = {op.domain or "" for op in proto.opset_import}
    assert imported - {"ai.onnx"} <= used | {""}
