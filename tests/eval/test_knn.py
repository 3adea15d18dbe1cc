"""kNN and linear probe against brute-force references."""

import numpy as np
import pytest
import torch

from compressor.eval.knn import knn_predict, knn_top1
from compressor.eval.linear import linear_probe


def _knn_reference(bank, labels, queries, k, t, c):
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    preds = []
    for q in queries:
        sim = bank @ q
        top = np.argsort(-sim, kind="stable")[:k]
        votes = np.zeros(c)
        for j in top:
            votes[labels[j]] += np.exp(sim[j] / t)
        preds.append(votes.argmax())
    return np.array(preds)


def test_weighted_knn_matches_bruteforce() -> None:
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(200, 16))
    labels = rng.integers(0, 5, 200)
    queries = rng.normal(size=(50, 16))
    ours = knn_predict(torch.from_numpy(bank), torch.from_numpy(labels), torch.from_numpy(queries), k=20, t=0.07,
                       num_classes=5, chunk=7)
    assert (ours.numpy() == _knn_reference(bank, labels, queries, 20, 0.07, 5)).all()


def test_knn_and_probe_on_separable_data() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 32, generator=g) * 3
    y = torch.arange(400) % 4
    x = centres[y] + torch.randn(400, 32, generator=g)
    assert knn_top1(x[:300], y[:300], x[300:], y[300:]) > 0.95
    assert linear_probe(x[:300], y[:300], x[300:], y[300:]).top1 > 0.95
    shuffled = y[torch.randperm(400, generator=g)]
    assert knn_top1(x[:300], shuffled[:300], x[300:], shuffled[300:]) < 0.5


@pytest.mark.parametrize("k", [1, 5])
def test_k_is_clamped_to_bank(k: int) -> None:
    x = torch.eye(3)
    assert knn_top1(x, torch.tensor([0, 1, 2]), x, torch.tensor([0, 1, 2]), k=k) == 1.0
