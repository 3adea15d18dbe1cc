"""DoGo: Distill-on-the-Go, online knowledge distillation in self-supervised learning (Bhat, Arani,
Zonooz; CVPR Workshops 2021).

Two models ``m ∈ {1, 2}`` (the student and its peer, any pair, e.g. ResNet-18 + ResNet-50) train
together from scratch, each with its own optimiser. Each model gets its **own** independently
augmented pair of views ``(x^m, y^m)`` of the same batch, and its own projector (Linear(d,512,no
bias)-BN-ReLU-Linear(512,128)) giving ``z^m_x``, ``z^m_y``. With NT-Xent (τ = 0.5) as the SSL loss:

    S^m_ij = cos(z^m_{x,i}, z^m_{y,j}) / T           T = 0.1
    P^m    = softmax over each row of S^m            (B × B)
    L_1 = NT-Xent(z^1_x, z^1_y) + w_1 · KL(sg(P^2) ‖ P^1)
    L_2 = NT-Xent(z^2_x, z^2_y) + w_2 · KL(sg(P^1) ‖ P^2)
    KL(Q ‖ P) = (1/B²) Σ_ij Q_ij (log Q_ij − log P_ij)

The engine back-propagates ``L_1 + L_2`` once: thanks to the stop-gradients each model only
receives the gradient of its own ``L_m``, so this equals two separate backward passes.

Choices where the paper is unclear:

* The KL is averaged over all B² entries, as the authors' code does with ``F.kl_div(...,
  reduction='mean')`` (the batch-mean KL would be B times larger; ``w_m`` absorbs the difference).
* ``w_1 = 100, w_2 = 1`` by default, the authors' template: with the B²-mean the KL is about 1/B of a
  per-row KL, so ``w = 1`` would make the distillation term negligible and DoGo two SimCLR runs. The
  strong pull is on model 1, the student (pass the smaller model as ``--student``). The logs carry
  ``kd_share_1``/``kd_share_2``, the share of each model's loss that is the weighted KL term.
  DoGo's gain needs a clearly stronger peer (docs/benchmarks.md, "Peer methods"): a run whose peer
  starts from random weights with no more parameters than the student, under ``w_1 > w_2``, is warned
  at start (the pair is likely the wrong way round).
* Each view goes through its model in a forward of its own, so BatchNorm normalises each view with
  its own batch statistics, as the authors' ``SimCLR.forward`` does (``f(x)``, then ``f(y)``;
  NeurAI-Lab/DoGo, branch ``dogo``, ``models/simclr.py``). ``shared_bn=True`` concatenates the two
  views into one forward instead (one set of statistics over both views, SimCLR's global-BN habit).
* Augmentation: SimCLR's (crop scale ``crop_scale_min``–1, 0.2 by default, flip, jitter
  0.8/0.8/0.8/0.2 p=0.8, grayscale 0.2, blur p=0.5), each model at its own resolution and
  normalisation; the authors' small-image code crops 0.08–1 and drops the blur.
* Optimisation: Adam, lr 3e-4, wd 1e-6 (L2, Adam's coupled form) for both models; the schedule is
  the engine's cosine with 5% warm-up (not stated in the paper).
  Runs shorter than ``short_run_steps`` (5,000) train with the short-run preset instead, AdamW
  lr 1e-3 (``preset``; ``compressor.engine.preset.resolve_preset``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from compressor.data.transforms import AugmentConfig, Views, augment_transform
from compressor.engine.distributed import gather_with_grad
from compressor.engine.recipe import Recipe, RecipeConfig, StepOutput, register_recipe
from compressor.errors import CompressorError
from compressor.losses.contrastive import nt_xent
from compressor.models.encoder import Encoder
from compressor.models.heads import mlp

log = logging.getLogger("compressor")


@dataclass
class DoGoConfig(RecipeConfig):
    optimizer: str = "adam"
    lr: float = 3e-4
    weight_decay: float = 1e-6
    temperature: float = 0.5  # NT-Xent
    kd_temperature: float = 0.1  # T of the similarity distributions
    w_1: float = 100.0  # KL weight of the student (model 1), the authors' template
    w_2: float = 1.0  # KL weight of the peer (model 2)
    projector_dims: tuple[int, ...] = (512, 128)
    crop_scale_min: float = 0.2  # SimCLR's; the authors' small-image code uses 0.08 (RandomResizedCrop's default)
    shared_bn: bool = False  # True: both views in one forward (shared BN statistics); the authors run two


def similarity_log_probs(zx: torch.Tensor, zy: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """``log P`` with ``P = softmax_rows(cos(zx_i, zy_j) / T)``, (B × B), in float32 at least."""
    dtype = torch.promote_types(zx.dtype, torch.float32)
    s = F.normalize(zx.to(dtype), dim=1) @ F.normalize(zy.to(dtype), dim=1).T / temperature
    return s.log_softmax(dim=1)


def kl_mean(log_q: torch.Tensor, log_p: torch.Tensor) -> torch.Tensor:
    """``KL(Q ‖ P)`` averaged over all entries, i.e. ``F.kl_div(log_p, q, reduction='mean')`` (the authors').

    Written out, since torch warns that its 'mean' reduction will change meaning. No stop-gradient here.
    """
    return (log_q.exp() * (log_q - log_p)).mean()


def dogo_losses(z1: tuple[torch.Tensor, torch.Tensor], z2: tuple[torch.Tensor, torch.Tensor],
                cfg: DoGoConfig) -> dict[str, torch.Tensor]:
    """The terms of ``L_1`` and ``L_2`` from each model's projections ``(z_x, z_y)``; ``loss`` = L_1 + L_2."""
    log_p1 = similarity_log_probs(*z1, cfg.kd_temperature)
    log_p2 = similarity_log_probs(*z2, cfg.kd_temperature)
    t = {"ssl_1": nt_xent(*z1, cfg.temperature), "ssl_2": nt_xent(*z2, cfg.temperature),
         "kl_1": kl_mean(log_p2.detach(), log_p1), "kl_2": kl_mean(log_p1.detach(), log_p2)}
    t["loss_1"] = t["ssl_1"] + cfg.w_1 * t["kl_1"]
    t["loss_2"] = t["ssl_2"] + cfg.w_2 * t["kl_2"]
    t["loss"] = t["loss_1"] + t["loss_2"]
    return t


def _millions(m: nn.Module) -> float:
    return sum(p.numel() for p in m.parameters()) / 1e6


def warn_if_peer_not_stronger(student: Encoder, peer: Encoder, cfg: DoGoConfig) -> None:
    """Warn when the pull is on the student (``w_1 > w_2``) but the peer, from random weights, is no larger."""
    if cfg.w_1 <= cfg.w_2 or getattr(peer, "weights_info", None):
        return  # the pull is not one-sided, or the peer starts trained (--peer-weights): it may well be stronger
    n_s, n_p = _millions(student), _millions(peer)
    if n_p <= n_s:
        log.warning("dogo pulls the student toward its peer (w_1 = %g against w_2 = %g) and gains only from a "
                    "clearly stronger peer, but --peer %s (%.1fM parameters, random init) is no larger than "
                    "--student %s (%.1fM): swap --student and --peer, or start the peer from a trained run with "
                    "--peer-weights RUN", cfg.w_1, cfg.w_2, peer.name, n_p, student.name, n_s)


@register_recipe
class DoGo(Recipe[DoGoConfig]):
    name = "dogo"
    kind = "peer"
    description = "Distill-on-the-Go: two models trained together, SimCLR each + KL between their similarities"
    Config = DoGoConfig
    needs_peer = True
    control_overrides: ClassVar[dict[str, Any]] = {"w_1": 0.0, "w_2": 0.0}  # two SimCLR runs

    peer: Encoder

    def __init__(self, cfg: DoGoConfig, student: Encoder, **kw) -> None:
        super().__init__(cfg, student, **kw)
        if self.peer is None:
            raise CompressorError("dogo trains a pair: pass --peer NAME (any timm model)")
        self.head = mlp(student.embed_dim, cfg.projector_dims)
        self.peer_head = mlp(self.peer.embed_dim, cfg.projector_dims)
        warn_if_peer_not_stronger(student, self.peer, cfg)

    def views(self) -> Callable:
        aug = AugmentConfig(scale=(self.cfg.crop_scale_min, 1.0), jitter=(0.8, 0.8, 0.8, 0.2))
        s, p = augment_transform(self.student.spec, aug), augment_transform(self.peer.spec, aug)
        return Views(x1=s, y1=s, x2=p, y2=p)  # four independent draws: one pair per model

    def param_groups(self) -> list[list[nn.Parameter]]:
        def trainable(*mods: nn.Module) -> list[nn.Parameter]:
            return [p for m in mods for p in m.parameters() if p.requires_grad]

        return [trainable(self.student, self.head), trainable(self.peer, self.peer_head)]

    def _project(self, enc: nn.Module, head: nn.Module, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.cfg.shared_bn:
            zx, zy = head(enc(torch.cat([x, y]))).split(x.shape[0])
            return zx, zy
        return head(enc(x)), head(enc(y))  # the authors': each view with its own BN statistics

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        z1 = self._project(self.student, self.head, batch["x1"], batch["y1"])
        z2 = self._project(self.peer, self.peer_head, batch["x2"], batch["y2"])
        # Under DDP: NT-Xent negatives and the similarity distributions over the global batch.
        z1 = (gather_with_grad(z1[0]), gather_with_grad(z1[1]))
        z2 = (gather_with_grad(z2[0]), gather_with_grad(z2[1]))
        terms = dogo_losses(z1, z2, self.cfg)
        logs = {k: v.detach() for k, v in terms.items() if k in ("ssl_1", "ssl_2", "kl_1", "kl_2")}
        logs["kd_share_1"] = self.cfg.w_1 * logs["kl_1"] / terms["loss_1"].detach().clamp_min(1e-12)
        logs["kd_share_2"] = self.cfg.w_2 * logs["kl_2"] / terms["loss_2"].detach().clamp_min(1e-12)
        return StepOutput(terms["loss"], logs)
