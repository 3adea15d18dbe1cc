"""SEED: self-supervised distillation for visual representation (Fang et al., ICLR 2021).

The frozen teacher ``T`` (eval mode) and the student ``f`` see **the same augmented image** ``x``
(MoCo-v2 augmentation, each model at its own resolution and normalisation). With the student head
``h`` (Linear(d,d)-ReLU-Linear(d,D), as in the authors' code) and a FIFO queue ``Q`` (K×D) of past
teacher embeddings:

    s = norm(h(f(x)))                 t = norm(P T(x))
    p_S = softmax([s·t, s·Q] / τ_s)   τ_s = 0.2          (1 + K logits per image)
    p_T = softmax([t·t, t·Q] / τ_t)   τ_t = 1e-4         (the authors' code)
    L = −(1/B) Σ_i Σ_j p_T[i, j] · log p_S[i, j]

then ``t`` is enqueued (oldest rows dequeued). Under DDP the enqueued rows are ``all_gather``-ed
from every rank first, in rank order (``compressor.losses.queue``), so every rank holds one queue.

Choices where the paper is unclear or our setting differs:

* Dimensions: when the student and teacher embeddings have the same width D the teacher is used as
  it is and the student head ends in D. When they differ both sides go to ``dim`` (128): the
  student head ends in 128 and the teacher's embedding is mapped by ``P``, a **fixed** random
  orthogonal projection (a buffer, saved in checkpoints, never trained). The authors' teacher is
  the MoCo-v2 network *with* its pretrained 128-d projection MLP; our teachers come without their
  SSL heads, so a fixed random projection (which keeps inner products approximately) stands in
  for it. A trainable teacher-side head would make the queued embeddings stale as it moves and
  could make the targets easier by collapsing them, so it is not used.
* Queue initialisation: random unit vectors, as in the authors' (MoCo) code; until K teacher
  embeddings have been enqueued the remaining rows act as random negatives.
* Queue length: ``queue_size = 0`` (the default) sizes it from the data by one rule,
  ``K = min(65536, B·⌊N / 2B⌋)`` (at least one batch) for N training images and batch B. At ImageNet
  scale this is the authors' 65,536; on a small data set it keeps the queue within half an epoch, so
  it never holds a stale copy of the image being trained on (a false negative) and is filled with
  real teacher embeddings after half an epoch instead of being mostly random vectors for thousands
  of steps. A positive ``queue_size`` is used as given; config.yaml records the length used.
* The queue is updated in ``on_step_end`` (after the optimiser step), since the loss graph reads it.
* Optimisation: SGD, lr 0.03 × B/256, momentum 0.9, wd 1e-4, cosine with 5 of 200 epochs of
  linear warm-up; no gradient clipping (the authors' code has none).
  Runs shorter than ``short_run_steps`` (5,000) train with the short-run preset instead, AdamW
  lr 1e-3 (``preset``; ``compressor.engine.preset.resolve_preset``), and crop
  milder: ``crop_scale_min`` 0.8 instead of MoCo v2's 0.2 (``SHORT_RUN_CROP``, which says why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from compressor.data.transforms import MOCO_V2_AUG, SameView
from compressor.engine.recipe import Recipe, ShortRunCropConfig, StepOutput, register_recipe
from compressor.losses.queue import EmbeddingQueue
from compressor.models.encoder import Encoder


@dataclass
class SEEDConfig(ShortRunCropConfig):
    optimizer: str = "sgd"
    lr: float = 0.03  # × batch/256
    scale_lr_by_batch: bool = True
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.025  # 5 of 200 epochs
    clip_grad: float = 0.0
    queue_size: int = 0  # 0 = min(65536, B·⌊N/2B⌋), see the docstring; the authors': 65536
    dim: int = 128  # the common width when the student and teacher embeddings differ
    hidden_dim: int = 0  # width of the student head's hidden layer; 0 = the student's d (the authors')
    temperature_student: float = 0.2
    temperature_teacher: float = 1e-4


def queue_size_for(num_images: int, batch_size: int) -> int:
    """``min(65536, B·⌊N / 2B⌋)``, at least one batch: the queue spans at most half an epoch."""
    b = max(1, batch_size)
    return max(b, min(65536, b * (num_images // (2 * b))))


def seed_loss(s: torch.Tensor, t: torch.Tensor, queue: torch.Tensor,
              temperature_student: float = 0.2, temperature_teacher: float = 1e-4) -> torch.Tensor:
    """``−(1/B) Σ softmax([t·t, t·Q]/τ_t) · log_softmax([s·t, s·Q]/τ_s)`` for unit rows ``s``, ``t``, ``Q``.

    Computed in float32 at least: with τ_t = 1e-4 the teacher logits span ±1e4.
    """
    dtype = torch.promote_types(s.dtype, torch.float32)
    s, t, queue = s.to(dtype), t.detach().to(dtype), queue.to(dtype)
    logits_s = torch.cat([(s * t).sum(1, keepdim=True), s @ queue.T], dim=1) / temperature_student
    logits_t = torch.cat([(t * t).sum(1, keepdim=True), t @ queue.T], dim=1) / temperature_teacher
    target = logits_t.softmax(dim=1)
    return -(target * logits_s.log_softmax(dim=1)).sum(1).mean()


@register_recipe
class SEED(Recipe[SEEDConfig]):
    name = "seed"
    kind = "teacher→student"
    description = "SEED: match the teacher's similarity distribution over a queue of teacher embeddings"
    Config = SEEDConfig
    needs_teacher = True
    test_overrides: ClassVar[dict] = {"queue_size": 64}

    teacher_proj: torch.Tensor | None

    def __init__(self, cfg: SEEDConfig, student: Encoder, **kw) -> None:
        super().__init__(cfg, student, **kw)
        d, d_t = student.embed_dim, self.teacher.embed_dim
        out = d_t if d_t == d else cfg.dim
        hidden = cfg.hidden_dim or d
        self.head = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))
        if out != d_t:
            proj = torch.empty(out, d_t)
            nn.init.orthogonal_(proj)
            self.register_buffer("teacher_proj", proj)
        else:
            self.teacher_proj = None
        if cfg.queue_size == 0:  # recorded resolved in config.yaml: the length the run trained with
            cfg.queue_size = queue_size_for(self.data.num_images, self.data.batch_size)
        self.queue = EmbeddingQueue(cfg.queue_size, out)
        self._pending: torch.Tensor | None = None

    def views(self) -> Callable:
        return SameView(replace(MOCO_V2_AUG, scale=(self.cfg.crop_scale_min, 1.0)),
                        x=self.student.spec, t=self.teacher.spec)

    @torch.no_grad()
    def teacher_target(self, images: torch.Tensor) -> torch.Tensor:
        """``t = norm(P T(x))`` (``P`` the fixed projection, or none when the widths agree)."""
        t = self.teacher(images).float()
        if self.teacher_proj is not None:
            t = t @ self.teacher_proj.T
        return F.normalize(t, dim=1)

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        cfg = self.cfg
        t = self.teacher_target(batch["t"])
        s = F.normalize(self.head(self.student(batch["x"])).float(), dim=1)
        loss = seed_loss(s, t, self.queue.queue, cfg.temperature_student, cfg.temperature_teacher)
        self._pending = t
        return StepOutput(loss)

    def on_step_end(self, step: int, total_steps: int) -> None:
        if self._pending is not None:
            self.queue.enqueue(self._pending)
            self._pending = None
