"""Weighted k-nearest-neighbour classification on frozen embeddings (Wu et al. 2018; DINO's eval_knn).

Each query votes with its ``k`` most cosine-similar bank embeddings, neighbour ``j`` weighted by
``exp(sim_j / t)``; the predicted class has the largest summed weight.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, *, k: int = 20,
                t: float = 0.07, num_classes: int | None = None, chunk: int = 1024) -> torch.Tensor:
    """Predicted labels of ``queries`` (N×D) given a labelled ``bank`` (M×D)."""
    bank = F.normalize(bank.float(), dim=1)
    queries = F.normalize(queries.float(), dim=1)
    num_classes = num_classes or int(bank_labels.max()) + 1
    k = min(k, bank.shape[0])
    preds = []
    for q in queries.split(chunk):
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[idx], (sim / t).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_top1(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, query_labels: torch.Tensor,
             *, k: int = 20, t: float = 0.07) -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of the weighted kNN classifier."""
    num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
    pred = knn_predict(bank, bank_labels, queries, k=k, t=t, num_classes=num_classes)
    return float((pred == query_labels).float().mean())
