"""Student zoo: any timm model, used as an encoder of its pooled features (``num_classes=0``).

A student is a timm architecture name (``resnet18``) or a timm model repository on the Hugging Face hub,
``hf-hub:org/name`` as ``timm.create_model`` spells it: its ``config.json`` names the architecture, its
``model_args`` and its input (size, mean/std), and the student starts from the repository's weights. The
name stays the student's ``arch`` (``student.json``, ``run.json``), so eval, export and a resumed run rebuild
it from the same repository, out of the local cache when offline (:func:`compressor.models._hub.hub_model`).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import timm
from torch import nn

from compressor.errors import CompressorError
from compressor.models import _hub
from compressor.models.encoder import Encoder, InputSpec, output_width
from compressor.models.stems import apply_small_stem, resolve_stem, small_vit_patch, vit_patch
from compressor.registry import unknown_name_message

log = logging.getLogger("compressor")


def list_students(pattern: str = "") -> list[str]:
    """Names of timm architectures usable as students (``pattern`` is a timm wildcard, e.g. ``resnet*``)."""
    return timm.list_models(pattern or "")


def create_timm_backbone(arch: str, image_size: int | None = None, *, stem: str = "imagenet",
                         **kwargs) -> nn.Module:
    """A timm model with its classifier removed; ``img_size`` is passed to models that take it (ViTs).

    ``stem="small"`` gives a CNN the small-input stem (``compressor.models.stems``); ``"auto"`` does so
    below 96 px where the architecture allows. The resolved value is ``model.stem_kind``.

    ``arch`` may be a hub model, ``hf-hub:org/name``: the architecture, ``model_args`` and input of its
    ``config.json``, with random weights (``pretrained`` is ignored: :func:`build_student` loads the
    repository's own weights), always with the stem those weights were made for.
    """
    hub_cfg: dict[str, Any] = {}
    if _hub.is_hub_model(arch):
        arch, image_size, stem, kwargs, hub_cfg = _hub_architecture(arch, image_size, stem, kwargs)
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
    if hub_cfg:  # the repository's input (size, mean/std) and classifier name, over timm's defaults for the arch
        cfg = {**(getattr(model, "pretrained_cfg", None) or {}), **hub_cfg, "num_classes": 0}
        object.__setattr__(model, "pretrained_cfg", cfg)  # a plain dict (nn.Module's setter is typed for tensors)
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


def _hub_architecture(name: str, image_size: int | None, stem: str, kwargs: dict[str, Any]
                      ) -> tuple[str, int | None, str, dict[str, Any], dict[str, Any]]:
    """What :func:`create_timm_backbone` builds for ``hf-hub:org/name``: (architecture, size, stem, kwargs,
    the repository's ``pretrained_cfg``)."""
    hub = _hub.hub_model(name, weights=False)
    if not timm.is_model(hub.arch):
        raise CompressorError(f"{name}'s config.json names the architecture {hub.arch!r}, which timm "
                              f"{timm.__version__} does not know; upgrade timm (pip install -U timm)")
    if stem == "small":
        raise CompressorError(f"--stem small would replace the stem that the weights of {name} were made for; "
                              "pass --stem imagenet (or auto) for a hub student")
    if stem == "auto" and image_size is not None and image_size < 96:
        log.info("student %s: --stem auto keeps the ImageNet stem its weights were made for", name)
    args = {k: v for k, v in hub.model_args.items() if k not in ("num_classes", "pretrained")}
    size = args.pop("img_size", None)
    if image_size is None and size is not None:  # a ViT exported at its training size
        image_size = int(size if isinstance(size, int) else size[-1])
    kwargs = {**args, **{k: v for k, v in kwargs.items() if k != "pretrained"}}
    return hub.arch, image_size, "imagenet", kwargs, {**hub.pretrained_cfg, "hf_hub_id": hub.repo, "source": "hf-hub"}


def timm_input_spec(model: nn.Module, image_size: int | None = None) -> InputSpec:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    size = image_size or int(cfg.get("input_size", (3, 224, 224))[-1])
    m0, m1, m2 = (float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    s0, s1, s2 = (float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    return InputSpec(size, (m0, m1, m2), (s0, s1, s2))


def build_student(name: str, image_size: int | None = None, *, stem: str = "imagenet",
                  pretrained: bool | None = None) -> Encoder:
    """Build a trainable student encoder from a timm architecture name or a hub model.

    Args:
        name: a timm model name (``resnet18``, ``vit_tiny_patch16_224``, ``efficientnet_b0`` ...) or a timm
            repository on the Hugging Face hub, ``hf-hub:org/name``.
        image_size: input resolution; defaults to the model's pretrained config (the repository's).
        stem: ``imagenet`` (timm's own), ``small`` (3×3 stride-1 stem, no max-pool) or ``auto``
            (``small`` below 96 px where possible); see ``compressor.models.stems``. A hub model keeps the
            stem of its weights.
        pretrained: start from timm's weights (needs the network or timm's cache). ``None`` (the default):
            a hub model starts from its repository's weights, an architecture name from random ones.
    """
    hub = _hub.is_hub_model(name)
    backbone = create_timm_backbone(name, image_size, stem=stem, pretrained=bool(pretrained) and not hub)
    spec = timm_input_spec(backbone, image_size)
    enc = Encoder(backbone, name=name, arch=name, spec=spec, embed_dim=output_width(backbone, spec.image_size),
                  stem=str(backbone.stem_kind))
    if hub and pretrained is not False:
        from compressor.models.student_weights import load_student_weights

        # recorded in run.json like --student-weights (nn.Module's setter is typed for tensors)
        object.__setattr__(enc, "weights_info", load_student_weights(enc, "pretrained"))
    return enc
