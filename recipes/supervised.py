"""Supervised pre-training: cross-entropy of a linear classifier on the encoder (a way to make teachers).

``L = CE(W f(x), y)`` on an augmented view. Needs labelled data. The embedding saved is ``f(x)``
(the classifier is dropped), so a supervised run can be used as a teacher (``--teacher RUN_DIR``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from compressor.data.transforms import AugmentConfig, Views, augment_transform
from compressor.engine.recipe import Recipe, RecipeConfig, StepOutput, register_recipe


@dataclass
class SupervisedConfig(RecipeConfig):
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    crop_scale_min: float = 0.5


@register_recipe
class Supervised(Recipe[SupervisedConfig]):
    name = "supervised"
    kind = "control"
    description = "cross-entropy on labels (train a teacher on your labelled data, or an upper bound)"
    Config = SupervisedConfig
    needs_labels = True

    def __init__(self, cfg: SupervisedConfig, student, **kw) -> None:
        super().__init__(cfg, student, **kw)
        self.classifier = nn.Linear(student.embed_dim, self.data.num_classes)

    def views(self) -> Callable:
        aug = AugmentConfig(scale=(self.cfg.crop_scale_min, 1.0), jitter=(0.2, 0.2, 0.2, 0.0), jitter_p=0.5,
                            grayscale_p=0.0, blur_p=0.0)
        return Views(x=augment_transform(self.student.spec, aug))

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        logits = self.classifier(self.student(batch["x"]))
        loss = F.cross_entropy(logits.float(), batch["label"], label_smoothing=self.cfg.label_smoothing)
        acc = (logits.argmax(1) == batch["label"]).float().mean()
        return StepOutput(loss, {"train_acc": acc})
