"""MOKD's heads and the per-model wrapper: DINO head, transformer head (T-Head), feature search.

One ``MOKDNet`` = a backbone (``Encoder``) + a DINO MLP head + a T-Head. The EMA teacher of a model
is a deep copy of its ``MOKDNet``. See ``recipes/mokd.py`` for the losses built on these outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import torch
import torch.nn.functional as F
from timm.layers import Format, trunc_normal_
from timm.models.vision_transformer import Block, VisionTransformer
from torch import nn

from compressor.errors import CompressorError
from compressor.models.encoder import Encoder
from compressor.models.heads import mlp


def is_vit(encoder: Encoder) -> bool:
    """A timm ``VisionTransformer`` (vit_*, deit_*): patch tokens + prefix (CLS) tokens."""
    return isinstance(encoder.backbone, VisionTransformer)


def vit_backbone(encoder: Encoder) -> VisionTransformer:
    """``encoder.backbone`` typed as the timm ``VisionTransformer`` it is (for an ``is_vit`` encoder)."""
    return cast(VisionTransformer, encoder.backbone)


def make_vit_dynamic(encoder: Encoder) -> None:
    """Let a timm ViT take any input size (local crops): what ``dynamic_img_size=True`` sets up.

    In place, so the parameters (and a saved state dict) are unchanged: the patch embedding stops
    checking the size and hands NHWC tokens to ``_pos_embed``, which then resamples the position
    embedding to the token grid of each input.
    """
    vit = vit_backbone(encoder)
    if getattr(vit, "dynamic_img_size", False):
        return
    pe = vit.patch_embed
    pe.strict_img_size, pe.flatten, pe.output_fmt = False, False, Format.NHWC
    object.__setattr__(vit, "dynamic_img_size", True)  # timm marks it Final (for TorchScript)


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class WeightNormLinear(nn.Module):
    """``x ↦ x Wᵀ`` with each row of ``W`` normalised: weight_norm with its gain fixed at 1 (no bias).

    DINO's ``norm_last_layer=True``; the rows of ``weight`` are the (unnormalised) directions.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, F.normalize(self.weight, dim=1))


class DINOHead(nn.Module):
    """``d → hidden → hidden → bottleneck`` (GELU, no BN), ``norm``, weight-normalised Linear to ``K``."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048, bottleneck_dim: int = 256) -> None:
        super().__init__()
        self.mlp = mlp(in_dim, (hidden_dim, hidden_dim, bottleneck_dim), bn=False, act=nn.GELU)
        self.mlp.apply(_init_linear)
        self.last = WeightNormLinear(bottleneck_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


class THead(nn.Module):
    """Transformer head: tokens → ``depth`` blocks → LayerNorm → mean-pool → weight-normalised Linear.

    For a CNN (``in_dim`` given) the last feature map is first reduced by a 1×1 conv to ``dim`` and
    learned positions (a ``grid×grid`` map, resized to other feature-map sizes) are added; the
    spatial mean of the reduced map, before the positions, is ``x_pool``. A ViT's patch tokens go in
    as they are (they already carry positions).
    """

    def __init__(self, dim: int, out_dim: int, *, depth: int = 3, heads: int = 6, in_dim: int | None = None,
                 grid: int = 7) -> None:
        super().__init__()
        if dim % heads:
            raise CompressorError(f"the T-Head width {dim} is not divisible by thead_heads={heads}")
        self.reduce = nn.Conv2d(in_dim, dim, 1) if in_dim else None
        self.pos = nn.Parameter(trunc_normal_(torch.zeros(1, dim, grid, grid), std=0.02)) if in_dim else None
        norm = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.Sequential(*[  # timm annotates norm_layer as type[Module]; its own models pass partials
            Block(dim, heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=cast(type[nn.Module], norm))
            for _ in range(depth)])
        self.norm = norm(dim)
        self.blocks.apply(_init_linear)
        self.last = WeightNormLinear(dim, out_dim)

    def tokens(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A CNN feature map (B, C, h, w) → tokens (B, h·w, D) with positions, and ``x_pool`` (B, D)."""
        assert self.reduce is not None and self.pos is not None
        x = self.reduce(fmap)
        x_pool = x.mean(dim=(2, 3))
        pos = self.pos if self.pos.shape[-2:] == x.shape[-2:] else \
            F.interpolate(self.pos, size=x.shape[-2:], mode="bicubic", align_corners=False)
        return (x + pos).flatten(2).transpose(1, 2), x_pool

    def forward(self, tokens: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Head output (B, K); with ``prefix`` (B, D) it is prepended, attended with, then dropped."""
        x = tokens if prefix is None else torch.cat([prefix[:, None], tokens], dim=1)
        x = self.blocks(x)
        if prefix is not None:
            x = x[:, 1:]
        return self.last(self.norm(x).mean(dim=1))


@dataclass
class NetOut:
    """What one model gives for one batch of same-size crops (rows = crops × batch)."""

    mlp: torch.Tensor  # DINO head output (n·B, K)
    thead: torch.Tensor  # T-Head output (n·B, K)
    query: torch.Tensor  # what the other model's teacher searches with: CNN x_pool, ViT CLS (n·B, D)
    tokens: torch.Tensor  # the T-Head's input tokens (n·B, P, D)


class MOKDNet(nn.Module):
    """A backbone with its DINO head and T-Head; ``dim`` is the T-Head width (the ViT's width)."""

    def __init__(self, encoder: Encoder, *, dim: int, out_dim: int, hidden_dim: int, bottleneck_dim: int,
                 depth: int, heads: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.vit = is_vit(encoder)
        if self.vit:
            make_vit_dynamic(encoder)
            thead = THead(dim, out_dim, depth=depth, heads=heads)
        else:
            info = getattr(encoder.backbone, "feature_info", None) or [{"reduction": 32}]
            grid = max(1, math.ceil(encoder.spec.image_size / info[-1]["reduction"]))
            thead = THead(dim, out_dim, depth=depth, heads=heads, in_dim=encoder.embed_dim, grid=grid)
        self.mlp_head = DINOHead(encoder.embed_dim, out_dim, hidden_dim, bottleneck_dim)
        self.thead = thead

    def last_layers(self) -> list[nn.Parameter]:
        """The weight-normalised output layers (frozen during the first steps)."""
        return [self.mlp_head.last.weight, self.thead.last.weight]

    def forward(self, x: torch.Tensor) -> NetOut:
        bb = cast(Any, self.encoder.backbone)  # a timm model; torch types its methods as Tensor | Module
        feats = bb.forward_features(x)
        pooled = bb.forward_head(feats, pre_logits=True)
        if self.vit:
            tokens, query = feats[:, bb.num_prefix_tokens:], pooled
        else:
            tokens, query = self.thead.tokens(feats)
        return NetOut(self.mlp_head(pooled), self.thead(tokens), query, tokens)

    @torch.no_grad()
    def search(self, tokens: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Cross-attention feature search: each query (n·B, D), crop by crop, against the tokens (B, P, D)
        of the same image: prefixed, run through the T-Head, query dropped, mean-pooled, projected.

        Always without gradient: the query is the other model's (detached) feature and the result
        is a teacher target.
        """
        n = queries.shape[0] // tokens.shape[0]
        return self.thead(tokens.detach().repeat(n, 1, 1), prefix=queries.detach())
