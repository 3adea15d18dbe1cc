"""Student zoo: any timm model, used as an encoder of its pooled features (``num_classes=0``)."""

from __future__ import annotations

import contextlib

import timm
from torch import nn

from compressor.errors import CompressorError
from compressor.models.encoder import Encoder, InputSpec, output_width
from compressor.models.stems import apply_small_stem, resolve_stem, small_vit_patch, vit_patch
from compressor.registry import unknown_name_message


def list_students(pattern: str = "") -> list[str]:
    """Names of timm architectures usable as students (``pattern`` is a timm wildcard, e.g. ``resnet*``)."""
    return timm.list_models(pattern or "")


def create_timm_backbone(arch: str, image_size: int | None = None, *, stem: str = "imagenet",
                         **kwargs) -> nn.Module:
    """A timm model with its classifier removed; ``img_size`` is passed to models that take it (ViTs).

    ``stem="small"`` gives a CNN the small-input stem (``compressor.models.stems``); ``"auto"`` does so
    below 96 px where the architecture allows. The resolved value is ``model.stem_kind``.
    """
    base = arch.split(".")[0]
    if base not in timm.list_models():
        raise CompressorError(unknown_name_message("student", arch, timm.list_models()))
    kwargs.setdefault("num_classes", 0)
    model = None
    if image_size is not None:
        with contextlib.suppress(TypeError):  # CNNs take any size and have no img_size argument
            model = timm.create_model(arch, img_size=image_size, **kwargs)
    if model is None:
        model = timm.create_model(arch, **kwargs)
    size = image_size or int((getattr(model, "pretrained_cfg", {}) or {}).get("input_size", (3, 224, 224))[-1])
    patch = vit_patch(model)
    if stem == "small" and patch is not None:  # a ViT: the same network on 4x smaller patches (asked for only)
        model = timm.create_model(arch, img_size=size, patch_size=small_vit_patch(patch, arch), **kwargs)
        kind = "small"
    else:
        kind = resolve_stem(stem, model, size)
        if kind == "small":
            apply_small_stem(model, arch)
    object.__setattr__(model, "stem_kind", kind)  # a plain attribute (nn.Module's setter is typed for tensors)
    return model


def timm_input_spec(model: nn.Module, image_size: int | None = None) -> InputSpec:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = image_size or int(cfg.get("input_size", (3, 224, 224))[-1])
    m0, m1, m2 = (float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    s0, s1, s2 = (float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    return InputSpec(size, (m0, m1, m2), (s0, s1, s2))


def build_student(name: str, image_size: int | None = None, *, stem: str = "imagenet",
                  pretrained: bool = False) -> Encoder:
    """Build a trainable student encoder from a timm architecture name.

    Args:
        name: a timm model name (``resnet18``, ``vit_tiny_patch16_224``, ``efficientnet_b0`` ...).
        image_size: input resolution; defaults to the model's pretrained config.
        stem: ``imagenet`` (timm's own), ``small`` (3×3 stride-1 stem, no max-pool) or ``auto``
            (``small`` below 96 px where possible); see ``compressor.models.stems``.
        pretrained: start from timm's weights (needs the network or timm's cache).
    """
    backbone = create_timm_backbone(name, image_size, stem=stem, pretrained=pretrained)
    spec = timm_input_spec(backbone, image_size)
    return Encoder(backbone, name=name, arch=name, spec=spec, embed_dim=output_width(backbone, spec.image_size),
                   stem=str(backbone.stem_kind))
