"""The small-input stem: what it changes in each family, when ``auto`` picks it, and that runs rebuild it."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from compressor.errors import CompressorError
from compressor.models.saved import load_encoder, save_encoder
from compressor.models.stems import SMALL_INPUT_BELOW, small_vit_patch
from compressor.models.students import build_student


def _last_map(arch: str, size: int, stem: str) -> tuple[int, int]:
    enc = build_student(arch, size, stem=stem).eval()
    with torch.no_grad():
        return tuple(enc.backbone.forward_features(torch.zeros(1, 3, size, size)).shape[-2:])


def test_resnet_small_stem_is_3x3_stride_1_without_max_pool() -> None:
    bb = build_student("resnet18", 32, stem="small").backbone
    assert isinstance(bb.conv1, nn.Conv2d)
    assert bb.conv1.kernel_size == (3, 3) and bb.conv1.stride == (1, 1) and bb.conv1.out_channels == 64
    assert isinstance(bb.maxpool, nn.Identity)
    # ImageNet stem at 32 px: a 1×1 last stage; the small stem keeps 4×4 (total stride 8).
    assert _last_map("resnet18", 32, "imagenet") == (1, 1)
    assert _last_map("resnet18", 32, "small") == (4, 4)


def test_deep_stem_and_conv_stem_families() -> None:
    deep = build_student("resnet10t", 32, stem="small").backbone
    assert deep.conv1[0].stride == (1, 1) and isinstance(deep.maxpool, nn.Identity)
    assert _last_map("resnet10t", 32, "small") == (4, 4)
    for arch in ("efficientnet_b0", "mobilenetv3_large_100"):
        bb = build_student(arch, 32, stem="small").backbone
        assert bb.conv_stem.stride == (1, 1)
        assert _last_map(arch, 32, "small") == (2, 2)  # total stride 32 → 16
    assert build_student("regnety_008", 32, stem="small").backbone.stem.conv.stride == (1, 1)


def test_auto_switches_below_the_threshold_only_where_it_can() -> None:
    assert build_student("resnet18", SMALL_INPUT_BELOW - 1, stem="auto").stem == "small"
    assert build_student("resnet18", SMALL_INPUT_BELOW, stem="auto").stem == "imagenet"
    assert build_student("vit_tiny_patch16_224", 32, stem="auto").stem == "imagenet"
    assert build_student("convnext_atto", 32, stem="auto").stem == "imagenet"


def test_unadaptable_architectures_fail_clearly() -> None:
    with pytest.raises(CompressorError, match="--stem imagenet"):
        build_student("convnext_atto", 32, stem="small")
    with pytest.raises(CompressorError, match="cannot shrink .* 4px patches further; use --stem imagenet"):
        small_vit_patch(4, "a_vit_patch4")
    with pytest.raises(CompressorError, match="auto, imagenet or small"):
        build_student("resnet18", 32, stem="tiny")


def test_a_vit_asked_for_the_small_stem_gets_quarter_patches() -> None:
    """``--stem small`` on a ViT: 16 px patches become 4 px ones, so 32 px is 8x8 tokens (CIFAR ViTs)."""
    torch.manual_seed(0)
    enc = build_student("vit_tiny_patch16_224", 32, stem="small")
    assert enc.stem == "small" and tuple(enc.backbone.patch_embed.patch_size) == (4, 4)
    tokens = enc.backbone.forward_features(torch.randn(2, 3, 32, 32))
    assert tokens.shape[1] == enc.backbone.num_prefix_tokens + 64
    assert enc(torch.randn(2, 3, 32, 32)).shape == (2, 192)


def test_saved_run_rebuilds_the_trained_stem(tmp_path) -> None:
    torch.manual_seed(0)
    enc = build_student("resnet10t", 32, stem="small").eval()
    save_encoder(enc, tmp_path)
    assert json.loads((tmp_path / "student.json").read_text())["stem"] == "small"
    back = load_encoder(tmp_path)
    assert back.stem == "small"
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(x), enc(x), rtol=0, atol=0)
