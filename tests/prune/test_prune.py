"""`compress prune` on real timm students: fewer channels, the same embedding, a reload without torch-pruning,
a recovery that moves toward the unpruned student, and a resume that ends where an unbroken job ends."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from timm.layers import BatchNormAct2d
from torch import nn

from compressor.errors import CompressorError
from compressor.export.images import load_images
from compressor.models.encoder import Encoder
from compressor.models.pruning import prune_encoder
from compressor.models.saved import load_encoder, save_encoder
from compressor.models.students import build_student
from compressor.prune import prune_run
from tests.prune.conftest import FAST, RATIO, make_run

BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def _shapes(run: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(run / "student.safetensors"), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)


def _params(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(int(np.prod(s)) for k, s in shapes.items() if not k.endswith(BUFFERS))


def _block_torch_pruning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # Python's own way to make an import fail
    with pytest.raises(ImportError):
        import torch_pruning  # noqa: F401


def test_channels_and_parameters_fall_by_the_ratio(source_run: Path, pruned_run: Path) -> None:
    before, after = _shapes(source_run), _shapes(pruned_run)
    assert before.keys() == after.keys()
    convs = [k for k, s in before.items() if k.endswith(".weight") and len(s) == 4]
    whole = sorted(k for k in convs if after[k][0] == before[k][0])
    # only the residual stream that is the embedding keeps its width: the last stage's conv2s and shortcut
    assert whole == ["layer4.0.conv2.weight", "layer4.0.downsample.0.weight", "layer4.1.conv2.weight"]
    for k in set(convs) - set(whole):
        assert abs(after[k][0] - (1 - RATIO) * before[k][0]) <= 1, (k, before[k], after[k])
    # every layer loses channels on one side or both: the count lies between (1-r)² and (1-r) of the original
    p0, p1 = _params(before), _params(after)
    assert (1 - RATIO) ** 2 < p1 / p0 < 1 - RATIO
    record = json.loads((pruned_run / "student.json").read_text())["pruned"]
    assert (record["params_before"], record["params_after"]) == (p0, p1)
    assert record["ratio"] == RATIO and record["library"] == "torch-pruning" and record["library_version"]
    assert record["macs_after"] < record["macs_before"]
    assert set(record["unpruned"]) == {k.removesuffix(".weight") for k in whole}
    assert record["source"] == str(source_run.resolve())
    assert (pruned_run / "config.yaml").read_text() == (source_run / "config.yaml").read_text()
    assert not (pruned_run / "checkpoints" / "prune.pt").exists()  # finished: nothing left to resume


def _saved_and_reloaded(student: Encoder, record: dict, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Encoder:
    """Save the pruned ``student``, reload it where torch-pruning cannot be imported: the same outputs."""
    save_encoder(student, folder, pruned=record)
    _block_torch_pruning(monkeypatch)
    reloaded = load_encoder(folder)
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = student.eval()(x), reloaded(x)
    assert got.shape == (3, student.embed_dim) and reloaded.embed_dim == student.embed_dim
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    return reloaded


def test_a_pruned_resnet_reloads_without_torch_pruning(unrecovered: Encoder, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    reloaded = _saved_and_reloaded(unrecovered, unrecovered.record, tmp_path / "pruned", monkeypatch)
    assert reloaded.embed_dim == 512


def test_a_pruned_mobilenet_reloads_without_torch_pruning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    student = build_student("mobilenetv3_large_100", 32)
    record = prune_encoder(student, 0.3)
    reloaded = _saved_and_reloaded(student, record, tmp_path / "pruned", monkeypatch)
    assert reloaded.embed_dim == 1280  # the head's width (conv_head), not the last stage's 960
    # depthwise convolutions stay depthwise, timm's fused norm+activation layers keep their class
    dw = [m for m in reloaded.backbone.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert dw and all(m.groups == m.in_channels == m.out_channels for m in dw)
    assert any(type(m) is BatchNormAct2d for m in reloaded.backbone.modules())
    assert any(m.in_channels < 240 for m in dw)  # and they were pruned


def test_the_pruned_run_reloads_without_torch_pruning(pruned_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _block_torch_pruning(monkeypatch)
    enc = load_encoder(pruned_run)
    with torch.no_grad():
        assert enc(torch.zeros(2, 3, 32, 32)).shape == (2, 512)


def _mean_cosine(a: nn.Module, b: nn.Module, images: np.ndarray) -> float:
    x = torch.from_numpy(images)
    with torch.no_grad():
        return float(nn.functional.cosine_similarity(a.eval()(x), b.eval()(x), dim=1).mean())


def test_recovery_moves_the_pruned_student_toward_the_unpruned_one(source_run: Path, pruned_run: Path,
                                                                   unrecovered: Encoder) -> None:
    recovery = json.loads((pruned_run / "student.json").read_text())["pruned"]["recovery"]
    assert recovery["steps"] == FAST["steps"] and recovery["loss_last"] < recovery["loss_first"]
    reference = load_encoder(source_run)
    held_out = load_images("synthetic", reference.spec, 48, split="val").images  # images it never trained on
    before = _mean_cosine(unrecovered, reference, held_out)
    after = _mean_cosine(load_encoder(pruned_run), reference, held_out)
    assert after > before + 0.05, (before, after)


def test_the_pruned_run_exports_to_onnx_but_not_to_timm(pruned_run: Path) -> None:
    from compressor.export import ExportOptions, export_run

    result = export_run(pruned_run, ExportOptions(format="onnx", check_size=16))
    assert Path(result.path).is_file()
    with pytest.raises(CompressorError, match="pruned .*export it with --format onnx or openvino"):
        export_run(pruned_run, ExportOptions(format="timm"))


def test_a_rerun_keeps_a_finished_job_and_another_run_is_not_overwritten(source_run: Path, pruned_run: Path,
                                                                        tmp_path: Path) -> None:
    weights = pruned_run / "student.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert prune_run(source_run, ratio=RATIO, **FAST) == pruned_run  # same job, already done: left as it is
    assert weights.stat().st_mtime_ns == stamp
    with pytest.raises(CompressorError, match="already holds a finished run; pass another --out"):
        prune_run(source_run, pruned_run, ratio=0.3, **FAST)
    with pytest.raises(CompressorError, match="is the source run"):
        prune_run(source_run, source_run, ratio=0.3, **FAST)


def test_resume_after_an_interruption_ends_with_the_same_weights(source_run: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import compressor.finetune as finetune

    job = {"ratio": 0.3, "steps": 4, "batch_size": 4, "pool_size": 8, "lr": 1e-3, "checkpoint_every": 2}
    whole = prune_run(source_run, tmp_path / "whole", **job)
    real, calls = finetune.cosine_distillation, []

    def stop_at_step_three(student: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C does between the checkpoint at step 2 and step 3's update
        return real(student, reference)

    monkeypatch.setattr(finetune, "cosine_distillation", stop_at_step_three)
    with pytest.raises(KeyboardInterrupt):
        prune_run(source_run, tmp_path / "resumed", **job)
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoints" / "prune.pt", weights_only=True)
    assert checkpoint["step"] == 2 and not (tmp_path / "resumed" / "student.json").exists()
    monkeypatch.setattr(finetune, "cosine_distillation", real)
    resumed = prune_run(source_run, tmp_path / "resumed", **job)
    a, b = load_encoder(whole).state_dict(), load_encoder(resumed).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta_a, meta_b = (json.loads((r / "student.json").read_text())["pruned"] for r in (whole, resumed))
    assert meta_a["recovery"] == meta_b["recovery"]


def test_refusals_are_one_line_naming_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vit = make_run(tmp_path / "vit", "vit_tiny_patch16_224", 32)
    with pytest.raises(CompressorError, match="attention layers .*prune a ResNet, MobileNet"):
        prune_run(vit, ratio=0.3, steps=1)
    monkeypatch.setitem(sys.modules, "torch_pruning", None)
    with pytest.raises(CompressorError, match=r"needs torch-pruning, which is not installed: "
                                              r"pip install 'compressor\[prune\]'"):
        prune_run(vit, ratio=0.3, steps=1)
