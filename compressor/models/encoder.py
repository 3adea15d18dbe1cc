"""The one interface every teacher, student and peer shares: images in, embeddings out."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from compressor.models.inputs import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, InputSpec

__all__ = ["CLIP_MEAN", "CLIP_STD", "IMAGENET_MEAN", "IMAGENET_STD", "Encoder", "InputSpec"]


class Encoder(nn.Module):
    """Wraps a backbone so that ``forward(images) -> (B, embed_dim)`` embeddings.

    ``backbone`` is the underlying model (a timm model with ``num_classes=0`` for students), kept
    reachable so that recipes needing feature maps or tokens (MOMA, MOKD, CSS) can call into it.
    Teachers whose embedding is not the plain call (the mean of MAE patch tokens, the CLIP image
    projection) subclass this and override ``forward``.
    """

    def __init__(
        self,
        backbone: nn.Module,
        *,
        name: str,
        spec: InputSpec,
        embed_dim: int,
        arch: str | None = None,
        stem: str = "imagenet",
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.name = name
        self.arch = arch or name
        self.spec = spec
        self.embed_dim = embed_dim
        self.stem = stem  # "small" = the small-input stem of compressor.models.stems

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def freeze(self) -> Encoder:
        """Eval mode and no gradients: how every teacher is held (stays in eval under ``.train()``)."""
        self._frozen = True
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> Encoder:
        # A frozen encoder (teacher) stays in eval mode even when a parent module is put in train mode.
        if getattr(self, "_frozen", False):
            mode = False
        return super().train(mode)


def output_width(model: nn.Module, image_size: int) -> int:
    """The width of what ``model`` really returns for one ``image_size`` image.

    timm's ``num_features`` is the width of the last feature map, but several edge students pool
    through a wider head before the (removed) classifier: MobileNetV3/V4 return ``head_hidden_size``
    (1280) features, not ``num_features`` (960). A probe forward in eval mode is the one answer that
    holds for every architecture; timm's ``head_hidden_size`` is the fallback for a model that cannot
    run the probe (the real error then surfaces where the model is first used).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, 3, image_size, image_size))
        return int(out.shape[-1])
    except Exception:  # any failure of an arbitrary model's forward: fall back to timm's figure
        return int(getattr(model, "head_hidden_size", None) or cast(Any, model).num_features)  # a timm model
    finally:
        model.train(was_training)
