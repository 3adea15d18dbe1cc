"""Feature KD: plain embedding regression onto a frozen teacher (baseline).

``L = 2 − 2·cos(norm(proj(f(x))), norm(T(x)))`` on the same augmented view ``x``, shown to the
teacher at its own resolution and normalisation. ``proj`` is Linear-BN-ReLU-Linear into the
teacher's embedding dimension.

``teacher_view`` (a choice of ours, no paper to follow): ``augmented`` (default) shows the teacher
the student's augmented view, as above; ``clean`` shows it the whole image (resize + centre crop),
so ``T`` depends on the image alone and ``--teacher-cache`` can hold it — the target is then the
teacher's embedding of the image rather than of the crop.

Augmentation: MoCo v2's, with the random resized crop's smallest area ``crop_scale_min`` (0.2; runs
shorter than ``short_run_steps`` use 0.8, ``compressor.engine.recipe.SHORT_RUN_CROP``, which says why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from compressor.data.transforms import MOCO_V2_AUG, SameView, Views, augment_transform, eval_transform
from compressor.engine.recipe import Recipe, ShortRunCropConfig, StepOutput, register_recipe
from compressor.errors import CompressorError
from compressor.models.heads import mlp


@dataclass
class FeatureKDConfig(ShortRunCropConfig):
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden_dim: int = 2048
    teacher_view: str = "augmented"  # augmented | clean (cacheable); see the module docstring


def cosine_regression(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``2 − 2·cos(s, t)`` averaged over the batch."""
    return (2 - 2 * F.cosine_similarity(s.float(), t.float(), dim=1)).mean()


@register_recipe
class FeatureKD(Recipe[FeatureKDConfig]):
    name = "feature-kd"
    kind = "teacher→student"
    description = "cosine regression of the student's projected embedding onto the teacher's (baseline)"
    Config = FeatureKDConfig
    needs_teacher = True

    def __init__(self, cfg: FeatureKDConfig, student, **kw) -> None:
        super().__init__(cfg, student, **kw)
        if cfg.teacher_view not in ("augmented", "clean"):
            raise CompressorError(f"feature-kd: teacher_view={cfg.teacher_view!r} is not one of augmented, clean; "
                                  "use --set teacher_view=clean for a cacheable teacher view")
        self.projector = mlp(student.embed_dim, (cfg.hidden_dim, self.teacher.embed_dim))
        self.teacher_cache_view = "t" if cfg.teacher_view == "clean" else None

    def views(self) -> Callable:
        aug = replace(MOCO_V2_AUG, scale=(self.cfg.crop_scale_min, 1.0))
        if self.cfg.teacher_view == "clean":
            return Views(x=augment_transform(self.student.spec, aug), t=eval_transform(self.teacher.spec))
        return SameView(aug, x=self.student.spec, t=self.teacher.spec)

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        t = self.teacher_embedding(batch, "t")
        return StepOutput(cosine_regression(self.projector(self.student(batch["x"])), t))
