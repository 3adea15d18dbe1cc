"""The demo: the whole job, offline on CPU with Fashion-MNIST, in about ten minutes of training.

1. A teacher: a ResNet-18 trained with labels (``supervised``) for two epochs of the whole training
   split — a real teacher (≈ 88% kNN), kept cheap on CPU by timm's own stem at 32 px.
2. A smaller student (``resnet10t``) distilled from it with ``kd_recipe`` (feature-kd: the recipe
   that ``benchmarks/quality.py`` shows ahead at this budget; see docs/benchmarks.md).
3. The same student trained alone with SimCLR for the same epochs, images and batch size.
4. The kNN top-1 of the teacher, both students and raw pixels on the same bank and queries.

The students use timm's stem too (``stem="imagenet"``): the small-input stem lifts a 32 px student
(+1.0 kNN, +2.8 linear for feature-kd in our pilot) but costs ~5× the CPU time, over the demo's budget.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from compressor.data.datasets import build_dataset
from compressor.engine.config import TrainConfig
from compressor.engine.trainer import train
from compressor.eval.embed import embed_dataset
from compressor.eval.knn import knn_top1
from compressor.models.encoder import InputSpec
from compressor.models.saved import load_encoder
from compressor.rundir import RunDir

log = logging.getLogger("compressor")


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    data: str = "fashion-mnist"
    data_root: str | None = None
    teacher_arch: str = "resnet18"
    teacher_epochs: int = 2  # of the whole training split
    teacher_config: dict[str, Any] = field(default_factory=lambda: {
        "lr": 4e-3, "crop_scale_min": 0.8, "label_smoothing": 0.0})
    student_arch: str = "resnet10t"
    kd_recipe: str = "feature-kd"
    stem: str = "imagenet"
    image_size: int = 32
    images: int = 10_000  # the students' training subset
    epochs: int = 2
    batch_size: int = 128
    eval_bank: int = 10_000
    eval_queries: int = 5_000
    seed: int = 0
    workers: int = 1  # one loader process overlaps the augmentations with the step (+15–25% img/s on 2 cores)


class Pixels(nn.Module):
    """Raw pixels as the embedding: the floor every learned encoder must beat."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def _run(cfg: DemoConfig, name: str, **kw: Any) -> Path:
    out = Path(cfg.out) / name
    if RunDir(out).is_finished():
        log.info("reusing %s (delete it to retrain)", out)
        return out
    base = dict(data=cfg.data, data_root=cfg.data_root, max_images=cfg.images, image_size=cfg.image_size,
                stem=cfg.stem, epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, out=str(out),
                checkpoint_every=100, resume=RunDir(out).checkpoints_dir.is_dir(), workers=cfg.workers)
    return train(TrainConfig(**{**base, **kw}))


def run_demo(cfg: DemoConfig) -> dict[str, float]:
    """Train the three models and return the kNN top-1 of each (and of raw pixels)."""
    teacher = _run(cfg, "teacher", student=cfg.teacher_arch, recipe="supervised", max_images=None,
                   epochs=cfg.teacher_epochs, batch_size=2 * cfg.batch_size, recipe_config=cfg.teacher_config)
    kd = _run(cfg, f"student-{cfg.kd_recipe}", student=cfg.student_arch, recipe=cfg.kd_recipe, teacher=str(teacher))
    alone = _run(cfg, "student-simclr", student=cfg.student_arch, recipe="simclr")
    bank = build_dataset(cfg.data, "train", cfg.data_root)
    queries = build_dataset(cfg.data, "val", cfg.data_root)
    results: dict[str, float] = {}
    models = {f"teacher ({cfg.teacher_arch}, supervised)": load_encoder(teacher),
              f"student {cfg.student_arch}, {cfg.kd_recipe} from the teacher": load_encoder(kd),
              f"student {cfg.student_arch}, SimCLR alone": load_encoder(alone)}
    for label, enc in models.items():
        results[label] = _knn(cfg, enc, enc.spec, bank, queries)
    results["raw pixels"] = _knn(cfg, Pixels(), InputSpec(cfg.image_size, (0.5,) * 3, (0.5,) * 3), bank, queries)
    (Path(cfg.out) / "demo.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _knn(cfg: DemoConfig, model: nn.Module, spec: InputSpec, bank, queries) -> float:
    xb, yb = embed_dataset(model, spec, bank, limit=cfg.eval_bank)
    xq, yq = embed_dataset(model, spec, queries, limit=cfg.eval_queries)
    return knn_top1(xb, yb, xq, yq, k=20, t=0.07)
