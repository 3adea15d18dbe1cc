"""SimCLR (Chen et al., ICML 2020): the student trained alone, the control every KD claim is measured against.

Two augmented views ``x1, x2`` of each image, projector ``g`` (d→2048→128), NT-Xent with τ = 0.5:
``L = NT-Xent(g(f(x1)), g(f(x2)))`` (``compressor.losses.contrastive.nt_xent``).

Augmentation: crop scale ``crop_scale_min``–1 (0.2, as MoCo v2; runs shorter than ``short_run_steps``
use 0.8 like every teacher→student recipe, ``compressor.engine.recipe.SHORT_RUN_CROP``, which says why),
flip, jitter 0.8/0.8/0.8/0.2 with p = 0.8, grayscale 0.2 (no blur below 96 px).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from compressor.data.transforms import AugmentConfig, Views, augment_transform
from compressor.engine.distributed import gather_with_grad
from compressor.engine.recipe import Recipe, ShortRunCropConfig, StepOutput, register_recipe
from compressor.losses.contrastive import nt_xent
from compressor.models.heads import mlp


@dataclass
class SimCLRConfig(ShortRunCropConfig):
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.5
    projector_dims: tuple[int, ...] = (2048, 128)


@register_recipe
class SimCLR(Recipe[SimCLRConfig]):
    name = "simclr"
    kind = "control"
    description = "SimCLR NT-Xent on two views: the student trained alone, no teacher (control)"
    Config = SimCLRConfig

    def __init__(self, cfg: SimCLRConfig, student, **kw) -> None:
        super().__init__(cfg, student, **kw)
        self.projector = mlp(student.embed_dim, cfg.projector_dims)

    def views(self) -> Callable:
        aug = augment_transform(self.student.spec, AugmentConfig(scale=(self.cfg.crop_scale_min, 1.0),
                                                                       jitter=(0.8, 0.8, 0.8, 0.2)))
        return Views(x1=aug, x2=aug)

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        n = batch["x1"].shape[0]
        z1, z2 = self.projector(self.student(torch.cat([batch["x1"], batch["x2"]]))).split(n)
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)  # under DDP: negatives from the global batch
        return StepOutput(nt_xent(z1, z2, self.cfg.temperature))
