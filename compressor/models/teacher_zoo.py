"""The self-supervised and CLIP-style teachers most users distill from today: DINOv2, DINOv3, SigLIP 2.

Each entry reads the authors' own checkpoint layout from a local file (``--teacher-weights``) as well as
timm's hub copy, and runs at 224 px by default (logged, with the native size and its cost):

- ``dinov2-vit-{s,b,l}14[-reg]``: facebookresearch/dinov2's ``dinov2_vit?14[_reg4]_pretrain.pth``, a flat
  state dict with ``mask_token``, ``ls1.gamma`` and ``pos_embed`` for 518 px (``register_tokens`` in the
  ``-reg`` files). timm's own filter converts it (drops ``mask_token``, moves the registers to
  ``reg_token``, resamples ``pos_embed`` to the 224 px grid). Embedding: the CLS token after the norm.
- ``dinov3-vit-{s,b}16``: facebookresearch/dinov3's ``dinov3_vit?16_pretrain_lvd1689m-*.pth``, flat, with
  ``storage_tokens``, ``qkv.bias`` + ``qkv.bias_mask``, ``rope_embed.periods``; built as timm's ``_qkvb``
  variant so that the q/v biases of the file land (timm's plain variant drops them). RoPE: any size.
  The weights are licence-gated, so the error names the form and ``HF_TOKEN``.
- ``siglip2-vit-b16``: open_clip's ``ViT-B-16-SigLIP2`` (``webli``) file, ``visual.trunk.*`` with the text
  tower dropped; embedding: the attention-pooled, L2-normalised image feature.
"""

from __future__ import annotations

from compressor.models.inputs import IMAGENET_MEAN, IMAGENET_STD
from compressor.models.layout import Layout
from compressor.models.teacher_specs import TEACHERS, TeacherSpec, open_clip_tower

_DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vit{s}14/dinov2_vit{s}14{reg}_pretrain.pth"
_DINOV3_FORM = "https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/"
_DINOV3_FILES = {"s": "dinov3_vits16_pretrain_lvd1689m-08c60483.pth",
                 "b": "dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth"}
_TIMM_SIZE = {"s": "small", "b": "base", "l": "large"}
_DIM = {"s": 384, "b": 768, "l": 1024}


def dinov2_spec(size: str, reg: bool) -> TeacherSpec:
    arch = f"vit_{_TIMM_SIZE[size]}_patch14{'_reg4' if reg else ''}_dinov2"
    return TeacherSpec(
        name=f"dinov2-vit-{size}14{'-reg' if reg else ''}",
        description=f"DINOv2 ViT-{size.upper()}/14{' with 4 registers' if reg else ''}, CLS token "
                    "(224 px; trained at 518)",
        embed_dim=_DIM[size], image_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        sources=(f"hf-hub:timm/{arch}.lvd142m/model.safetensors",
                 _DINOV2_URL.format(s=size, reg="_reg4" if reg else "")),
        arch=arch, arch_kwargs={"global_pool": "token"}, layout=Layout(), native_size=518)


def dinov3_spec(size: str) -> TeacherSpec:
    arch = f"vit_{_TIMM_SIZE[size]}_patch16_dinov3_qkvb"
    return TeacherSpec(
        name=f"dinov3-vit-{size}16", description=f"DINOv3 ViT-{size.upper()}/16 (LVD-1689M), CLS token",
        embed_dim=_DIM[size], image_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        sources=(f"hf-hub:timm/{arch}.lvd1689m/model.safetensors",),
        arch=arch, arch_kwargs={"global_pool": "token"}, layout=Layout(),
        manual=f"request the file {_DINOV3_FILES[size]} at {_DINOV3_FORM} (DINOv3 licence)")


def _register() -> None:
    specs = [dinov2_spec(s, reg) for s in "sbl" for reg in (False, True)]
    specs += [dinov3_spec(s) for s in "sb"]
    specs.append(open_clip_tower("siglip2-vit-b16", "SigLIP 2 ViT-B/16 (WebLI), attention-pooled, normalised",
                                 "ViT-B-16-SigLIP2", 768, hub="timm/ViT-B-16-SigLIP2", quick_gelu=False,
                                 mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    for spec in specs:
        TEACHERS.add(spec.name, spec)


_register()
