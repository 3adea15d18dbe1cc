"""MOMA: distilling from MoCo and/or MAE teachers into a masked student (Yao, Desai, Palaniswami;
arXiv 2302.02089).

One or more frozen self-supervised teachers ``T_k`` see the original image ``x``; the student ``f``
sees the same image with a high ratio of its patches masked, ``m(x)``. With one MLP projector
``g_k`` per teacher (Linear-BN-ReLU-Linear into the teacher's width):

    t_k = norm(LN(T_k(x)))                          LN: LayerNorm without parameters (eps 1e-6)
    L   = Σ_k w_k · (2 − 2·cos(norm(g_k(f(m(x)))), t_k))      averaged over the batch

No public code exists and only the abstract could be verified, so everything below the abstract's
level is our choice (each one a config field where it is a number):

* Masking: square patches of ``patch_size`` px (the ViT's own patch size; for other students
  ``patch_size = 0`` keeps the 14×14 grid that 16 px patches make on a 224 px image:
  ``max(1, round(side / 14))`` px, so 16 px at 224, 5 px at 64 and 2 px at 32 — a fixed 16 px patch
  would leave a 32 px image a 2×2 grid, i.e. the student would see a single quadrant),
  exactly ``round(mask_ratio × N)`` of the N patches of every image masked, drawn uniformly per
  image (Python's ``round``; at most N − 1, so one patch always stays visible). ``mask_ratio = -1``
  (the default) picks it from the student: **0.75 for a ViT** (MAE's ratio; the paper says very
  high ratios work, and its students drop the masked tokens as below) and ``zero_fill_mask_ratio``
  for any other student, which sees the masked patches as zeros and the whole image at eval time, so
  the ratio is also a train/test gap: 0.75 as declared, 0.5 under the short-run preset (``preset``,
  ``compressor.engine.preset.resolve_preset``; MGD's ratio for CNN classification students, Yang et
  al. 2022, ``lambda_mgd``, who mask the student's feature map, the nearest published CNN setting).
  0.5 was chosen on a short run; it has not been measured at a long one, so long runs keep 0.75 (the
  measurements: docs/benchmarks.md). config.yaml records the ratio used.
* A timm ``VisionTransformer`` student **drops** the masked tokens as MAE does: patch embedding and
  position embedding on the full grid, then only the prefix (CLS) tokens and the visible patch
  tokens go through the blocks, the final norm and the model's own pooling. So a ratio r costs
  about (1 − r) of the encoder's compute. Any other student (CNNs, hierarchical transformers) sees
  the full image with the masked patches set to 0 *after* normalisation (the dataset mean colour);
  a grid that does not divide the image has partial patches at the right/bottom edge.
* BatchNorm of a CNN student: its running statistics are estimated on the **unmasked** images (a
  no-grad forward pass per step; the masked pass normalises with its batch statistics but leaves the
  running ones alone), since at eval time the student sees unmasked images and statistics learned
  on 75%-zeroed inputs would not fit them (``bn_stats_unmasked``; costs one more forward pass).
* Target: the teacher's pooled embedding (CLS for MoCo v3, mean patch token for MAE — whatever the
  teacher zoo defines) on the **unmasked** image, each teacher at its own resolution and
  normalisation. Teachers and student see one shared random crop (scale ``crop_scale_min``–1: 0.2,
  or 0.8 in runs shorter than ``short_run_steps``, ``compressor.engine.recipe.SHORT_RUN_CROP``) and
  flip, MAE's pre-training augmentation, no colour jitter. ``teacher_view=clean`` instead shows the
  teachers the whole image (resize + centre crop, no flip): ``T_k`` then depends on the image alone,
  so with one teacher ``--teacher-cache`` can hold it (the target becomes the image's embedding rather
  than the crop's).
* Several teachers: the per-teacher losses are summed with ``teacher_loss_weights`` (default 1
  each, i.e. equal); ``--teacher moco-v3-vit-b16,mae-vit-b16`` gives the paper's MoCo+MAE mode.
* Optimisation: AdamW, lr 1e-3 (not scaled by the batch), wd 0.05, 5% warm-up then cosine. MAE's
  1.5e-4 × B/256 is tuned for batch 4096 (2.4e-3 there) and collapses to 7.5e-5 at batch 128; with no
  authors' code to follow we use feature-kd's rate, the nearest recipe (a cosine regression too).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from compressor.data.transforms import AugmentConfig, SameView, Views, augment_transform, eval_transform
from compressor.engine.recipe import Recipe, ShortRunCropConfig, StepOutput, register_recipe
from compressor.errors import CompressorError
from compressor.models.encoder import Encoder
from compressor.models.heads import mlp


@dataclass
class MOMAConfig(ShortRunCropConfig):
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.05
    mask_ratio: float = -1.0  # -1 = 0.75 for a ViT student (token drop), zero_fill_mask_ratio for others
    zero_fill_mask_ratio: float = 0.75  # mask_ratio -1's for students that see zeroed patches; short runs: 0.5
    patch_size: int = 0  # 0 = the ViT student's patch size, else max(1, round(side / 14)) px
    bn_stats_unmasked: bool = True  # CNN BatchNorm running statistics from unmasked images
    hidden_dim: int = 2048  # projector Linear(d, hidden)-BN-ReLU-Linear(hidden, teacher width)
    teacher_loss_weights: tuple[float, ...] = ()  # one per teacher; empty = 1 each
    ln_eps: float = 1e-6
    teacher_view: str = "augmented"  # augmented (the student's crop) | clean (whole image; cacheable)
    short_run_settings: ClassVar[dict[str, Any]] = {**ShortRunCropConfig.short_run_settings,
                                                    "zero_fill_mask_ratio": 0.5}


VIT_MASK_RATIO = 0.75  # MAE's, for students that drop the masked tokens


def mask_patch_size(image_size: int) -> int:
    """Patch side that keeps the 14×14 grid of 16 px patches on 224 px: ``max(1, round(side / 14))``."""
    return max(1, round(image_size / 14))


def num_masked(num_patches: int, ratio: float) -> int:
    """``round(ratio × N)``, capped at N − 1 so every image keeps a visible patch."""
    return min(int(round(ratio * num_patches)), num_patches - 1)


def random_patch_mask(batch: int, num_patches: int, ratio: float, device: torch.device | None = None
                      ) -> torch.Tensor:
    """A (B, N) boolean mask, True = masked, with exactly ``num_masked(N, ratio)`` per row."""
    order = torch.rand(batch, num_patches, device=device).argsort(dim=1)
    mask = torch.zeros(batch, num_patches, dtype=torch.bool, device=device)
    return mask.scatter_(1, order[:, :num_masked(num_patches, ratio)], True)


def patch_grid(height: int, width: int, patch: int) -> tuple[int, int]:
    return -(-height // patch), -(-width // patch)


def zero_masked_patches(images: torch.Tensor, mask: torch.Tensor, patch: int) -> torch.Tensor:
    """``images`` with the patches where ``mask`` (B, gh·gw, row-major) is True set to 0."""
    b, _, h, w = images.shape
    gh, gw = patch_grid(h, w, patch)
    pixels = mask.view(b, gh, gw).repeat_interleave(patch, 1).repeat_interleave(patch, 2)[:, :h, :w]
    return images.masked_fill(pixels[:, None], 0.0)


def vit_visible_forward(vit: VisionTransformer, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The pooled embedding of a timm ViT that sees only the prefix tokens and the unmasked patches."""
    x = vit._pos_embed(vit.patch_embed(images))  # (B, prefix + N, C), positions added on the full grid
    npt = vit.num_prefix_tokens
    b, _, c = x.shape
    keep = (~mask).nonzero()[:, 1].view(b, -1)  # visible patch indices, ascending per image
    patches = x[:, npt:].gather(1, keep[..., None].expand(-1, -1, c))
    x = vit.norm_pre(vit.patch_drop(torch.cat([x[:, :npt], patches], dim=1)))
    return vit.forward_head(vit.norm(vit.blocks(x)))


def moma_loss(preds: Sequence[torch.Tensor], teacher_embs: Sequence[torch.Tensor], weights: Sequence[float],
              ln_eps: float = 1e-6) -> dict[str, torch.Tensor]:
    """``Σ_k w_k mean(2 − 2 cos(norm(p_k), norm(LN(t_k))))``; per-teacher terms as ``align_k``."""
    terms: dict[str, torch.Tensor] = {}
    total = preds[0].new_zeros((), dtype=torch.promote_types(preds[0].dtype, torch.float32))
    for k, (p, t, w) in enumerate(zip(preds, teacher_embs, weights, strict=True)):
        p = p.to(total.dtype)
        t = F.normalize(F.layer_norm(t.detach().to(total.dtype), t.shape[-1:], eps=ln_eps), dim=-1)
        terms[f"align_{k}"] = (2 - 2 * F.cosine_similarity(F.normalize(p, dim=-1), t, dim=-1)).mean()
        total = total + w * terms[f"align_{k}"]
    terms["loss"] = total
    return terms


@contextlib.contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with batch statistics but leave their running statistics unchanged."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None)
             for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 − momentum)·running + momentum·batch → unchanged
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


@register_recipe
class MOMA(Recipe[MOMAConfig]):
    name = "moma"
    kind = "teacher→student"
    description = "MOMA: a masked student regresses the normalised embeddings of one or more frozen teachers"
    Config = MOMAConfig
    needs_teacher = True
    multi_teacher = True

    def __init__(self, cfg: MOMAConfig, student: Encoder, **kw) -> None:
        super().__init__(cfg, student, **kw)
        if not (0 <= cfg.mask_ratio < 1 or cfg.mask_ratio == -1):
            raise CompressorError(f"moma.mask_ratio must be in [0, 1) or -1 (by the student), got {cfg.mask_ratio}")
        if not 0 <= cfg.zero_fill_mask_ratio < 1:
            raise CompressorError(f"moma.zero_fill_mask_ratio must be in [0, 1), got {cfg.zero_fill_mask_ratio}")
        weights = cfg.teacher_loss_weights or (1.0,) * len(self.teachers)
        if len(weights) != len(self.teachers):
            raise CompressorError(f"moma.teacher_loss_weights has {len(weights)} values for "
                                  f"{len(self.teachers)} teachers; give one per teacher")
        self.loss_weights = [float(w) for w in weights]
        backbone = student.backbone
        self.drops_tokens = isinstance(backbone, VisionTransformer)
        if cfg.mask_ratio == -1:  # recorded resolved in config.yaml
            cfg.mask_ratio = VIT_MASK_RATIO if self.drops_tokens else cfg.zero_fill_mask_ratio
        if isinstance(backbone, VisionTransformer):  # self.drops_tokens
            vit_patch = int(backbone.patch_embed.patch_size[0])
            if cfg.patch_size not in (0, vit_patch):
                raise CompressorError(f"moma.patch_size {cfg.patch_size} differs from the ViT student's "
                                      f"patch size {vit_patch}; leave it at 0")
            self.patch_size = vit_patch
        else:
            self.patch_size = cfg.patch_size or mask_patch_size(student.spec.image_size)
        self.projectors = nn.ModuleList(mlp(student.embed_dim, (cfg.hidden_dim, t.embed_dim))
                                        for t in self.teacher_encoders)
        if cfg.teacher_view not in ("augmented", "clean"):
            raise CompressorError(f"moma: teacher_view={cfg.teacher_view!r} is not one of augmented, clean; "
                                  "use --set teacher_view=clean for a cacheable teacher view")
        self.teacher_cache_view = "t0" if cfg.teacher_view == "clean" and len(self.teachers) == 1 else None

    @property
    def teacher_encoders(self) -> list[Encoder]:
        """The teachers, typed as the encoders they are (``nn.ModuleList`` types its items as ``Module``)."""
        return cast("list[Encoder]", list(self.teachers))

    def views(self) -> Callable:
        aug = AugmentConfig(scale=(self.cfg.crop_scale_min, 1.0), jitter_p=0.0, grayscale_p=0.0,
                            blur_p=0.0)
        specs = {f"t{k}": t.spec for k, t in enumerate(self.teacher_encoders)}
        if self.cfg.teacher_view == "clean":
            clean = {k: eval_transform(v) for k, v in specs.items()}
            return Views(x=augment_transform(self.student.spec, aug), **clean)
        return SameView(aug, x=self.student.spec, **specs)

    def masked_embedding(self, images: torch.Tensor) -> torch.Tensor:
        """The student's pooled embedding of ``images`` with ``mask_ratio`` of its patches masked."""
        gh, gw = patch_grid(images.shape[-2], images.shape[-1], self.patch_size)
        mask = random_patch_mask(images.shape[0], gh * gw, self.cfg.mask_ratio, images.device)
        if self.drops_tokens:
            # drops_tokens: __init__ found the backbone to be a VisionTransformer
            return vit_visible_forward(cast(VisionTransformer, self.student.backbone), images, mask)
        if not (self.cfg.bn_stats_unmasked and self.training):
            return self.student(zero_masked_patches(images, mask, self.patch_size))
        with torch.no_grad():
            self.student(images)  # running statistics from the unmasked images eval will see
        with frozen_running_stats(self.student):
            return self.student(zero_masked_patches(images, mask, self.patch_size))

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        with torch.no_grad():  # teacher 0 through the on-disk cache when one is attached
            targets = [self.teacher_embedding(batch, "t0")] + [t(batch[f"t{k}"]) for k, t in
                                                                enumerate(self.teachers) if k > 0]
        s = self.masked_embedding(batch["x"])
        terms = moma_loss([g(s) for g in self.projectors], targets, self.loss_weights, self.cfg.ln_eps)
        return StepOutput(terms["loss"], {k: v.detach() for k, v in terms.items() if k != "loss"})
