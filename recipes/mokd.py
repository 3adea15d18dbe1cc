"""MOKD: Multi-mode Online Knowledge Distillation (Song, Xie, Zhang, Luo; CVPR 2023).

A CNN ``C`` and a ViT ``T`` (``--student`` and ``--peer``, either way round) learn together, each
as a DINO student with an EMA teacher. Each model has a DINO MLP head and a T-Head
(``recipes/_mokd_heads.py``). With ``L_D`` the DINO loss (``compressor.losses.dino``: centred,
sharpened teacher, τ_s = 0.1, τ_t warmed 0.04 → 0.07, one centre per loss instance):

    L_C = L_D(mlp_s^C, mlp_t^C) + L_D(thead_s^C, thead_t^C)                     # self-distillation
        + λ_C · [ L_D(mlp_s^C, sg(mlp_t^T)) + L_search(thead_s^C(local), sg(search_t^T)) ]   # cross
    L_T   symmetric with λ_T;       L = L_C + L_T

``search_t^T``: the query is the CNN student's ``x_pool`` on each local crop (detached), prefixed to
the ViT teacher's patch tokens of global crop 1, run through that teacher's T-Head blocks; the
query is dropped, the patch tokens mean-pooled, LayerNorm'd and projected to K. ``search_t^C`` is
the same with the ViT student's CLS token against the CNN teacher's reduced feature-map tokens.
``L_search`` is the DINO cross-entropy without centring, averaged over the local crops.

Choices (METHODS.md leaves them open, or the engine is simpler than the authors' loop):

* Crops: 2 global (``--image-size``, scale 0.25–1) + ``n_local_crops`` local (scale 0.05–0.25) at
  ``round(image_size·96/224)`` rounded to the ViT's patch multiple; DINO augmentations (blur 1.0 /
  0.1 / 0.5, solarise 0.2 on global crop 2). Both models see the same crops at the student's
  sizes, normalised by the student's mean/std; the peer's inputs are re-normalised to its own.
  ``n_local_crops = 0`` is allowed and drops ``L_search`` (there is no local crop to search with).
* ViTs get local crops by switching the timm model to ``dynamic_img_size`` in place (position
  embeddings resampled per input; weights and saved state dict unchanged).
* T-Head width D = the ViT's width (384 for ViT-S/16, as in the authors' code), so each search
  query has the width of the tokens it joins. ``x_pool`` = the spatial mean of the 1×1-conv map.
* Last layers: weight-normalised with the gain fixed at 1 for all heads (DINO ``norm_last_layer``).
  **Not yet as the authors** (``main_mokd.py`` and ``backbones/vision_transformer.py`` of
  skyoux/mokd, found 2026-11-29, not in METHODS.md): only the CNN's MLP head fixes its gain; the
  ViT's MLP head (``norm_last_layer=False``) and both T-Heads train theirs from 1, so the ViT's
  MLP-head logits can leave [−1, 1] and the T-Heads can scale theirs. The ViT's T-Head also adds
  learned positions of its own to the patch tokens, and the CNN's losses warm τ_t over 50 of 100
  epochs (the ViT's and the cross losses over 30). At 156 steps the gains do not move (a one-seed
  pilot, docs/benchmarks.md); at the paper's length they may matter.
* Optimisers: the CNN's backbone and MLP head SGD (lr ``cnn_lr``×B/256, momentum 0.9, wd 1e-4);
  the ViT **and the CNN's T-Head** AdamW (``vit_lr``×B/256, wd cosine 0.04 → 0.4 set in
  ``on_step_end``) — the CNN's T-Head is a transformer, and the authors put it in its own parameter
  group on the ViT's schedules rather than on the CNN's SGD rate. So a CNN contributes two
  optimisers and a ViT one. ``optimizer``/``lr``/``weight_decay`` of the base config are not used.
  In a short run (``preset``, ``compressor.engine.preset.resolve_preset``) every group trains with
  the short-run optimiser (``cnn_optimizer`` AdamW, ``cnn_lr`` = ``vit_lr`` = 1e-3, not scaled by the
  batch) and keeps its weight decay.
  One cosine lr factor for all (the engine has one): warm-up 10% (10 of 100 epochs), floor
  ``min_lr_fraction`` 0.04 (between the CNN's 0.0048/0.1 and the ViT's 1e-5/3e-4).
* Clipping: each parameter's gradient norm is clipped to 3 on its own, as DINO's and the authors'
  ``clip_gradients`` do (``clip_per_parameter``), not one global norm.
* ``freeze_last_layer_steps``: gradients of the last layers are dropped for that many steps;
  −1 = the first 1% of the run (DINO's one epoch of 100).
* τ_t warms up linearly over ``teacher_temp_warmup_fraction`` (0.3: DINO's 30 of 100 epochs);
  the EMA momentum follows ``cosine_schedule(total, 0, 0.996, 1)``. Teachers run in train mode
  (batch statistics), and only parameters are averaged, as in DINO.
* Saved models: ``student`` and ``peer`` are the EMA teachers' backbones (what the paper evaluates).
* ``λ = 0`` (``control_overrides``: each model a DINO run of its own) skips the cross and search
  terms instead of weighting them by zero: the same gradients, without the other teacher's search.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import nn
from torchvision.transforms import v2

from compressor.data.transforms import AugmentConfig, Views, augment_transform
from compressor.engine.recipe import (
    SHORT_RUN_OPTIMIZER,
    Recipe,
    RecipeConfig,
    StepOutput,
    build_optimizer,
    register_recipe,
)
from compressor.engine.schedule import cosine_schedule
from compressor.errors import CompressorError
from compressor.losses.dino import DINOLoss, search_loss
from compressor.models.encoder import Encoder, InputSpec
from compressor.recipes._mokd_heads import MOKDNet, NetOut, is_vit, vit_backbone


@dataclass
class MOKDConfig(RecipeConfig):
    optimizer: str = "sgd"  # unused: see cnn_* / vit_*
    scale_lr_by_batch: bool = True
    warmup_fraction: float = 0.1
    min_lr_fraction: float = 0.04
    clip_grad: float = 3.0
    clip_per_parameter: bool = True  # DINO/MOKD clip each parameter's gradient norm on its own
    cnn_optimizer: str = "sgd"  # the CNN backbone's and MLP head's (the ViT and the T-Heads: AdamW)
    cnn_lr: float = 0.1
    rate_fields: ClassVar[tuple[str, ...]] = (*RecipeConfig.rate_fields, "cnn_optimizer", "cnn_lr", "vit_lr")
    # the short-run optimiser (SHORT_RUN_OPTIMIZER) on every group: the per-model fields this recipe reads
    short_run_settings: ClassVar[dict[str, Any]] = {
        "scale_lr_by_batch": SHORT_RUN_OPTIMIZER["scale_lr_by_batch"],
        "cnn_optimizer": SHORT_RUN_OPTIMIZER["optimizer"],
        "cnn_lr": SHORT_RUN_OPTIMIZER["lr"], "vit_lr": SHORT_RUN_OPTIMIZER["lr"]}
    cnn_weight_decay: float = 1e-4
    vit_lr: float = 3e-4
    vit_weight_decay: float = 0.04
    vit_weight_decay_end: float = 0.4
    n_local_crops: int = 8
    global_scale: tuple[float, float] = (0.25, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.25)
    out_dim: int = 65536
    head_hidden_dim: int = 2048
    head_bottleneck_dim: int = 256
    thead_depth: int = 3
    thead_heads: int = 6
    student_temp: float = 0.1
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    teacher_temp_warmup_fraction: float = 0.3
    center_momentum: float = 0.9
    ema_momentum: float = 0.996
    lambda_cnn: float = 1.0
    lambda_vit: float = 0.1
    freeze_last_layer_steps: int = -1


def local_crop_size(image_size: int, patch: int) -> int:
    """``round(image_size·96/224)`` rounded to a multiple of the ViT patch (at least one patch)."""
    return max(patch, round(round(image_size * 96 / 224) / patch) * patch)


def multicrop_views(spec: InputSpec, local_size: int, cfg: MOKDConfig) -> Views:
    """DINO multi-crop: ``g0``, ``g1`` at ``spec.image_size`` and ``l0..l{n-1}`` at ``local_size``."""
    base = AugmentConfig(jitter=(0.4, 0.4, 0.2, 0.1), jitter_p=0.8, grayscale_p=0.2)

    def crop(size: int, scale: tuple[float, float], blur_p: float, solarize_p: float = 0.0) -> v2.Compose:
        aug = dataclasses.replace(base, scale=scale, blur_p=blur_p, solarize_p=solarize_p)
        return augment_transform(spec, aug, size)

    size = spec.image_size
    gs = (float(cfg.global_scale[0]), float(cfg.global_scale[1]))
    ls = (float(cfg.local_scale[0]), float(cfg.local_scale[1]))
    local = crop(local_size, ls, 0.5)
    return Views(g0=crop(size, gs, 1.0), g1=crop(size, gs, 0.1, 0.2),
                 **{f"l{i}": local for i in range(cfg.n_local_crops)})


def teacher_temperature(step: int, total_steps: int, cfg: MOKDConfig) -> float:
    """τ_t at ``step``: linear from ``warmup_teacher_temp`` to ``teacher_temp``, then constant."""
    warm = round(cfg.teacher_temp_warmup_fraction * total_steps)
    if step >= warm:
        return cfg.teacher_temp
    return cfg.warmup_teacher_temp + (cfg.teacher_temp - cfg.warmup_teacher_temp) * step / warm


def mokd_terms(s_glob: NetOut, s_loc: NetOut | None, t_own: NetOut, t_other: NetOut | None,
               searched: torch.Tensor | None, losses: nn.ModuleDict, teacher_temp: torch.Tensor,
               student_temp: float) -> dict[str, torch.Tensor]:
    """The four terms of one model's loss (crops in the order g0, g1, l0, ...; teacher on g0, g1).

    Without the other model's teacher (``t_other = None``) only the two self-distillation terms.
    """
    n_loc = 0 if s_loc is None else s_loc.mlp.shape[0] // (s_glob.mlp.shape[0] // 2)

    def crops(glob: torch.Tensor, loc: torch.Tensor | None) -> list[torch.Tensor]:
        return [*glob.chunk(2), *(loc.chunk(n_loc) if loc is not None and n_loc else [])]

    s_mlp = crops(s_glob.mlp, s_loc.mlp if s_loc else None)
    s_th = crops(s_glob.thead, s_loc.thead if s_loc else None)
    terms = {
        "mlp": losses["mlp"](s_mlp, t_own.mlp.chunk(2), teacher_temp),
        "thead": losses["thead"](s_th, t_own.thead.chunk(2), teacher_temp),
    }
    if t_other is None:
        return terms
    terms["cross"] = losses["cross"](s_mlp, t_other.mlp.chunk(2), teacher_temp)
    terms["search"] = (search_loss(s_loc.thead, searched, teacher_temp, student_temp)
                       if s_loc is not None and searched is not None else terms["mlp"].new_zeros(()))
    return terms


@register_recipe
class MOKD(Recipe[MOKDConfig]):
    name = "mokd"
    kind = "peer"
    description = "MOKD: a CNN and a ViT, each a DINO student with an EMA teacher, distil into each other"
    Config = MOKDConfig
    needs_peer = True
    control_overrides: ClassVar[dict[str, Any]] = {"lambda_cnn": 0.0, "lambda_vit": 0.0}  # two DINO runs
    test_overrides: ClassVar[dict] = {"out_dim": 64, "head_hidden_dim": 64, "head_bottleneck_dim": 32,
                                      "n_local_crops": 2}
    # buffers (registered in __init__)
    teacher_temp: torch.Tensor
    peer_scale: torch.Tensor
    peer_shift: torch.Tensor

    def __init__(self, cfg: MOKDConfig, student: Encoder, **kw) -> None:
        super().__init__(cfg, student, **kw)
        if self.peer is None:
            raise CompressorError("mokd trains a pair: pass --peer NAME (a ViT for a CNN student, a CNN for a ViT)")
        if is_vit(student) == is_vit(self.peer):
            raise CompressorError("mokd pairs a CNN with a ViT (a timm VisionTransformer, e.g. "
                                  f"vit_small_patch16_224); got {student.name} and {self.peer.name}")
        self.vit_key = "student" if is_vit(student) else "peer"
        self.cnn_key = "peer" if self.vit_key == "student" else "student"
        vit = student if self.vit_key == "student" else self.peer
        dims = dict(dim=vit.embed_dim, out_dim=cfg.out_dim, hidden_dim=cfg.head_hidden_dim,
                    bottleneck_dim=cfg.head_bottleneck_dim, depth=cfg.thead_depth, heads=cfg.thead_heads)
        self.nets = nn.ModuleDict({"student": MOKDNet(student, **dims), "peer": MOKDNet(self.peer, **dims)})
        # EMA teachers: trainable=False but not `_frozen`, so they stay in checkpoints and in train mode.
        self.ema = copy.deepcopy(self.nets).requires_grad_(False)
        # One DINO loss (one centre) per term and model: its own, its T-Head's, and the cross term's.
        self.losses = nn.ModuleDict({k: nn.ModuleDict({
            t: DINOLoss(cfg.out_dim, student_temp=cfg.student_temp, center_momentum=cfg.center_momentum)
            for t in ("mlp", "thead", "cross")}) for k in ("student", "peer")})
        self.register_buffer("teacher_temp", torch.tensor(cfg.warmup_teacher_temp))
        # The crops are normalised for the student; x·scale + shift re-normalises them for the peer.
        s, p = student.spec, self.peer.spec
        scale = torch.tensor(s.std) / torch.tensor(p.std)
        shift = (torch.tensor(s.mean) - torch.tensor(p.mean)) / torch.tensor(p.std)
        self.register_buffer("peer_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("peer_shift", shift.view(1, 3, 1, 1), persistent=False)
        self._vit_decay_groups: list[dict] = []
        self._schedules: dict[tuple, list[float]] = {}

    # nn.ModuleDict items are typed as Module: these give them their classes
    def net(self, key: str) -> MOKDNet:
        """The trained ``MOKDNet`` of ``key`` ("student" or "peer")."""
        return cast(MOKDNet, self.nets[key])

    def ema_net(self, key: str) -> MOKDNet:
        """The EMA teacher (a ``MOKDNet``) of ``key``."""
        return cast(MOKDNet, self.ema[key])

    # -- data ---------------------------------------------------------------------------------
    @property
    def local_size(self) -> int:
        vit = vit_backbone(self.net(self.vit_key).encoder)
        return local_crop_size(self.student.spec.image_size, int(vit.patch_embed.patch_size[0]))

    def views(self) -> Callable:
        return multicrop_views(self.student.spec, self.local_size, self.cfg)

    # -- the loss -----------------------------------------------------------------------------
    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        cfg = self.cfg
        glob = torch.cat([batch["g0"], batch["g1"]])
        loc = torch.cat([batch[f"l{i}"] for i in range(cfg.n_local_crops)]) if cfg.n_local_crops else None
        b = batch["g0"].shape[0]
        s: dict[str, tuple[NetOut, NetOut | None]] = {}
        t: dict[str, NetOut] = {}
        for key in ("student", "peer"):
            def fit(x: torch.Tensor, key: str = key) -> torch.Tensor:
                return x if key == "student" else x * self.peer_scale + self.peer_shift

            s[key] = (self.net(key)(fit(glob)), self.net(key)(fit(loc)) if loc is not None else None)
            with torch.no_grad():
                t[key] = self.ema_net(key)(fit(glob))
        other = {"student": "peer", "peer": "student"}
        total, logs = glob.new_zeros((), dtype=torch.float32), {}
        for key in ("student", "peer"):
            s_loc = s[key][1]
            lam = cfg.lambda_vit if key == self.vit_key else cfg.lambda_cnn
            t_other, searched = None, None  # λ = 0 (the control: each model alone) computes neither cross term
            if lam:
                t_other = t[other[key]]
                # This model's student feature on each local crop (detached) is the query with which the OTHER
                # model's teacher searches its tokens of global crop 1; the result is this model's target.
                if s_loc is not None:
                    searched = self.ema_net(other[key]).search(t_other.tokens[:b], s_loc.query.detach())
            losses = cast(nn.ModuleDict, self.losses[key])  # this model's DINO losses, by term
            terms = mokd_terms(s[key][0], s_loc, t[key], t_other, searched, losses, self.teacher_temp,
                               cfg.student_temp)
            model_loss = terms["mlp"] + terms["thead"]
            if t_other is not None:
                model_loss = model_loss + lam * (terms["cross"] + terms["search"])
            total = total + model_loss
            name = "vit" if key == self.vit_key else "cnn"
            logs.update({f"{name}_{k}": v.detach() for k, v in terms.items()})
            logs[f"loss_{name}"] = model_loss.detach()
        return StepOutput(total, logs)

    # -- optimisation -------------------------------------------------------------------------
    def _groups(self) -> list[tuple[bool, list[nn.Parameter]]]:
        """(on the ViT schedules?, parameters) per optimiser: the CNN's T-Head joins the ViT's schedules."""
        out: list[tuple[bool, list[nn.Parameter]]] = []
        for key in ("student", "peer"):
            net = self.net(key)
            if key == self.vit_key:
                out.append((True, [p for p in net.parameters() if p.requires_grad]))
            else:
                thead = {id(p) for p in net.thead.parameters()}
                out.append((False, [p for p in net.parameters() if p.requires_grad and id(p) not in thead]))
                out.append((True, [p for p in net.thead.parameters() if p.requires_grad]))
        return out

    def param_groups(self) -> list[list[nn.Parameter]]:
        return [params for _, params in self._groups()]

    def optimizers(self) -> list[torch.optim.Optimizer]:
        cfg = self.cfg
        opts = []
        self._vit_decay_groups = []
        for vit_schedules, params in self._groups():
            c = dataclasses.replace(cfg, optimizer="adamw" if vit_schedules else cfg.cnn_optimizer,
                                    lr=cfg.vit_lr if vit_schedules else cfg.cnn_lr,
                                    weight_decay=cfg.vit_weight_decay if vit_schedules else cfg.cnn_weight_decay)
            opts.append(build_optimizer(c, params, self.data.batch_size))
            if vit_schedules:
                self._vit_decay_groups += [g for g in opts[-1].param_groups if g["weight_decay"] > 0]
        return opts

    def freeze_last_layer_steps(self, total_steps: int) -> int:
        n = self.cfg.freeze_last_layer_steps
        return round(0.01 * total_steps) if n < 0 else n

    def on_after_backward(self, step: int, total_steps: int) -> None:
        if step < self.freeze_last_layer_steps(total_steps):
            for key in ("student", "peer"):
                for p in self.net(key).last_layers():
                    p.grad = None  # the optimiser skips it: no update, no momentum, no decay

    def _schedule(self, name: str, total_steps: int, start: float, end: float) -> list[float]:
        """``cosine_schedule(total, 0, start, end)``, computed once per run length."""
        key = (name, total_steps, start, end)
        if key not in self._schedules:
            self._schedules[key] = cosine_schedule(total_steps, 0, start, end)
        return self._schedules[key]

    def momentum(self, step: int, total_steps: int) -> float:
        """The EMA momentum at ``step``: ``cosine_schedule(total, 0, ema_momentum, 1)[step]``."""
        sched = self._schedule("ema", total_steps, self.cfg.ema_momentum, 1.0)
        return sched[min(step, total_steps - 1)]

    @torch.no_grad()
    def on_step_end(self, step: int, total_steps: int) -> None:
        m = self.momentum(step, total_steps)
        for key in ("student", "peer"):  # θ_t ← m·θ_t + (1 − m)·θ_s, one fused call per model (as dinov2)
            teacher: list[torch.Tensor] = list(self.ema_net(key).parameters())
            student = list(self.net(key).parameters())
            torch._foreach_mul_(teacher, m)
            torch._foreach_add_(teacher, [p.detach() for p in student], alpha=1 - m)
        cfg = self.cfg
        nxt = step + 1
        self.teacher_temp.fill_(teacher_temperature(nxt, total_steps, cfg))
        if nxt < total_steps:
            wd = self._schedule("wd", total_steps, cfg.vit_weight_decay, cfg.vit_weight_decay_end)[nxt]
            for g in self._vit_decay_groups:
                g["weight_decay"] = wd

    def saved_models(self) -> dict[str, Encoder]:
        """The EMA teachers' backbones: what the paper evaluates."""
        return {"student": self.ema_net("student").encoder, "peer": self.ema_net("peer").encoder}
