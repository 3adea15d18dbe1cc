"""Teacher zoo: frozen pretrained encoders by name (``clip-vit-b16``, ``timm:<name>``, ``hf-hub:org/name``,
a run directory ...).

The specs are data (:mod:`compressor.models.teacher_specs`, no torch there); :func:`build_teacher`
builds a spec's random architecture with its family's builder below, reads the weights (download,
``--teacher-weights PATH`` or ``random``), maps the official layout onto it
(:mod:`compressor.models.checkpoints`) and loads strictly. See docs/teachers.md.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
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
from compressor.models.checkpoints import describe_dropped, load_strict, read_state_dict, remap
from compressor.models.encoder import Encoder
from compressor.models.inputs import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, InputSpec
from compressor.models.layout import Layout
from compressor.models.saved import load_encoder
from compressor.models.students import create_timm_backbone
from compressor.models.teacher_specs import CLIP_LAYOUT, OPEN_CLIP_FILES, TEACHERS, Floats3, TeacherSpec, list_teachers
from compressor.registry import unknown_name_message
from compressor.rundir import RunDir
from compressor.utils.extras import require

log = logging.getLogger("compressor")
__all__ = ["FAMILY_BUILDERS", "TEACHERS", "TeacherSpec", "build_teacher", "hub_spec", "list_teachers",
           "open_clip_spec", "resolve_teacher", "timm_spec"]


def build_timm(spec: TeacherSpec, image_size: int) -> nn.Module:
    """A timm model without classifier; ViTs are built at ``image_size`` (their pos-embed is resampled)."""
    return create_timm_backbone(spec.arch, image_size, **spec.arch_kwargs)


def adapt_timm(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Run the model's own timm ``checkpoint_filter_fn`` (pos-embed resampling, key conversions)."""
    filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
    return filter_fn(state, model) if filter_fn is not None else state


OPEN_CLIP_USE = "the CLIP and SigLIP teachers (open_clip image towers)"


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


Builder = Callable[[TeacherSpec, int], nn.Module]
Adapter = Callable[[dict[str, Tensor], nn.Module], dict[str, Tensor]]
#: Each ``TeacherSpec.family``: the random architecture, and what the official weights need before they load.
FAMILY_BUILDERS: dict[str, tuple[Builder, Adapter]] = {"timm": (build_timm, adapt_timm),
                                                       "open_clip": (build_open_clip, adapt_open_clip)}


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
        family="open_clip", sources=sources, arch=arch,
        arch_kwargs={"quick_gelu": bool(pre.get("quick_gelu", cfg.get("quick_gelu", False)))},
        layout=CLIP_LAYOUT, normalize=True)


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
        sources=sources, arch=model_name,
        layout=Layout("", (("classifier", tuple(f"{c}.*" for c in classifier)),)))


def hub_spec(name: str) -> TeacherSpec:
    """Spec of ``hf-hub:org/name``, a timm model repository: architecture, ``model_args`` and input from its
    ``config.json`` (out of the local cache when offline), weights from the repository, pooled features."""
    hub = _hub.hub_model(name, weights=False)
    cfg = hub.pretrained_cfg
    classifier = cfg.get("classifier")
    if classifier is None and timm.is_model(hub.arch):
        classifier = getattr(get_pretrained_cfg(hub.arch), "classifier", None)
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    size = hub.model_args.get("img_size") or (cfg.get("input_size") or (3, 224, 224))[-1]
    return TeacherSpec(
        name=name, description=f"{hub.repo} ({hub.arch}), pooled features", embed_dim=0,
        image_size=int(size if isinstance(size, int) else size[-1]),
        mean=cast(Floats3, tuple(cfg.get("mean", IMAGENET_MEAN))),
        std=cast(Floats3, tuple(cfg.get("std", IMAGENET_STD))),
        sources=tuple(f"{name}/{f}" for f in _hub.MODEL_FILES), arch=name,
        layout=Layout("", (("classifier", tuple(f"{c}.*" for c in heads)),)))


def resolve_teacher(name: str) -> TeacherSpec | Path:
    """A registered name, ``timm:<name>``, ``hf-hub:org/name``, ``open_clip:<arch>[:<tag>]``, or a run directory."""
    if name in TEACHERS:
        return TEACHERS.get(name)
    if name.startswith("timm:"):
        return timm_spec(name[len("timm:"):])
    if _hub.is_hub_model(name):
        return hub_spec(name)
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
                          + "; other forms: timm:<name>, hf-hub:org/name, open_clip:<arch>:<tag>, a run directory")


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
        name: a registered name (:func:`list_teachers`), ``timm:<name>``, ``hf-hub:org/name``,
            ``open_clip:<arch>:<tag>``,
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
    build, adapt = FAMILY_BUILDERS[spec.family]
    backbone = build(spec, size)
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
            load_strict(backbone, adapt(state, backbone), source=label, what=f"teacher {spec.name}")
    dim = _output_dim(backbone)
    if spec.embed_dim and dim != spec.embed_dim:
        raise RuntimeError(f"teacher {spec.name}: backbone gives {dim} features, spec says {spec.embed_dim}")
    info = {"name": spec.name, "weights": label, "random": state is None,
            "dropped_keys": sorted(k for keys in dropped.values() for k in keys)}
    teacher = TeacherEncoder(backbone, normalize=spec.normalize, info=info, name=spec.name, arch=spec.arch,
                             spec=InputSpec(size, spec.mean, spec.std), embed_dim=dim)
    return teacher.freeze()


