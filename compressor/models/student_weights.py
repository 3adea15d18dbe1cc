"""Starting a student from pretrained weights (``--student-weights PATH|pretrained``).

Most distillation in practice starts the small model from ImageNet weights. A local file (a timm or
Hugging Face hub ``model.safetensors``/``pytorch_model.bin``, a torchvision ``resnet18-*.pth``, a training
checkpoint wrapping one) is read safely (safetensors or ``torch.load(weights_only=True)``); ``pretrained``
takes timm's default weights for the architecture from the hub cache, or the hub when it is reachable
(for a hub student, ``hf-hub:org/name``, that repository's own weights, recorded with its revision).
The classifier of the file is dropped and named, the model's own timm filter runs (position-embedding
resampling), and then every key must land: timm's own loader goes non-strict when ``num_classes``
differs, which would leave a student silently random (shared/CHECKPOINTS.md).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import torch
from timm.models import get_pretrained_cfg

from compressor.errors import CompressorError
from compressor.models import _hub
from compressor.models.checkpoints import Layout, describe_dropped, load_strict, read_state_dict, remap
from compressor.models.encoder import Encoder

log = logging.getLogger("compressor")


def _pretrained_sources(arch: str) -> tuple[str, ...]:
    cfg = get_pretrained_cfg(arch)
    if cfg is None or not (cfg.hf_hub_id or cfg.url):
        raise CompressorError(f"timm has no pretrained weights for student {arch!r}; pass --student-weights PATH "
                              "(a local file) or drop --student-weights")
    hub_id = (cfg.hf_hub_id or "").rstrip("/")
    files = [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]
    sources = tuple(f"{_hub.HF_PREFIX}{hub_id}/{f}" for f in files if hub_id)
    url = cfg.url if isinstance(cfg.url, str) else None  # timm types it loosely
    return sources + ((url,) if url else ())


def load_student_weights(student: Encoder, weights: str, *, trust: bool = False) -> dict[str, Any]:
    """Load ``weights`` (a path or ``pretrained``) into ``student.backbone`` strictly; returns what to record.

    The returned dict (``weights``, ``source``, ``dropped_keys``) goes into the run's ``run.json``.
    """
    backbone = student.backbone
    extra: dict[str, Any] = {}
    if weights == "pretrained" and _hub.is_hub_model(student.arch):
        hub = _hub.hub_model(student.arch)
        assert hub.weights is not None  # hub_model resolves a weights file when asked, or fails naming the cache
        path, label = hub.weights, f"{student.arch}/{hub.weights.name}"
        extra = {"revision": hub.revision, "architecture": hub.arch}
    elif weights == "pretrained":
        path, source = _hub.fetch(_pretrained_sources(student.arch), f"student {student.arch}")
        label = f"pretrained:{source}"
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise CompressorError(f"student weights file {str(path)!r} does not exist; check --student-weights "
                                  "(a local file, or `pretrained` for timm's weights)")
        label = str(path)
    state = read_state_dict(path, trust=trust)
    classifier = (getattr(backbone, "pretrained_cfg", {}) or {}).get("classifier") or ()
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    state, dropped = remap(state, Layout("", (("classifier", tuple(f"{h}.*" for h in heads)),)))
    if dropped:
        log.info("student %s: dropped the classifier of %s: %s", student.arch, label, describe_dropped(dropped))
    filter_fn = getattr(sys.modules[type(backbone).__module__], "checkpoint_filter_fn", None)
    if filter_fn is not None:
        state = filter_fn(state, backbone)
    with torch.no_grad():
        load_strict(backbone, state, source=label, what=f"student {student.arch}",
                    fix=f"pass --student-weights made for {student.arch} or pick the --student they were made for")
    log.info("student %s starts from %s", student.arch, label)
    return {"weights": label, **extra, "dropped_keys": sorted(k for ks in dropped.values() for k in ks)}
