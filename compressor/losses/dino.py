"""The DINO self-distillation loss (Caron et al., ICCV 2021) with centring, and its uncentred variant.

``DINOLoss`` is a small module that owns its centre ``c`` (as in ``dinov2/loss/dino_clstoken_loss.py``):

    L_D(s, t) = 1/|P| Σ_{(i, v) ∈ P} mean_b [ −Σ_k softmax((t_i − c)/τ_t)_k · log_softmax(s_v/τ_s)_k ]
    c ← m·c + (1 − m)·mean over the batch and the teacher crops of t          (after the loss)

``P`` = all pairs of a teacher crop ``i`` (the global crops) and a student crop ``v ≠ i``; the
first ``len(t)`` student crops are the same views as the teacher crops, in the same order. The
teacher side is always under stop-gradient. ``search_loss`` is the same cross-entropy for one
target per student output and without centring (MOKD's ``L_search``).

Example::

    loss = DINOLoss(out_dim=65536)
    l = loss([s_g1, s_g2, s_l1, ...], [t_g1, t_g2], teacher_temp=0.04)

Under DDP the centre is updated with the mean over the global batch (gathered from every rank, as
DINO's ``update_center`` all-reduces it), so every rank keeps the same centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from compressor.losses.queue import gather_from_ranks


def _full(x: torch.Tensor) -> torch.Tensor:
    """At least float32 (bf16 logits under autocast are too coarse for a 65k-way softmax)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class DINOLoss(nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student over crop pairs.

    Args:
        out_dim: ``K``, the width of the outputs (the size of the centre).
        student_temp: ``τ_s`` (0.1 in DINO and MOKD).
        center_momentum: ``m`` of the centre's EMA (0.9).
    """

    center: torch.Tensor

    def __init__(self, out_dim: int, *, student_temp: float = 0.1, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def forward(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
                teacher_temp: float | torch.Tensor) -> torch.Tensor:
        """``L_D`` of student crops and teacher crops (each B×K); then updates the centre."""
        t = _full(torch.cat(list(teacher)).detach())
        targets = F.softmax((t - self.center) / teacher_temp, dim=-1).chunk(len(teacher))
        log_p = [F.log_softmax(_full(s) / self.student_temp, dim=-1) for s in student]
        total, pairs = t.new_zeros(()), 0
        for i, q in enumerate(targets):
            for v, lp in enumerate(log_p):
                if v == i:  # the student and the teacher saw the same view
                    continue
                total = total + (-(q * lp).sum(dim=-1)).mean()
                pairs += 1
        self.update_center(t)
        return total / max(1, pairs)

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor) -> None:
        """``c ← m·c + (1 − m)·mean(teacher)`` over every row (all teacher crops of the batch)."""
        teacher = gather_from_ranks(teacher)  # the global batch under DDP
        m = self.center_momentum
        self.center.mul_(m).add_(teacher.mean(dim=0, keepdim=True).to(self.center.dtype), alpha=1 - m)


def search_loss(student: torch.Tensor, target: torch.Tensor, teacher_temp: float | torch.Tensor,
                student_temp: float = 0.1) -> torch.Tensor:
    """``mean_rows −Σ_k softmax(sg(target)/τ_t)_k · log_softmax(student/τ_s)_k`` (no centring).

    With the rows ordered crop by crop (``n·B`` rows, ``B`` per crop) this is the average over the
    crops of the per-crop batch means (MOKD's ``L_search`` over the local crops).
    """
    q = F.softmax(_full(target.detach()) / teacher_temp, dim=-1)
    return (-(q * F.log_softmax(_full(student) / student_temp, dim=-1)).sum(dim=-1)).mean()
