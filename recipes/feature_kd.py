"""Feature KD: plain embedding regression onto a frozen teacher (baseline).

``L = 2 − 2·cos(norm(proj(f(x))), norm(T(x)))`` on the same augmented view ``x``, shown to the
teacher at its own resolution and normalisation. ``proj`` is Linear-BN-ReLU-Linear into the
teacher's embedding dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from compressor.data.transforms import SameView
from compressor.models.heads import mlp
from compressor.recipes.base import Recipe, RecipeConfig, StepOutput, register_recipe


@dataclass
class FeatureKDConfig(RecipeConfig):
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden_dim: int = 2048


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
        self.projector = mlp(student.embed_dim, (cfg.hidden_dim, self.teacher.embed_dim))

    def views(self) -> Callable:
        return SameView(x=self.student.spec, t=self.teacher.spec)

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        with torch.no_grad():
            t = self.teacher(batch["t"])
        return StepOutput(cosine_regression(self.projector(self.student(batch["x"])), t))
