"""Projector heads used by the recipes."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def mlp(in_dim: int, dims: Sequence[int], *, bn: bool = True, bias_last: bool = True,
        act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``Linear-BN-act`` blocks through ``dims``; the last layer is a plain Linear (SimCLR/VICReg style)."""
    layers: list[nn.Module] = []
    prev = in_dim
    for i, d in enumerate(dims):
        last = i == len(dims) - 1
        layers.append(nn.Linear(prev, d, bias=bias_last if last else not bn))
        if not last:
            if bn:
                layers.append(nn.BatchNorm1d(d))
            layers.append(act())
        prev = d
    return nn.Sequential(*layers)
