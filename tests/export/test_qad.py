"""Quantization-aware distillation (export/qad.py): real NNCF quantizers, real ORT and OpenVINO sessions.

Each claim is checked independently of the code under test: the folded network against the original
by a forward pass, the INT8 graphs by reading their Q/DQ tensors with ``onnx`` and running them in ONNX
Runtime / OpenVINO, the recorded figures against a recomputation from the files.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from tests.export.conftest import make_run

pytest.importorskip("nncf")

QAD_FAST = {"check_size": 16, "calib_size": 16, "qad_steps": 4, "qad_batch_size": 8, "knn": False}


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("arch", ["resnet18", "mobilenetv3_large_100"])
def test_fold_batchnorm_removes_every_batchnorm_and_keeps_the_function(arch: str) -> None:
    from compressor.export.qad import fold_batchnorm
    from compressor.models.students import build_student

    torch.manual_seed(0)
    enc = build_student(arch, image_size=64).eval()
    # non-trivial running statistics, so a fold that ignored them would be caught
    for m in enc.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in enc.backbone.modules())
    x = torch.randn(3, 3, 64, 64)
    folded, n = fold_batchnorm(enc.backbone, x)
    assert n == n_bn > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        ref, out = enc.backbone(x), folded(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.backbone.modules())  # the original untouched


@pytest.mark.slow
def test_qad_onnx_int8_end_to_end_through_the_cli(tmp_path: Path, cli) -> None:
    import onnxruntime as ort

    from compressor.export.images import load_images
    from compressor.manifest import read_manifest
    from compressor.models.saved import load_encoder

    run = make_run(tmp_path)
    code, out, err = cli("export", run, "--format", "onnx-int8", "--qad-steps", "4", "--qad-batch-size", "8",
                         "--check-size", "16", "--calib-size", "16")
    assert code == 0, err
    path = run / "export" / "model.int8.qad.onnx"
    assert path.is_file()
    entry = read_manifest(run / "export")["exports"][path.name]
    assert entry["format"] == "onnx-int8" and entry["precision"] == "int8"
    qad = entry["qad"]
    assert qad["steps"] == 4 and qad["library"] == "nncf" and qad["version"] == importlib.metadata.version("nncf")
    assert qad["target"].endswith(str(run)) and qad["fake_quantizers"] > 0
    assert (run / "qad" / "mixed.pt").is_file()  # the resumable checkpoint of the scheme
    # The graph is Q/DQ with uint8 activations (ORT's U8S8 kernels) and int8 weights.
    proto = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in proto.graph.node
              if n.op_type == "Constant" and n.attribute and n.attribute[0].type == onnx.AttributeProto.TENSOR}
    zps = [{**inits, **consts}[n.input[2]] for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    assert {z.dtype for z in zps} == {np.dtype(np.uint8), np.dtype(np.int8)}
    # ORT fuses the trained graph into its integer kernels.
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    assert "QLinearConv" in {n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node}
    # The recorded parity is what ORT gives on the same held-out images, recomputed here.
    enc = load_encoder(run)
    check = load_images("synthetic", enc.spec, 16, split="val")
    ref = enc(torch.from_numpy(check.images)).detach().numpy()
    got = sess.run(None, {"images": check.images})[0]
    assert abs(float(_cos(ref, got).mean()) - entry["fidelity"]["mean_cosine"]) < 1e-4
    # A second export of the same job resumes from the finished checkpoint: no step is trained again.
    code, out, err = cli("export", run, "--format", "onnx-int8", "--qad-steps", "4", "--qad-batch-size", "8",
                         "--check-size", "16", "--calib-size", "16")
    assert code == 0, err
    assert read_manifest(run / "export")["exports"][path.name]["qad"]["loss_last"] == qad["loss_last"]
    # openvino-int8 trains the same scheme: it reuses that training and only converts it
    code, out, err = cli("export", run, "--format", "openvino-int8", "--qad-steps", "4", "--qad-batch-size", "8",
                         "--check-size", "16", "--calib-size", "16")
    assert code == 0, err
    ov = read_manifest(run / "export")["exports"]["model.int8.qad.xml"]["qad"]
    assert ov["scheme"] == "mixed" and ov["loss_last"] == qad["loss_last"] and ov["loss_first"] == qad["loss_first"]


@pytest.mark.slow
def test_qad_trains_toward_the_fp32_student(tmp_path: Path) -> None:
    """More QAD steps bring the fake-quantized network's embeddings closer to the fp32 student's on held-out
    images than the PTQ starting point (the same quantizers before training)."""
    from compressor.export.images import load_images
    from compressor.export.qad import QadConfig, insert_quantizers, train_qad
    from compressor.models.students import build_student

    torch.manual_seed(0)
    enc = build_student("mobilenetv3_large_100", image_size=32).eval()
    calib = load_images("synthetic", enc.spec, 32, split="train").images
    pool = load_images("synthetic", enc.spec, 256, split="train", seed=1).images
    held = torch.from_numpy(load_images("synthetic", enc.spec, 32, split="val").images)
    with torch.no_grad():
        ref = enc(held).numpy()
    start, _ = insert_quantizers(enc, "openvino-int8", calib)
    with torch.no_grad():
        before = float(_cos(start.eval()(held).numpy(), ref).mean())
    trained, record = train_qad(enc, "openvino-int8", calib, pool, QadConfig(steps=30, lr=1e-4, batch_size=16),
                                checkpoint=None, source="test")
    with torch.no_grad():
        after = float(_cos(trained.eval()(held).numpy(), ref).mean())
    assert record["loss_last"] < record["loss_first"]
    assert 1 - after < 0.8 * (1 - before), (before, after)


@pytest.mark.slow
def test_qad_openvino_int8_is_an_int8_ir(tmp_path: Path) -> None:
    import openvino as ov

    from compressor.export import ExportOptions, export_run

    run = make_run(tmp_path)
    res = export_run(run, ExportOptions(format="openvino-int8", **QAD_FAST))
    assert res.path.name == "model.int8.qad.xml"
    model = ov.Core().read_model(str(res.path))
    assert sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) > 10
    compiled = ov.Core().compile_model(model, "CPU")
    precisions = {n.get_rt_info()["runtimePrecision"].astype(str) for n in compiled.get_runtime_model().get_ops()
                  if n.get_rt_info()["layerType"].astype(str) == "Convolution"}
    assert precisions & {"i8", "u8", "I8", "U8"}, precisions
    assert res.entry["qad"]["preset"] == "mixed" and res.entry["fidelity"]["mean_cosine"] >= 0.98


@pytest.mark.slow
def test_trt_scheme_writes_signed_symmetric_qdq(tmp_path: Path) -> None:
    """trt-int8's QAD graph: every Q/DQ int8 with zero point 0 (TensorRT's explicit quantization), and ORT runs
    it close to the fake-quantized torch model. (Building the engine needs TensorRT: test_tensorrt.py.)"""
    import onnxruntime as ort

    from compressor.export.images import load_images
    from compressor.export.qad import insert_quantizers, write_onnx
    from compressor.models.students import build_student

    torch.manual_seed(0)
    enc = build_student("resnet18", image_size=32).eval()
    calib = load_images("synthetic", enc.spec, 16, split="train").images
    qenc, facts = insert_quantizers(enc, "trt-int8", calib)
    path = tmp_path / "qdq.onnx"
    write_onnx(qenc, "trt-int8", path, opset=17, bake_preprocess=False)
    proto = onnx.load(str(path))
    values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    values.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in proto.graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].type == onnx.AttributeProto.TENSOR})
    zps = [values[n.input[2]] for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert zps and all(z.dtype == np.int8 and not z.any() for z in zps)
    x = calib[:4]
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})[0]
    with torch.no_grad():
        want = qenc.eval()(torch.from_numpy(x)).numpy()
    assert float(_cos(got, want).min()) > 0.999


@pytest.mark.parametrize(("args", "needle"), [
    (["--format", "onnx-int8", "--qad-steps", "0"], "--qad-steps"),
    (["--format", "onnx-int8", "--qad-steps", "-3"], "--qad-steps"),
    (["--format", "onnx", "--qad-steps", "5"], "not one"),
    (["--format", "timm", "--qad-steps", "5"], "not one"),
    (["--format", "openvino-int8", "--qad-steps", "5", "--qad-lr", "0"], "--qad-lr"),
])
def test_qad_bad_values_are_one_line(tmp_path: Path, cli, args: list[str], needle: str) -> None:
    run = make_run(tmp_path)
    code, out, err = cli("export", run, *args)
    assert code == 2 and needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert not (run / "qad").exists()  # nothing trained before the refusal


def test_qad_needs_a_run_with_a_student(tmp_path: Path, cli) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = cli("export", tmp_path / "empty", "--format", "onnx-int8", "--qad-steps", "5")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_finetune_resumes_to_the_same_weights(tmp_path: Path, monkeypatch) -> None:
    """Stopped after a checkpoint and started again, the loop ends where an uninterrupted one does."""
    from compressor import finetune

    def model() -> torch.nn.Module:
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                   torch.nn.Flatten())

    torch.manual_seed(2)
    reference = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    pool = np.random.default_rng(0).standard_normal((40, 3, 12, 12)).astype(np.float32)
    cfg = finetune.FinetuneConfig(steps=6, batch_size=4, lr=1e-2, checkpoint_every=2)
    whole = model()
    rec_whole = finetune.distill_to_reference(whole, reference, pool, cfg, key={"k": 1})

    ckpt = tmp_path / "ft.pt"
    calls = {"n": 0}
    real = finetune.cosine_distillation

    def stop_at_step_4(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # killed during step 5: steps 1-4 are in the checkpoint
        return real(a, b)

    monkeypatch.setattr(finetune, "cosine_distillation", stop_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        finetune.distill_to_reference(model(), reference, pool, cfg, key={"k": 1}, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=True)["step"] == 4
    monkeypatch.setattr(finetune, "cosine_distillation", real)
    resumed = model()
    rec = finetune.distill_to_reference(resumed, reference, pool, cfg, key={"k": 1}, checkpoint=ckpt)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert rec["loss_last"] == rec_whole["loss_last"]
    # another job's checkpoint is not resumed from
    other = model()
    finetune.distill_to_reference(other, reference, pool, cfg, key={"k": 2}, checkpoint=ckpt)
    assert json.loads(torch.load(ckpt, weights_only=True)["key"])["k"] == 2
