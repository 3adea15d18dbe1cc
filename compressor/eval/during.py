"""kNN top-1 during training (``--eval-every N``): a curve of representation quality, not just of loss.

A small fixed subset keeps it cheap: the first ``bank`` training images as the kNN bank and the first
``queries`` held-out images as queries, embedded by the student in eval mode (BatchNorm's running
statistics, as at export), with the same weighted kNN as ``compress eval`` (cosine, k=20, T=0.07).
"""

from __future__ import annotations

import logging

import torch

from compressor.data.datasets import ImageDataset, build_dataset
from compressor.eval.embed import embed_dataset
from compressor.eval.knn import knn_top1
from compressor.models.encoder import Encoder

log = logging.getLogger("compressor")


class KnnMonitor:
    """Call with the student to get ``{"knn_top1": ...}``; an unlabelled dataset disables it with a warning."""

    def __init__(self, data: str, data_root: str | None, device: torch.device, *, bank: int = 1000,
                 queries: int = 500) -> None:
        self.device = device
        self.bank_size, self.query_size = bank, queries
        self.bank: ImageDataset | None = build_dataset(data, "train", data_root)
        self.queries: ImageDataset | None = build_dataset(data, "val", data_root)
        if not (self.bank.has_labels and self.queries.has_labels):
            log.warning("--eval-every: %s has no labels, so no kNN during training", data)
            self.bank = self.queries = None

    def __call__(self, student: Encoder) -> dict[str, float]:
        if self.bank is None or self.queries is None:
            return {}
        dev = str(self.device)
        xb, yb = embed_dataset(student, student.spec, self.bank, limit=self.bank_size, device=dev)
        xq, yq = embed_dataset(student, student.spec, self.queries, limit=self.query_size, device=dev)
        return {"knn_top1": knn_top1(xb, yb, xq, yq, k=20, t=0.07)}
