"""The demo: the whole job, offline on CPU with Fashion-MNIST, in a few minutes.

1. A teacher: a ResNet-18 trained briefly with labels (``supervised``) — a real, if small, teacher.
2. A smaller student (``resnet10t``) distilled from it with MV-MR.
3. The same student trained alone with SimCLR for the same number of steps and batch size.
4. The kNN top-1 on Fashion-MNIST's test set of the teacher, both students and raw pixels.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from compressor.data.datasets import build_dataset
from compressor.engine.config import TrainConfig
from compressor.engine.trainer import train
from compressor.eval.embed import embed_dataset
from compressor.eval.knn import knn_top1
from compressor.models.encoder import InputSpec
from compressor.models.saved import load_encoder

log = logging.getLogger("compressor")


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    data: str = "fashion-mnist"
    data_root: str | None = None
    teacher_arch: str = "resnet18"
    student_arch: str = "resnet10t"
    image_size: int = 32
    images: int = 10_000  # training subset
    teacher_steps: int = 200
    student_steps: int = 150
    batch_size: int = 128
    eval_bank: int = 5_000
    eval_queries: int = 2_000
    seed: int = 0


class Pixels(nn.Module):
    """Raw pixels as the embedding: the floor every learned encoder must beat."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def _run(cfg: DemoConfig, name: str, **kw) -> Path:
    out = Path(cfg.out) / name
    if (out / "student.json").is_file():
        log.info("reusing %s (delete it to retrain)", out)
        return out
    tc = TrainConfig(data=cfg.data, data_root=cfg.data_root, max_images=cfg.images, image_size=cfg.image_size,
                     batch_size=cfg.batch_size, seed=cfg.seed, out=str(out), checkpoint_every=100,
                     resume=(out / "checkpoints").is_dir(), **kw)
    return train(tc)


def run_demo(cfg: DemoConfig) -> dict[str, float]:
    """Train the three models and return the kNN top-1 of each (and of raw pixels)."""
    teacher = _run(cfg, "teacher", student=cfg.teacher_arch, recipe="supervised", max_steps=cfg.teacher_steps)
    kd = _run(cfg, "student-mvmr", student=cfg.student_arch, recipe="mvmr", teacher=str(teacher),
              max_steps=cfg.student_steps,
              recipe_config={"projector_dims": [1024, 1024], "lr": 1e-3, "cache_teacher": True})
    alone = _run(cfg, "student-simclr", student=cfg.student_arch, recipe="simclr", max_steps=cfg.student_steps)
    bank = build_dataset(cfg.data, "train", cfg.data_root)
    queries = build_dataset(cfg.data, "val", cfg.data_root)
    results: dict[str, float] = {}
    models = {f"teacher ({cfg.teacher_arch}, supervised)": load_encoder(teacher),
              f"student {cfg.student_arch}, MV-MR from the teacher": load_encoder(kd),
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
