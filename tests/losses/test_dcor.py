"""Distance correlation against the independent ``dcor`` package, in float64."""

import dcor
import numpy as np
import pytest
import torch

from compressor.losses.dcor import distance_correlation, distance_covariance_sqr


@pytest.mark.parametrize(("n", "p", "q"), [(8, 1, 1), (16, 5, 3), (32, 64, 128), (64, 3, 512)])
def test_matches_dcor_package(n: int, p: int, q: int) -> None:
    rng = np.random.default_rng(n * p + q)
    x = rng.normal(size=(n, p))
    y = np.tanh(x[:, :1]) * rng.normal(size=(1, q)) + 0.5 * rng.normal(size=(n, q))
    ref = dcor.distance_correlation(x, y)
    # With a negligible clamp the statistic is the textbook one on any data ...
    ours = distance_correlation(torch.from_numpy(x), torch.from_numpy(y), eps=1e-300).item()
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)
    cov = distance_covariance_sqr(torch.from_numpy(x), torch.from_numpy(y), eps=1e-300).item()
    assert cov == pytest.approx(dcor.distance_covariance_sqr(x, y), rel=1e-9)
    # ... and with the default clamp (1e-4 on squared distances) too, once points are > 0.01 apart.
    xs, ys = 100 * x, 100 * y  # dCor is scale invariant; this only separates the points
    assert _min_distance(xs) > 0.01 and _min_distance(ys) > 0.01
    ours = distance_correlation(torch.from_numpy(xs), torch.from_numpy(ys)).item()
    assert ours == pytest.approx(ref, rel=1e-9, abs=1e-12)


def _min_distance(m: np.ndarray) -> float:
    d = np.sqrt(((m[:, None] - m[None]) ** 2).sum(-1))
    return float(d[~np.eye(len(m), dtype=bool)].min())


def test_range_and_invariances() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 10, generator=g, dtype=torch.float64)
    assert distance_correlation(x, x).item() == pytest.approx(1.0, abs=1e-9)
    assert distance_correlation(x, 7.0 * x + 3.0).item() == pytest.approx(1.0, abs=1e-9)  # scale invariant
    indep = torch.randn(32, 10, generator=g, dtype=torch.float64)
    assert 0.0 <= distance_correlation(x, indep).item() < 0.8


def test_gradient_is_finite_for_duplicate_points() -> None:
    x = torch.randn(8, 4, dtype=torch.float64)
    x = torch.cat([x, x[:2]]).requires_grad_()  # two exact duplicates: zero off-diagonal distances
    y = torch.randn(10, 3, dtype=torch.float64)
    distance_correlation(x, y).backward()
    assert torch.isfinite(x.grad).all()
