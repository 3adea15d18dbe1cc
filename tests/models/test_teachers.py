"""Teachers load checkpoints synthesised in each official layout and reproduce the reference embeddings.

ViTs use ``vit_tiny`` / a tiny open_clip config through the same specs (only ``arch`` is replaced) so the
loader code is the one the real names run; the real architectures are checked against the key names and
shapes in shared/CHECKPOINTS.md.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import huggingface_hub.constants
import open_clip
import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file
from torch import nn

from compressor.errors import CompressorError
from compressor.models.encoder import CLIP_MEAN, Encoder
from compressor.models.saved import save_encoder
from compressor.models.students import build_student
from compressor.models.teachers import FAMILY_BUILDERS, TEACHERS, TeacherSpec, build_teacher, list_teachers

TINY_VIT = "vit_tiny_patch16_224"


def _batch(size: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(size))


def _randomize(model: nn.Module) -> nn.Module:
    """Non-default norms and BN statistics, so that a key that failed to land changes the output."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.add_(torch.randn(t.shape, generator=g) * 0.02)
    return model.eval()


def _tiny(name: str) -> TeacherSpec:
    return replace(TEACHERS.get(name), arch=TINY_VIT, embed_dim=192)


def _mlp(dims: list[int], last_bn_affine: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(dims)):
        last = i == len(dims) - 2
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b, affine=not last or last_bn_affine)]
        layers += [] if last else [nn.ReLU()]
    return nn.Sequential(*layers)


def _prefixed(prefix: str, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in sd.items()}


def _same(teacher: nn.Module, reference: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> None:
    """The teacher's embeddings equal the independent reference's (to float rounding)."""
    with torch.no_grad():
        torch.testing.assert_close(teacher(x), reference(x), atol=1e-6, rtol=1e-6)


@pytest.fixture(scope="module")
def moco_v3_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    """MoCo v3 layout: base + momentum encoders with BN-MLP projectors, a predictor, solver state."""
    ref = _randomize(timm.create_model(TINY_VIT, num_classes=0))
    state = _prefixed("module.base_encoder.", ref.state_dict())
    state |= {f"module.momentum_encoder.{k}": torch.randn_like(v) for k, v in ref.state_dict().items()}
    state |= _prefixed("module.base_encoder.head.", _mlp([192, 64, 64, 16], False).state_dict())
    state |= _prefixed("module.momentum_encoder.head.", _mlp([192, 64, 64, 16], False).state_dict())
    state |= _prefixed("module.predictor.", _mlp([16, 64, 16], False).state_dict())
    path = tmp_path_factory.mktemp("mocov3") / "vit-b-300ep.pth.tar"
    torch.save({"epoch": 300, "arch": "vit_base", "state_dict": state,
                "optimizer": {"state": {}, "param_groups": [{"lr": 1.5e-4, "params": [0]}]},
                "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 0}}, path)
    return path, ref


def test_moco_v3_vit(moco_v3_file: tuple[Path, nn.Module], caplog: pytest.LogCaptureFixture) -> None:
    path, ref = moco_v3_file
    with caplog.at_level(logging.INFO, logger="compressor"):
        teacher = build_teacher(_tiny("moco-v3-vit-b16"), weights=str(path))
    x = _batch(224)
    _same(teacher, ref, x)
    dropped = teacher.info["dropped_keys"]
    assert dropped and all(k.startswith(("module.base_encoder.head.", "module.momentum_encoder.",
                                         "module.predictor.")) for k in dropped)
    assert {"module.base_encoder.head.7.running_mean", "module.predictor.0.weight"} <= set(dropped)
    assert all(g in caplog.text for g in ("projector", "momentum encoder", "predictor"))
    assert teacher.info == {**teacher.info, "name": "moco-v3-vit-b16", "weights": str(path), "random": False}


def test_vit_image_size_resamples_pos_embed(moco_v3_file: tuple[Path, nn.Module]) -> None:
    path, ref = moco_v3_file
    teacher = build_teacher(_tiny("moco-v3-vit-b16"), weights=str(path), image_size=64)
    assert teacher.spec.image_size == 64
    dyn = timm.create_model(TINY_VIT, num_classes=0, dynamic_img_size=True).eval()
    dyn.load_state_dict(ref.state_dict())  # timm resamples the 14x14 grid per call
    x = _batch(64)
    _same(teacher, dyn, x)


def test_moco_v2_r50_matches_torchvision(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ref = torchvision.models.resnet50()
    ref.fc = nn.Identity()
    _randomize(ref)
    state = _prefixed("module.encoder_q.", ref.state_dict())
    projector = {"0.weight": [2048, 2048], "0.bias": [2048], "2.weight": [128, 2048], "2.bias": [128]}
    state |= {f"module.encoder_q.fc.{k}": torch.randn(shape) for k, shape in projector.items()}
    state |= {"module.encoder_k.conv1.weight": torch.randn(64, 3, 7, 7),
              "module.encoder_k.fc.2.bias": torch.ones(128)}
    state |= {"module.queue": torch.randn(128, 1024), "module.queue_ptr": torch.zeros(1, dtype=torch.long)}
    path = tmp_path / "moco_v2_800ep_pretrain.pth.tar"  # the release is in the legacy (non-zip) format
    ckpt = {"epoch": 800, "arch": "resnet50", "state_dict": state}
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    with caplog.at_level(logging.INFO, logger="compressor"):
        teacher = build_teacher("moco-v2-r50", weights=str(path))
    assert teacher.embed_dim == 2048
    x = _batch(32)
    _same(teacher, ref, x)
    assert len(teacher.info["dropped_keys"]) == 8
    assert all(g in caplog.text for g in ("projector", "key encoder", "queue"))


@pytest.mark.parametrize("full", [False, True], ids=["encoder", "full_with_decoder"])
def test_mae_vit_mean_of_patch_tokens(tmp_path: Path, full: bool) -> None:
    ref = _randomize(timm.create_model(TINY_VIT, num_classes=0))
    model = dict(ref.state_dict())
    if full:
        model |= {"mask_token": torch.randn(1, 1, 96), "decoder_embed.weight": torch.randn(96, 192),
                  "decoder_pos_embed": torch.randn(1, 197, 96), "decoder_norm.weight": torch.randn(96),
                  "decoder_pred.weight": torch.randn(768, 96)}
    args = argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75, norm_pix_loss=True, lr=None)
    path = tmp_path / "mae_pretrain_vit_base.pth"
    torch.save({"model": model, "args": args, "epoch": 799, "optimizer": {"state": {}, "param_groups": []},
                "scaler": {"scale": 1024.0}}, path)
    teacher = build_teacher(_tiny("mae-vit-b16"), weights=str(path))
    x = _batch(224)
    _same(teacher, lambda x: ref.forward_features(x)[:, 1:].mean(1), x)
    assert len(teacher.info["dropped_keys"]) == (5 if full else 0)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny open_clip config (QuickGELU) registered the way users add their own configs."""
    cfg = {"embed_dim": 32, "quick_gelu": True,
           "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 2}}
    path = tmp_path_factory.mktemp("clipcfg") / "tiny-test-clip.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    return "tiny-test-clip"


def test_open_clip_training_checkpoint_drops_text_tower(tiny_clip: str, tmp_path: Path) -> None:
    ref = _randomize(open_clip.create_model(tiny_clip))
    path = tmp_path / "epoch_32.pt"  # open_clip's own training save: DDP prefix inside `state_dict`
    torch.save({"epoch": 32, "name": "run", "state_dict": _prefixed("module.", ref.state_dict())}, path)
    teacher = build_teacher(f"open_clip:{tiny_clip}", weights=str(path))
    x = _batch(64)
    _same(teacher, lambda x: ref.encode_image(x, normalize=True), x)
    dropped = set(teacher.info["dropped_keys"])
    assert {"module.token_embedding.weight", "module.text_projection", "module.logit_scale",
            "module.positional_embedding", "module.transformer.resblocks.0.attn.in_proj_weight"} <= dropped
    assert not any(".visual." in k or k.startswith("module.visual.") for k in dropped)


def test_open_clip_image_size_interpolates_like_open_clip(tiny_clip: str, tmp_path: Path) -> None:
    ref = _randomize(open_clip.create_model(tiny_clip))
    path = tmp_path / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    small = open_clip.create_model(tiny_clip, force_image_size=32).eval()
    open_clip.load_checkpoint(small, str(path))  # open_clip's own loader resizes the position embedding
    teacher = build_teacher(f"open_clip:{tiny_clip}", weights=str(path), image_size=32)
    x = _batch(32)
    _same(teacher, lambda x: small.encode_image(x, normalize=True), x)


class _JitClip(nn.Module):
    """OpenAI's CLIP release layout: a TorchScript archive of the whole model, fp16, with metadata buffers."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        for n, child in clip.named_children():
            self.add_module(n, child)
        for n, p in clip.named_parameters(recurse=False):
            self.register_parameter(n, p)
        for n in ("input_resolution", "context_length", "vocab_size"):
            self.register_buffer(n, torch.tensor(64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_openai_torchscript_archive_needs_trust(tiny_clip: str, tmp_path: Path) -> None:
    ref = _randomize(open_clip.create_model(tiny_clip))
    with torch.no_grad():
        for p in ref.parameters():  # the release is fp16: compare against fp16-rounded weights
            p.copy_(p.half().float())
    x = _batch(64)
    path = tmp_path / "ViT-B-16.pt"
    torch.jit.trace(copy.deepcopy(_JitClip(ref)), x, check_trace=False).half().save(str(path))
    with pytest.raises(CompressorError, match=r"TorchScript.*--trust-checkpoint"):
        build_teacher(f"open_clip:{tiny_clip}", weights=str(path))
    teacher = build_teacher(f"open_clip:{tiny_clip}", weights=str(path), trust_checkpoint=True)
    _same(teacher, lambda x: ref.encode_image(x, normalize=True), x)
    assert {"input_resolution", "context_length", "vocab_size"} <= set(teacher.info["dropped_keys"])


def test_timm_flat_file_with_classifier(tmp_path: Path) -> None:
    ref = _randomize(timm.create_model("resnet18"))
    path = tmp_path / "model.safetensors"
    save_file(ref.state_dict(), str(path))
    teacher = build_teacher("timm:resnet18", weights=str(path))
    x = _batch(32)
    _same(teacher, lambda x: ref.forward_head(ref.forward_features(x), pre_logits=True), x)
    assert teacher.info["dropped_keys"] == ["fc.bias", "fc.weight"] and teacher.embed_dim == 512


def test_run_directory_teacher(tmp_path: Path) -> None:
    student = _randomize(build_student("resnet18", 32))
    save_encoder(student, tmp_path / "run")
    teacher = build_teacher(str(tmp_path / "run"))
    x = _batch(32)
    _same(teacher, student, x)
    assert teacher.spec == student.spec and teacher.info["weights"].endswith("student.safetensors")
    with pytest.raises(CompressorError, match="carries its own weights"):
        build_teacher(str(tmp_path / "run"), weights="x.pth")


def test_frozen_and_stays_in_eval(tmp_path: Path) -> None:
    teacher = build_teacher("timm:resnet18", weights="random")
    assert isinstance(teacher, Encoder) and not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    parent = nn.ModuleDict({"teacher": teacher, "student": nn.Linear(2, 2)})
    parent.train()
    assert parent["student"].training and not any(m.training for m in teacher.modules())


def test_random_weights_are_flagged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="compressor"):
        teacher = build_teacher("moco-v2-r50", weights="random")
    assert teacher.info == {"name": "moco-v2-r50", "weights": "random", "random": True, "dropped_keys": []}
    assert "RANDOM" in caplog.text


OFFICIAL_SHAPES = {  # from shared/CHECKPOINTS.md (open_clip keys without the `visual.` prefix)
    "moco-v3-vit-b16": {"cls_token": [1, 1, 768], "pos_embed": [1, 197, 768],
                        "patch_embed.proj.weight": [768, 3, 16, 16], "blocks.0.attn.qkv.weight": [2304, 768],
                        "blocks.0.mlp.fc1.weight": [3072, 768], "norm.weight": [768]},
    "mae-vit-b16": {"pos_embed": [1, 197, 768], "blocks.11.attn.qkv.weight": [2304, 768], "norm.bias": [768]},
    "clip-vit-b16": {"class_embedding": [768], "positional_embedding": [197, 768], "proj": [768, 512],
                     "conv1.weight": [768, 3, 16, 16],
                     "transformer.resblocks.11.mlp.c_fc.weight": [3072, 768],
                     "transformer.resblocks.0.attn.in_proj_weight": [2304, 768]},
    "clip-vit-l14": {"positional_embedding": [257, 1024], "proj": [1024, 768]},
    "moco-v2-r50": {"conv1.weight": [64, 3, 7, 7], "layer4.2.conv3.weight": [2048, 512, 1, 1]},
    # DINOv2 in timm names at 224 px (the file's pos_embed [1,1370,D] is for 518 px; registers are reg_token)
    "dinov2-vit-s14": {"cls_token": [1, 1, 384], "pos_embed": [1, 257, 384], "blocks.11.ls1.gamma": [384],
                       "patch_embed.proj.weight": [384, 3, 14, 14]},
    "dinov2-vit-s14-reg": {"reg_token": [1, 4, 384], "pos_embed": [1, 256, 384], "blocks.11.ls2.gamma": [384]},
    "dinov2-vit-b14": {"blocks.11.mlp.fc1.weight": [3072, 768], "patch_embed.proj.weight": [768, 3, 14, 14]},
    "dinov2-vit-b14-reg": {"reg_token": [1, 4, 768], "blocks.11.attn.qkv.weight": [2304, 768]},
    "dinov2-vit-l14": {"blocks.23.attn.qkv.weight": [3072, 1024], "norm.weight": [1024]},
    "dinov2-vit-l14-reg": {"reg_token": [1, 4, 1024], "blocks.23.mlp.fc2.weight": [1024, 4096]},
    # DINOv3: storage_tokens -> reg_token, qkv.bias -> q_bias/v_bias, ls1.gamma -> gamma_1
    "dinov3-vit-s16": {"reg_token": [1, 4, 384], "patch_embed.proj.weight": [384, 3, 16, 16],
                       "blocks.11.attn.q_bias": [384], "blocks.11.gamma_1": [384]},
    "dinov3-vit-b16": {"reg_token": [1, 4, 768], "blocks.11.attn.v_bias": [768],
                       "blocks.11.attn.qkv.weight": [2304, 768]},
    "siglip2-vit-b16": {"trunk.pos_embed": [1, 196, 768], "trunk.attn_pool.latent": [1, 1, 768],
                        "trunk.patch_embed.proj.weight": [768, 3, 16, 16]},
}


@pytest.mark.parametrize("spec", list_teachers(), ids=lambda s: s.name)
def test_registered_architectures_match_the_official_files(spec: TeacherSpec) -> None:
    """The real architectures (built on the meta device: shapes only) have the official keys and dims."""
    with torch.device("meta"):
        backbone = FAMILY_BUILDERS[spec.family][0](spec, spec.image_size)
    shapes = {k: list(v.shape) for k, v in backbone.state_dict().items()}
    want = OFFICIAL_SHAPES[spec.name]
    assert {k: shapes.get(k) for k in want} == want
    dim = getattr(backbone, "num_features", None) or getattr(backbone, "output_dim", None) \
        or backbone.trunk.num_features
    assert dim == spec.embed_dim and spec.image_size == 224 and spec.sources
    is_clip = spec.name.startswith("clip-")
    assert spec.normalize == spec.name.startswith(("clip-", "siglip")) and (spec.mean == CLIP_MEAN) == is_clip
    # OpenAI's CLIP weights need QuickGELU (shared/CHECKPOINTS.md)
    assert any(type(m).__name__ == "QuickGELU" for m in backbone.modules()) == is_clip


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


OFFLINE_NAMES = [s.name for s in list_teachers()] + ["timm:resnet18", "open_clip:ViT-B-32:openai"]


@pytest.mark.parametrize("name", OFFLINE_NAMES)
def test_offline_without_weights_fails_fast(
    name: str, empty_caches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(CompressorError, match=r"--teacher-weights PATH.*--teacher-weights random") as err:
        build_teacher(name)
    assert time.monotonic() - start < 5 and "\n" not in str(err.value)


def test_unreachable_network_is_probed_not_retried(
    empty_caches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there: refused at once
    start = time.monotonic()
    with pytest.raises(CompressorError, match=r"unreachable.*--teacher-weights PATH"):
        build_teacher("mae-vit-b16")
    assert time.monotonic() - start < 10


def test_file_for_another_architecture(moco_v3_file: tuple[Path, nn.Module]) -> None:
    with pytest.raises(CompressorError, match="another architecture") as err:
        build_teacher("moco-v2-r50", weights=str(moco_v3_file[0]))
    msg = str(err.value)
    assert "missing keys: conv1.weight" in msg and "unexpected keys: base_encoder.cls_token" in msg


def test_bad_files_through_build_teacher(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"

    class Evil:
        def __reduce__(self) -> tuple:
            return os.system, (f"touch {marker}",)

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "hook": Evil()}, evil)
    with pytest.raises(CompressorError, match="--trust-checkpoint"):
        build_teacher("moco-v2-r50", weights=str(evil))
    assert not marker.exists()
    cut = tmp_path / "cut.pth"
    torch.save({"state_dict": {"w": torch.randn(10_000)}}, cut)
    cut.write_bytes(cut.read_bytes()[:20_000])
    with pytest.raises(CompressorError, match=f"{cut}.*truncated"):
        build_teacher("moco-v2-r50", weights=str(cut))
    with pytest.raises(CompressorError, match="does not exist"):
        build_teacher("moco-v2-r50", weights=str(tmp_path / "missing.pth"))


def test_unknown_names_suggest_close_matches(tmp_path: Path) -> None:
    with pytest.raises(CompressorError, match="did you mean clip-vit-b16"):
        build_teacher("clip-vit-b15")
    with pytest.raises(CompressorError, match="unknown timm model 'resnet5O'; did you mean"):
        build_teacher("timm:resnet5O")
    with pytest.raises(CompressorError, match="unknown open_clip tag"):
        build_teacher("open_clip:ViT-B-16:laion9000", weights="random")
    ckpt = tmp_path / "ckpt.pth"
    ckpt.write_bytes(b"x")
    with pytest.raises(CompressorError, match="--teacher-weights PATH"):
        build_teacher(str(ckpt))
