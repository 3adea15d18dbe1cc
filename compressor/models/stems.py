"""Small-input stems: the authors' change to a CNN student below ~100 px.

An ImageNet stem (a stride-2 7×7 convolution and a stride-2 max-pool) divides the side by 4 before
the first stage, so a ResNet fed 32 px images has a 1×1 map at its last stage (2×2 at 64 px) and
learns little. Every author with small-image code swaps the stem instead (METHODS.md, "Small
images"): MV-MR's CIFAR setting uses a 3×3 stride-1 ``conv1``; DoGo's ``cifar_resnet`` and CSS's
CIFAR ResNets use a 3×3 stride-1 stem and no max-pool. ``small`` does that:

* timm ResNets (``resnet*``, incl. the deep ``t``/``d`` stems): a 7×7 stride-2 ``conv1`` becomes a
  3×3 stride-1 convolution with the same width; a deep stem keeps its convolutions with the first
  one's stride set to 1; the max-pool is removed. Total stride 32 → 8.
* EfficientNet, MobileNet v2/v3/v4, GhostNet (``conv_stem``) and RegNet (``stem.conv``): the stem
  convolution's stride 2 → 1. Total stride 32 → 16 (these nets have no max-pool to remove).

The cost: a ×16 (ResNets) or ×4 (the others) larger compute per image at a given input size.

* ViTs (timm ``VisionTransformer``: a ``patch_embed`` with a ``patch_size``), on an explicit ``small``
  only: the same architecture built with 4× smaller patches (16 → 4 px, the CIFAR ViTs' patch), so a
  32 px image is 8×8 tokens instead of 2×2. The cost: ×16 tokens. ``auto`` keeps a ViT's patches.

``auto`` (the default of ``--stem``) picks ``small`` below :data:`SMALL_INPUT_BELOW` px for an
architecture this module can adapt and ``imagenet`` otherwise: the authors switch below ~100 px, and
above it the stock stem leaves a last-stage map of ≥ 3×3. The resolved choice is recorded in
``student.json`` so that eval, export and bench rebuild exactly the trained model.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from compressor.errors import CompressorError

Stem = Literal["auto", "imagenet", "small"]
STEMS: tuple[str, ...] = ("auto", "imagenet", "small")
SMALL_INPUT_BELOW = 96  # px; the authors' small-image code paths start "below ~100 px"


def _stem_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d] | None:
    """The (parent, attribute, conv) of the first stride-2 stem convolution this module knows."""
    conv1 = getattr(model, "conv1", None)
    if isinstance(conv1, nn.Conv2d) and hasattr(model, "maxpool"):
        return model, "conv1", conv1
    if isinstance(conv1, nn.Sequential) and hasattr(model, "maxpool"):  # timm's deep stems
        first = conv1[0]
        if isinstance(first, nn.Conv2d):
            return conv1, "0", first
    stem = getattr(model, "conv_stem", None)
    if isinstance(stem, nn.Conv2d):
        return model, "conv_stem", stem
    parent = getattr(model, "stem", None)
    inner = getattr(parent, "conv", None)
    if isinstance(parent, nn.Module) and isinstance(inner, nn.Conv2d) and inner.kernel_size == (3, 3):  # RegNet's
        return parent, "conv", inner
    return None


def vit_patch(model: nn.Module) -> int | None:
    """The patch side of a timm ViT (``patch_embed.patch_size``), or ``None`` for other models."""
    size = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    if size is None:
        return None
    return int(size[0] if isinstance(size, tuple | list) else size)


def small_vit_patch(patch: int, arch: str) -> int:
    """The ``small`` stem's patch for a ViT of patch ``patch``: a quarter of it, at least 2 px."""
    if patch < 8:
        raise CompressorError(f"--stem small cannot shrink {arch!r}'s {patch}px patches further; use --stem imagenet")
    return patch // 4


def can_adapt(model: nn.Module) -> bool:
    found = _stem_conv(model)
    return found is not None and found[2].stride != (1, 1)


def resolve_stem(stem: str, model: nn.Module, image_size: int) -> str:
    """``auto`` → ``small`` below :data:`SMALL_INPUT_BELOW` px when the architecture allows, else ``imagenet``."""
    if stem not in STEMS:
        raise CompressorError(f"unknown stem {stem!r}; use auto, imagenet or small")
    if stem == "auto":
        return "small" if image_size < SMALL_INPUT_BELOW and can_adapt(model) else "imagenet"
    return stem


def apply_small_stem(model: nn.Module, arch: str) -> nn.Module:
    """Give ``model`` the small-input stem in place (see the module docstring); returns it."""
    found = _stem_conv(model)
    if found is None or found[2].stride == (1, 1):
        raise CompressorError(f"--stem small cannot adapt {arch!r}: it knows timm ResNets, EfficientNets, "
                              "MobileNets, GhostNets and RegNets; use --stem imagenet (or a larger --image-size)")
    parent, attr, conv = found
    if conv.kernel_size == (7, 7):  # the ResNet stem: 3×3 stride 1, same width
        new = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=1, padding=1, bias=conv.bias is not None)
        setattr(parent, attr, new)
    else:
        conv.stride = (1, 1)
    if isinstance(getattr(model, "maxpool", None), nn.Module):
        model.maxpool = nn.Identity()
    return model
