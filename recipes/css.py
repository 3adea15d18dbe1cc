"""CSS: Channel Self-Supervision for online knowledge distillation (Fan et al., 2022).

Supervised: two networks ``a`` and ``b`` learn from labels and from each other. Each network is a
shared trunk and N = 3 branches (copies of the remaining stages + a classifier over
``num_classes·N`` outputs). Branch ``i`` sees the trunk's feature map with one corner square of
side H/4 × W/4 zeroed across all channels (branch 0 top-left, 1 bottom-right, 2 bottom-left,
3 top-right) and is trained on the joint label ``y·N + i``. With ``p^i = softmax(z^i / T)`` the
branch's softmax over **all** ``num_classes·N`` joint logits (the authors' ``train.py`` takes the KL
over the whole joint output ``out[:, :, i]``, so the peer's mass on the other transformation labels —
the self-supervision knowledge — is part of the target) and T = 3:

    L_a = (1/N) Σ_i CE(z_a^i, y·N+i) + α_1 · T² · (1/N) Σ_i KL(p_b^i ‖ p_a^i),   α_1 = CE_a / CE_b
    L_b   symmetric with α_2 = CE_b / CE_a;   L = L_a + L_b

Inference: logit of class ``c`` = mean over branches ``i`` of ``z^i[c·N + i]`` (``ensemble_logits``).

Choices where METHODS.md leaves room:

* Split: timm ResNets (``timm.models.resnet.ResNet``: resnet*, resnext*, seresnet*, resnet10t ...)
  only; the trunk is the stem + ``layer1 .. layer{split_at-1}``, each branch ``layer{split_at} ..
  layer4`` + global pooling (default ``split_at = 3``; the paper's CIFAR ResNets share the first
  stages and branch the last). Other models fail with a clear error.
* Branch 0 *is* the encoder's own ``layer{split_at}..`` (so the saved ``student``/``peer`` is the
  plain timm model: trunk + first branch, pooled, without a mask); branches 1.. are the same
  stages of a freshly initialised copy of the architecture.
* Gradients (``detach``, METHODS.md is silent): by default as the authors' ``train.py`` does it, which
  detaches nothing: both KL terms move both networks (``F.kl_div(log p_a, p_b)`` with ``p_b`` live) and
  α_1 = CE_a / CE_b is a live ratio, all in one backward of ``L_a + L_b``. ``detach=True`` is the mutual-
  learning convention instead: ``p_b`` in ``L_a`` (``p_a`` in ``L_b``) a fixed target and α a fixed weight.
* Feature maps smaller than 4 px get no mask (H // 4 = 0). Both networks see the same augmented
  image (crop scale 0.5–1 + flip: the stand-in for CIFAR's pad-4 crop), each at its own size and
  normalisation. The step schedule (×0.1 at 150/225 of 300 epochs) is the engine's cosine here;
  one SGD optimiser per network, no gradient clipping (``clip_grad = 0``).
  Runs shorter than ``short_run_steps`` (5,000) train with the short-run preset instead, AdamW
  lr 1e-3 (``preset``; ``compressor.engine.preset.resolve_preset``).
* ``kl_weight`` (1) scales both KL terms; ``--set kl_weight=0`` trains each network alone on css's
  branches and joint labels, the ablation that separates the peer's effect from the recipe's task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from timm.models.resnet import ResNet
from torch import nn

from compressor.data.transforms import AugmentConfig, SameView
from compressor.engine.recipe import Recipe, RecipeConfig, StepOutput, register_recipe
from compressor.errors import CompressorError
from compressor.models.encoder import Encoder
from compressor.models.students import create_timm_backbone

STEM = ("conv1", "bn1", "act1", "maxpool")
CORNERS = ("top-left", "bottom-right", "bottom-left", "top-right")


@dataclass
class CSSConfig(RecipeConfig):
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.0167  # 5 of 300 epochs
    clip_grad: float = 0.0
    n_branches: int = 3
    temperature: float = 3.0
    split_at: int = 3  # the first ResNet stage (layer1..layer4) copied into each branch
    crop_scale_min: float = 0.5
    kl_weight: float = 1.0  # scales both KL terms; 0 = each network alone on css's branches (an ablation)
    detach: bool = False  # False: the authors' train.py (targets and α live); True: mutual learning's fixed targets


def _full(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


def joint_labels(labels: torch.Tensor, n: int) -> list[torch.Tensor]:
    """The label of each branch ``i``: ``y·N + i``."""
    return [labels * n + i for i in range(n)]


def corner_mask(h: int, w: int, i: int, *, device: torch.device | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(1, 1, h, w) ones with corner ``i`` (0 TL, 1 BR, 2 BL, 3 TR) of side ``h//4 × w//4`` zeroed."""
    m = torch.ones(1, 1, h, w, device=device, dtype=dtype)
    sh, sw = h // 4, w // 4
    rows = slice(0, sh) if i in (0, 3) else slice(h - sh, h)
    cols = slice(0, sw) if i in (0, 2) else slice(w - sw, w)
    m[..., rows, cols] = 0
    return m


def ensemble_logits(branch_logits: list[torch.Tensor]) -> torch.Tensor:
    """Class logits (B, C): ``mean_i z^i[:, c·N + i]`` over the N branches."""
    n = len(branch_logits)
    return torch.stack([z[:, i::n] for i, z in enumerate(branch_logits)]).mean(0)


def css_loss(logits_a: list[torch.Tensor], logits_b: list[torch.Tensor], labels: torch.Tensor,
             temperature: float, kl_weight: float = 1.0, detach: bool = False) -> dict[str, torch.Tensor]:
    """``L_a``, ``L_b``, their CE and KL parts, α_1, α_2 and ``loss = L_a + L_b``.

    ``kl_weight`` multiplies both KL terms (1 = the paper; 0 isolates the peer: each network learns
    css's branches and joint labels alone). ``detach``: the KL's target side and α carry no gradient
    (mutual learning); without it, as in the authors' code, every term reaches both networks.
    """
    fixed: Callable[[torch.Tensor], torch.Tensor] = torch.Tensor.detach if detach else (lambda z: z)
    n, t = len(logits_a), temperature
    targets = joint_labels(labels, n)

    def ce(logits: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([F.cross_entropy(_full(z), y) for z, y in zip(logits, targets, strict=True)]).mean()

    def kl(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
        """(1/N) Σ_i KL(p_teacher^i ‖ p_student^i) over the joint logits, the teacher side detached."""
        terms = []
        for s, q in zip(student, teacher, strict=True):
            log_p_s = F.log_softmax(_full(s) / t, dim=1)
            log_p_q = F.log_softmax(_full(fixed(q)) / t, dim=1)
            terms.append(F.kl_div(log_p_s, log_p_q, reduction="batchmean", log_target=True))
        return torch.stack(terms).mean()

    ce_a, ce_b = ce(logits_a), ce(logits_b)
    alpha_1, alpha_2 = fixed(ce_a / ce_b), fixed(ce_b / ce_a)
    kl_a, kl_b = kl(logits_a, logits_b), kl(logits_b, logits_a)
    out = {"ce_a": ce_a, "ce_b": ce_b, "kl_a": kl_a, "kl_b": kl_b, "alpha_1": alpha_1, "alpha_2": alpha_2,
           "loss_a": ce_a + kl_weight * alpha_1 * t * t * kl_a, "loss_b": ce_b + kl_weight * alpha_2 * t * t * kl_b}
    out["loss"] = out["loss_a"] + out["loss_b"]
    return out


class BranchedNet(nn.Module):
    """A timm ResNet split into a shared trunk and ``n`` masked branches, each with its classifier."""

    def __init__(self, encoder: Encoder, n: int, num_classes: int, split_at: int) -> None:
        super().__init__()
        bb = encoder.backbone
        if not isinstance(bb, ResNet):
            raise CompressorError(f"css splits timm ResNets (resnet*, resnext*, seresnet*, resnet10t ...) into "
                                  f"a trunk and branches; {encoder.name} is a {type(bb).__name__}")
        if not 2 <= split_at <= 4:
            raise CompressorError(f"css split_at must be 2, 3 or 4 (the first branched ResNet stage), "
                                  f"got {split_at}")
        if not 1 <= n <= len(CORNERS):
            raise CompressorError(f"css n_branches must be 1..4 (one masked corner each), got {n}")
        self.encoder, self.n = encoder, n
        self.trunk_names = [*STEM, *(f"layer{k}" for k in range(1, split_at))]
        self.branch_names = [f"layer{k}" for k in range(split_at, 5)]
        self.branches = nn.ModuleList()  # branches 1..n-1: fresh stages (branch 0 is the encoder's)
        for _ in range(n - 1):
            fresh = create_timm_backbone(encoder.arch, encoder.spec.image_size, stem=encoder.stem)
            keep = (*self.branch_names, "global_pool")
            self.branches.append(nn.ModuleDict({k: getattr(fresh, k) for k in keep}))
        self.classifiers = nn.ModuleList(nn.Linear(encoder.embed_dim, num_classes * n) for _ in range(n))

    def _branch(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            bb = self.encoder.backbone
            for k in self.branch_names:
                x = getattr(bb, k)(x)
            return bb.forward_head(x, pre_logits=True)  # type: ignore[operator]  # timm's; torch types it Tensor | Module
        mods = cast(nn.ModuleDict, self.branches[i - 1])
        for k in self.branch_names:
            x = mods[k](x)
        return mods["global_pool"](x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The N branches' logits over the joint labels, each (B, num_classes·N)."""
        bb = self.encoder.backbone
        for k in self.trunk_names:
            x = getattr(bb, k)(x)
        h, w = x.shape[-2:]
        masks = [corner_mask(h, w, i, device=x.device, dtype=x.dtype) for i in range(self.n)]
        return [self.classifiers[i](self._branch(i, x * masks[i])) for i in range(self.n)]


@register_recipe
class CSS(Recipe[CSSConfig]):
    name = "css"
    kind = "supervised peer"
    description = "CSS: two branched networks, corner-masked branches with joint labels, mutual KL on joint logits"
    Config = CSSConfig
    needs_peer = True
    needs_labels = True

    def __init__(self, cfg: CSSConfig, student: Encoder, **kw) -> None:
        super().__init__(cfg, student, **kw)
        if self.peer is None:
            raise CompressorError("css trains a pair: pass --peer NAME (any timm model)")
        if self.data.num_classes < 2:
            raise CompressorError("css is supervised: it needs labelled data with at least 2 classes")
        self.net_a = BranchedNet(student, cfg.n_branches, self.data.num_classes, cfg.split_at)
        self.net_b = BranchedNet(self.peer, cfg.n_branches, self.data.num_classes, cfg.split_at)

    def views(self) -> Callable:
        aug = AugmentConfig(scale=(self.cfg.crop_scale_min, 1.0), jitter_p=0.0, grayscale_p=0.0,
                            blur_p=0.0)
        peer = cast(Encoder, self.peer)  # __init__ refused a missing peer
        return SameView(aug, x=self.student.spec, p=peer.spec)

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        za, zb = self.net_a(batch["x"]), self.net_b(batch["p"])
        terms = css_loss(za, zb, batch["label"], self.cfg.temperature, self.cfg.kl_weight, self.cfg.detach)
        logs = {k: v.detach() for k, v in terms.items() if k != "loss"}
        for name, z in (("a", za), ("b", zb)):
            logs[f"train_acc_{name}"] = (ensemble_logits(z).argmax(1) == batch["label"]).float().mean()
        return StepOutput(terms["loss"], logs)

    def param_groups(self) -> list[list[nn.Parameter]]:
        return [[p for p in net.parameters() if p.requires_grad] for net in (self.net_a, self.net_b)]
