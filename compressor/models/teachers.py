"""Teacher zoo: frozen pretrained encoders by name (``clip-vit-b16``, ``timm:<name>``, a run directory ...).

A :class:`TeacherSpec` is data in the shape of open_clip's ``pretrained.py`` table: how to build the
architecture, where its weights come from, its embedding and input. :func:`build_teacher` builds the
random architecture, reads the weights (download, ``--teacher-weights PATH`` or ``random``), maps the
official layout onto it (:mod:`compressor.models.checkpoints`) and loads strictly. See docs/teachers.md.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import timm
import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.models import get_pretrained_cfg
from torch import Tensor, nn

from compressor.errors import CompressorError
from compressor.models import _hub
from compressor.models.checkpoints import Layout, describe_dropped, load_strict, read_state_dict, remap
from compressor.models.encoder import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, Encoder, InputSpec
from compressor.models.saved import load_encoder
from compressor.models.students import create_timm_backbone
from compressor.registry import Registry, unknown_name_message
from compressor.rundir import RunDir
from compressor.utils.extras import require

log = logging.getLogger("compressor")
Floats3 = tuple[float, float, float]


def build_timm(spec: TeacherSpec, image_size: int) -> nn.Module:
    """A timm model without classifier; ViTs are built at ``image_size`` (their pos-embed is resampled)."""
    return create_timm_backbone(spec.arch, image_size, **spec.arch_kwargs)


def adapt_timm(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Run the model's own timm ``checkpoint_filter_fn`` (pos-embed resampling, key conversions)."""
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    return filter_fn(state, model) if filter_fn is not None else state


OPEN_CLIP_USE = "the CLIP and SigLIP teachers (open_clip image towers)"
OPEN_CLIP_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # a hub repo's default files


def _open_clip_config(arch: str) -> dict[str, Any]:
    open_clip = require("open_clip", OPEN_CLIP_USE)
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise CompressorError(unknown_name_message("open_clip architecture", arch, open_clip.list_models()))
    return cfg


def build_open_clip(spec: TeacherSpec, image_size: int) -> nn.Module:
    """The image tower alone (``model.visual``) of an open_clip architecture; no text tower is built."""
    cfg = _open_clip_config(spec.arch)
    from open_clip.model import _build_vision_tower

    vision_cfg = {**cfg["vision_cfg"], "image_size": image_size}
    quick_gelu = bool(spec.arch_kwargs.get("quick_gelu", cfg.get("quick_gelu", False)))
    tower = _build_vision_tower(cfg["embed_dim"], vision_cfg, quick_gelu=quick_gelu)
    if hasattr(tower, "trunk") and hasattr(tower, "set_input_size"):
        tower.set_input_size(image_size)  # open_clip builds timm towers (SigLIP) at timm's default size
    return tower


def adapt_open_clip(state: dict[str, Tensor], visual: nn.Module) -> dict[str, Tensor]:
    """Interpolate the position embedding to the tower's grid: open_clip's own ``resize_pos_embed``, or
    timm's resampling for timm towers (SigLIP's ``trunk.pos_embed``)."""
    trunk = getattr(visual, "trunk", None)
    if "trunk.pos_embed" in state and trunk is not None:
        pos = state["trunk.pos_embed"]
        if pos.shape != trunk.pos_embed.shape:
            prefix = 0 if getattr(trunk, "no_embed_class", False) else trunk.num_prefix_tokens
            pos = resample_abs_pos_embed(pos, list(trunk.patch_embed.grid_size), num_prefix_tokens=prefix)
        return {**state, "trunk.pos_embed": pos}
    if "positional_embedding" not in state:
        return state
    require("open_clip", OPEN_CLIP_USE)
    from open_clip.model import resize_pos_embed

    wrapped = {"visual.positional_embedding": state["positional_embedding"]}
    resize_pos_embed(wrapped, SimpleNamespace(visual=visual))
    return {**state, "positional_embedding": wrapped["visual.positional_embedding"]}


Builder = Callable[["TeacherSpec", int], nn.Module]
Adapter = Callable[[dict[str, Tensor], nn.Module], dict[str, Tensor]]


@dataclass(frozen=True)
class TeacherSpec:
    """One teacher: architecture (``builder(spec, image_size)`` → random backbone), weights, input, output.

    ``sources`` are tried in order when no ``--teacher-weights`` is given (``hf-hub:<repo>/<file>`` or a
    URL); ``layout`` maps the official file onto the backbone; ``normalize`` L2-normalises the output.
    ``embed_dim`` 0 means "whatever the backbone gives" (dynamic ``timm:`` teachers). ``native_size``: the
    resolution the weights were trained at when we default to another (logged); ``manual``: how to get
    the file by hand when no source can be fetched (a licence form, say).
    """

    name: str
    description: str
    embed_dim: int
    image_size: int
    mean: Floats3
    std: Floats3
    builder: Builder
    sources: tuple[str, ...] = ()
    arch: str = ""
    arch_kwargs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    layout: Layout = field(default_factory=Layout)
    adapt: Adapter = adapt_timm
    normalize: bool = False
    native_size: int = 0
    manual: str = ""


class TeacherEncoder(Encoder):
    """A frozen teacher; ``info`` records its weights for the run metadata."""

    def __init__(
        self, backbone: nn.Module, *, normalize: bool = False, info: dict[str, Any], **kw: Any
    ) -> None:
        super().__init__(backbone, **kw)
        self.normalize = normalize
        self.info = info

    def forward(self, images: Tensor) -> Tensor:
        z = self.backbone(images)
        return F.normalize(z, dim=-1) if self.normalize else z


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


def open_clip_spec(
    arch: str, tag: str = "", *, name: str | None = None, description: str = ""
) -> TeacherSpec:
    """Spec of ``open_clip:<arch>:<tag>``; the tag decides QuickGELU (OpenAI weights) and mean/std."""
    cfg = _open_clip_config(arch)
    open_clip = require("open_clip", OPEN_CLIP_USE)
    pre = open_clip.get_pretrained_cfg(arch, tag) if tag else {}
    if tag and not pre:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise CompressorError(unknown_name_message(f"open_clip tag for {arch}", tag, tags))
    hub = pre.get("hf_hub", "")  # "org/repo/" (default file names) or "org/repo/file"
    repo, file = (hub.rstrip("/"), "") if hub.endswith("/") else hub.rpartition("/")[::2]
    files = (file,) if file else OPEN_CLIP_FILES
    sources = tuple(f"{_hub.HF_PREFIX}{repo}/{f}" for f in files if repo)
    sources += (pre["url"],) if pre.get("url") else ()
    size = cfg["vision_cfg"].get("image_size", 224)
    return TeacherSpec(
        name=name or f"open_clip:{arch}" + (f":{tag}" if tag else ""),
        description=description or f"open_clip {arch} image tower ({tag or 'no pretrained tag'})",
        embed_dim=int(cfg["embed_dim"]), image_size=int(size[0] if isinstance(size, (list, tuple)) else size),
        mean=tuple(pre.get("mean", CLIP_MEAN)), std=tuple(pre.get("std", CLIP_STD)),
        builder=build_open_clip, sources=sources, arch=arch,
        arch_kwargs={"quick_gelu": bool(pre.get("quick_gelu", cfg.get("quick_gelu", False)))},
        layout=CLIP_LAYOUT, adapt=adapt_open_clip, normalize=True)


def open_clip_tower(name: str, description: str, arch: str, embed_dim: int, *, hub: str, quick_gelu: bool,
                    url: str = "", mean: Floats3 = CLIP_MEAN, std: Floats3 = CLIP_STD) -> TeacherSpec:
    """A named open_clip teacher written out as data, so that listing or resolving the zoo needs no open_clip
    (the ``clip`` extra); building it does. The values are open_clip's own table: ``open_clip_spec(arch, tag)``
    reads them from open_clip and a test checks each named entry against it."""
    sources = tuple(f"{_hub.HF_PREFIX}{hub}/{f}" for f in OPEN_CLIP_FILES) + ((url,) if url else ())
    return TeacherSpec(name=name, description=description, embed_dim=embed_dim, image_size=224, mean=mean,
                       std=std, builder=build_open_clip, sources=sources, arch=arch,
                       arch_kwargs={"quick_gelu": quick_gelu}, layout=CLIP_LAYOUT, adapt=adapt_open_clip,
                       normalize=True)


def timm_spec(model_name: str) -> TeacherSpec:
    """Spec of ``timm:<name>``: pooled features, input size/mean/std and weights from its pretrained_cfg."""
    if not timm.is_model(model_name):
        raise CompressorError(unknown_name_message("timm model", model_name, timm.list_models()))
    cfg = get_pretrained_cfg(model_name)
    sources: tuple[str, ...] = ()
    classifier: tuple[str, ...] = ()
    if cfg is not None:
        files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
        sources = tuple(f"{_hub.HF_PREFIX}{cfg.hf_hub_id}/{f}" for f in files if cfg.hf_hub_id)
        sources += (cfg.url,) if isinstance(cfg.url, str) and cfg.url else ()
        classifier = (cfg.classifier,) if isinstance(cfg.classifier, str) else tuple(cfg.classifier or ())
    return TeacherSpec(
        name=f"timm:{model_name}", description=f"timm {model_name}, pooled features", embed_dim=0,
        image_size=int(cfg.input_size[-1]) if cfg else 224,
        mean=cast(Floats3, tuple(cfg.mean)) if cfg else IMAGENET_MEAN,
        std=cast(Floats3, tuple(cfg.std)) if cfg else IMAGENET_STD,
        builder=build_timm, sources=sources, arch=model_name,
        layout=Layout("", (("classifier", tuple(f"{c}.*" for c in classifier)),)))


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
                IMAGENET_STD, build_timm,
                ("hf-hub:timm/vit_base_patch16_224.mae/model.safetensors",
                 "hf-hub:timm/vit_base_patch16_224.mae/pytorch_model.bin",
                 "https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth"),
                "vit_base_patch16_224", {"global_pool": "avg", "fc_norm": False}, MAE_LAYOUT),
    TeacherSpec("moco-v3-vit-b16", "MoCo v3 ViT-B/16 (300 ep) base encoder, CLS token", 768, 224,
                IMAGENET_MEAN, IMAGENET_STD, build_timm,
                ("https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar",),
                "vit_base_patch16_224", {"global_pool": "token"}, MOCO_V3_LAYOUT),
    TeacherSpec("moco-v2-r50", "MoCo v2 ResNet-50 (800 ep) query encoder, pooled", 2048, 224,
                IMAGENET_MEAN, IMAGENET_STD, build_timm,
                ("https://dl.fbaipublicfiles.com/moco/moco_checkpoints/moco_v2_800ep/"
                 "moco_v2_800ep_pretrain.pth.tar",),
                "resnet50", {}, MOCO_V2_LAYOUT),
):
    TEACHERS.add(_spec.name, _spec)


def list_teachers() -> list[TeacherSpec]:
    """The named teachers (``timm:``, ``open_clip:`` and run directories are resolved on demand)."""
    return [TEACHERS.get(n) for n in TEACHERS.names()]


def resolve_teacher(name: str) -> TeacherSpec | Path:
    """A registered name, ``timm:<name>``, ``open_clip:<arch>[:<tag>]``, or a run directory path."""
    if name in TEACHERS:
        return TEACHERS.get(name)
    if name.startswith("timm:"):
        return timm_spec(name[len("timm:"):])
    if name.startswith("open_clip:"):
        arch, _, tag = name[len("open_clip:"):].partition(":")
        return open_clip_spec(arch, tag)
    path = Path(name).expanduser()
    if path.is_file():
        raise CompressorError(f"teacher {name!r} is a file: name the teacher (e.g. moco-v3-vit-b16) and pass "
                              "the checkpoint as --teacher-weights PATH")
    if path.is_dir() or "/" in name or "\\" in name:
        return path
    raise CompressorError(unknown_name_message("teacher", name, TEACHERS.names())
                          + "; other forms: timm:<name>, open_clip:<arch>:<tag>, a run directory")


def _run_dir_teacher(path: Path, weights: str | None, image_size: int | None) -> Encoder:
    if weights is not None:
        raise CompressorError(f"teacher {path} is a run directory and carries its own weights; "
                              "drop --teacher-weights")
    enc = load_encoder(path)
    if image_size is not None and image_size != enc.spec.image_size:
        raise CompressorError(f"teacher {path} was trained at {enc.spec.image_size} px; drop "
                              f"--teacher-image-size {image_size} (a run-directory teacher keeps its size)")
    weights_file = str(RunDir(path).weights_path())
    info = {"name": str(path), "weights": weights_file, "random": False, "dropped_keys": []}
    teacher = TeacherEncoder(enc.backbone, info=info, name=str(path), spec=enc.spec, embed_dim=enc.embed_dim,
                             arch=enc.arch)
    return teacher.freeze()


def _output_dim(backbone: nn.Module) -> int:
    """Embedding width of a timm model, an open_clip tower, or an open_clip timm tower without projection."""
    dim = getattr(backbone, "head_hidden_size", None) or getattr(backbone, "num_features", 0) \
        or getattr(backbone, "output_dim", 0)
    trunk, head = getattr(backbone, "trunk", None), getattr(backbone, "head", None)
    if not dim and trunk is not None and (head is None or not list(head.parameters())):
        dim = trunk.num_features  # SigLIP: timm_proj "none", the pooled trunk feature is the embedding
    return int(dim or 0)


def _log_size(spec: TeacherSpec, size: int, *, chosen: bool) -> None:
    """Say which input size the teacher runs at, and what the native one would cost."""
    why = "--teacher-image-size" if chosen else "its default"
    native = spec.native_size
    if native and native != size:
        log.info("teacher %s: %d px input (%s); its weights were trained at %d px, ~%.1fx the compute per "
                 "image: pass --teacher-image-size %d for that", spec.name, size, why, native,
                 (native / size) ** 2, native)
    else:
        log.info("teacher %s: %d px input (%s)", spec.name, size, why)


def build_teacher(
    name: str | TeacherSpec,
    weights: str | None = None,
    *,
    image_size: int | None = None,
    trust_checkpoint: bool = False,
) -> Encoder:
    """Build a frozen teacher encoder.

    Args:
        name: a registered name (:func:`list_teachers`), ``timm:<name>``, ``open_clip:<arch>:<tag>``,
            a run directory of ours, or a :class:`TeacherSpec` (e.g. a smaller variant of a registered one).
        weights: ``None`` for the pretrained weights (downloaded or cached), ``"random"``, or a local
            checkpoint in the official format of that teacher (``--teacher-weights``).
        image_size: input size override (``--teacher-image-size``); ViT position embeddings are resampled.
        trust_checkpoint: allow TorchScript archives and pickled classes (``--trust-checkpoint``).
    """
    target = name if isinstance(name, TeacherSpec) else resolve_teacher(name)
    if isinstance(target, Path):
        return _run_dir_teacher(target, weights, image_size)
    spec = target
    state: dict[str, Tensor] | None = None
    if weights is None:
        path, source = _hub.fetch(spec.sources, spec.name, spec.manual)
        state, label = read_state_dict(path, trust=trust_checkpoint), f"pretrained:{source}"
    elif weights != "random":
        label = str(Path(weights).expanduser())
        state = read_state_dict(label, trust=trust_checkpoint)
    size = image_size or spec.image_size
    _log_size(spec, size, chosen=image_size is not None)
    backbone = spec.builder(spec, size)
    dropped: dict[str, list[str]] = {}
    if state is None:
        label = "random"
        log.warning("teacher %s has RANDOM weights (--teacher-weights random): it teaches nothing; "
                    "use this only for smoke tests", spec.name)
    else:
        state, dropped = remap(state, spec.layout)
        if dropped:
            log.info("teacher %s: dropped unused keys of %s: %s", spec.name, label, describe_dropped(dropped))
        with torch.no_grad():
            load_strict(backbone, spec.adapt(state, backbone), source=label, what=f"teacher {spec.name}")
    dim = _output_dim(backbone)
    if spec.embed_dim and dim != spec.embed_dim:
        raise RuntimeError(f"teacher {spec.name}: backbone gives {dim} features, spec says {spec.embed_dim}")
    info = {"name": spec.name, "weights": label, "random": state is None,
            "dropped_keys": sorted(k for keys in dropped.values() for k in keys)}
    teacher = TeacherEncoder(backbone, normalize=spec.normalize, info=info, name=spec.name, arch=spec.arch,
                             spec=InputSpec(size, spec.mean, spec.std), embed_dim=dim)
    return teacher.freeze()


