"""The teacher zoo as data: :class:`TeacherSpec`, the :data:`TEACHERS` registry and its named entries.

Nothing here imports torch, timm or open_clip, so ``compress list teachers`` and the resolution of a name
stay instant; :mod:`compressor.models.teachers` builds a spec into a frozen encoder. A spec is in the shape
of open_clip's ``pretrained.py`` table: which family builds the architecture (``timm`` or ``open_clip``),
where its weights come from, how the official file maps onto it, its embedding and input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compressor.models import _hub
from compressor.models.inputs import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD
from compressor.models.layout import Layout
from compressor.registry import Registry

Floats3 = tuple[float, float, float]
FAMILIES = ("timm", "open_clip")  # the builders in compressor.models.teachers, one per family
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # a hub repo's default files


@dataclass(frozen=True)
class TeacherSpec:
    """One teacher: architecture (``family`` + ``arch``), weights, input, output.

    ``family``: ``timm`` (``timm.create_model(arch, **arch_kwargs)`` without classifier, the model's own
    checkpoint filter on load) or ``open_clip`` (the image tower of open_clip's ``arch``, its position
    embedding resized on load). ``sources`` are tried in order when no ``--teacher-weights`` is given
    (``hf-hub:<repo>/<file>`` or a URL); ``layout`` maps the official file onto the backbone; ``normalize``
    L2-normalises the output. ``embed_dim`` 0 means "whatever the backbone gives" (dynamic ``timm:``
    teachers). ``native_size``: the resolution the weights were trained at when we default to another
    (logged); ``manual``: how to get the file by hand when no source can be fetched (a licence form, say).
    """

    name: str
    description: str
    embed_dim: int
    image_size: int
    mean: Floats3
    std: Floats3
    family: str = "timm"
    sources: tuple[str, ...] = ()
    arch: str = ""
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    layout: Layout = field(default_factory=Layout)
    normalize: bool = False
    native_size: int = 0
    manual: str = ""

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"teacher {self.name}: family {self.family!r} is not one of {', '.join(FAMILIES)}")


# The named zoo beyond the few defined here (DINOv2/DINOv3/SigLIP 2, compressor/models/teacher_zoo.py) and any
# third-party teachers register themselves; the registry imports them at its first lookup (entry points).
TEACHERS: Registry[TeacherSpec] = Registry("teacher", entry_point_group="compressor.teachers")
_CLIP_TEXT = ("token_embedding.*", "positional_embedding", "transformer.*", "ln_final.*", "text_projection",
              "logit_scale", "logit_bias", "text.*", "attn_mask")
_JIT_META = ("input_resolution", "context_length", "vocab_size")
CLIP_LAYOUT = Layout("visual.", (("text tower", _CLIP_TEXT), ("TorchScript metadata", _JIT_META)))
MOCO_V3_LAYOUT = Layout("base_encoder.", (
    ("projector", ("base_encoder.head.*", "base_encoder.fc.*")),
    ("momentum encoder", ("momentum_encoder.*",)),
    ("predictor", ("predictor.*",))))
MOCO_V2_LAYOUT = Layout("encoder_q.", (
    ("projector", ("encoder_q.fc.*",)), ("key encoder", ("encoder_k.*",)), ("queue", ("queue", "queue_ptr"))))
MAE_LAYOUT = Layout("", (("decoder", ("decoder_*", "mask_token")),))


def open_clip_tower(name: str, description: str, arch: str, embed_dim: int, *, hub: str, quick_gelu: bool,
                    url: str = "", mean: Floats3 = CLIP_MEAN, std: Floats3 = CLIP_STD) -> TeacherSpec:
    """A named open_clip teacher written out as data, so that listing or resolving the zoo needs no open_clip
    (the ``clip`` extra); building it does. The values are open_clip's own table: ``open_clip_spec(arch, tag)``
    reads them from open_clip and a test checks each named entry against it."""
    sources = tuple(f"{_hub.HF_PREFIX}{hub}/{f}" for f in OPEN_CLIP_FILES) + ((url,) if url else ())
    return TeacherSpec(name=name, description=description, embed_dim=embed_dim, image_size=224, mean=mean,
                       std=std, family="open_clip", sources=sources, arch=arch,
                       arch_kwargs={"quick_gelu": quick_gelu}, layout=CLIP_LAYOUT, normalize=True)


for _spec in (
    open_clip_tower("clip-vit-b16", "CLIP ViT-B/16 (OpenAI, QuickGELU), normalised image projection", "ViT-B-16",
                    512, hub="timm/vit_base_patch16_clip_224.openai", quick_gelu=True,
                    url="https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9"
                        "e85e4ecb61988df416f/ViT-B-16.pt"),
    open_clip_tower("clip-vit-l14", "CLIP ViT-L/14 (OpenAI, QuickGELU), normalised image projection", "ViT-L-14",
                    768, hub="timm/vit_large_patch14_clip_224.openai", quick_gelu=True,
                    url="https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6"
                        "f7c2e0eca1737a03836/ViT-L-14.pt"),
    TeacherSpec("mae-vit-b16", "MAE ViT-B/16 encoder, mean of patch tokens", 768, 224, IMAGENET_MEAN,
                IMAGENET_STD, sources=("hf-hub:timm/vit_base_patch16_224.mae/model.safetensors",
                                       "hf-hub:timm/vit_base_patch16_224.mae/pytorch_model.bin",
                                       "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth"),
                arch="vit_base_patch16_224", arch_kwargs={"global_pool": "avg", "fc_norm": False},
                layout=MAE_LAYOUT),
    TeacherSpec("moco-v3-vit-b16", "MoCo v3 ViT-B/16 (300 ep) base encoder, CLS token", 768, 224,
                IMAGENET_MEAN, IMAGENET_STD,
                sources=("https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar",),
                arch="vit_base_patch16_224", arch_kwargs={"global_pool": "token"}, layout=MOCO_V3_LAYOUT),
    TeacherSpec("moco-v2-r50", "MoCo v2 ResNet-50 (800 ep) query encoder, pooled", 2048, 224,
                IMAGENET_MEAN, IMAGENET_STD,
                sources=("https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/"
                         "moco_v2_800ep_pretrain.pth.tar",),
                arch="resnet50", layout=MOCO_V2_LAYOUT),
):
    TEACHERS.add(_spec.name, _spec)


def list_teachers() -> list[TeacherSpec]:
    """The named teachers (``timm:``, ``open_clip:`` and run directories are resolved on demand)."""
    return [TEACHERS.get(n) for n in TEACHERS.names()]
