"""Distance correlation (Székely, Rizzo & Bakirov 2007), differentiable, as MV-MR uses it.

For a batch ``X`` (B×p) and ``Y`` (B×q): pairwise Euclidean distance matrices ``a_ij = ‖x_i − x_j‖``,
double-centred ``A_ij = a_ij − ā_i· − ā_·j + ā_··`` (same for ``B``), then

    dCov²(X, Y) = mean(A ∘ B)              (the V-statistic)
    dCor(X, Y)  = dCov(X, Y) / sqrt(dCov(X, X) · dCov(Y, Y))     ∈ [0, 1]

Squared distances are clamped at ``eps`` (1e-4) before the square root so the gradient stays finite
for near-identical points; the diagonal (a point's distance to itself) is then set to exactly 0, so
for points further apart than sqrt(eps) the value equals the textbook statistic (and the ``dcor``
package).
"""

from __future__ import annotations

import torch


def pairwise_distances(x: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """``‖x_i − x_j‖`` with squared distances clamped at ``eps`` off the diagonal and 0 on it."""
    x = x.flatten(1)
    sq = (x * x).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * x @ x.T).clamp_min(eps)
    eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
    return d2.sqrt().masked_fill(eye, 0.0)


def double_centre(d: torch.Tensor) -> torch.Tensor:
    return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()


def distance_covariance_sqr(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """``dCov²(X, Y) = mean(A ∘ B)``."""
    return (double_centre(pairwise_distances(x, eps)) * double_centre(pairwise_distances(y, eps))).mean()


def distance_correlation(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """``dCor(X, Y)``; computed in float32 at least (autocast's bf16 is too coarse for it)."""
    dtype = torch.promote_types(x.dtype, torch.float32)
    a = double_centre(pairwise_distances(x.to(dtype), eps))
    b = double_centre(pairwise_distances(y.to(dtype), eps))
    dcov_xy = (a * b).mean().clamp_min(0)
    dcov_xx = (a * a).mean()
    dcov_yy = (b * b).mean()
    return (dcov_xy / (dcov_xx * dcov_yy).sqrt().clamp_min(1e-12)).clamp_min(1e-12).sqrt()
