"""Embedding a dataset with a frozen encoder, and the evaluation of a run."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from compressor.data.datasets import ImageDataset
from compressor.data.loader import ViewDataset, collate_views
from compressor.data.transforms import Views, eval_transform
from compressor.errors import CompressorError
from compressor.eval.knn import knn_top1
from compressor.eval.linear import DEFAULT_PROBE, linear_probe
from compressor.models.encoder import Encoder, InputSpec

log = logging.getLogger("compressor")


@torch.no_grad()
def embed_dataset(model: nn.Module, spec: InputSpec, ds: ImageDataset, *, batch_size: int = 256,
                  workers: int = 0, device: str = "cpu", limit: int | None = None,
                  progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Embeddings (N×D, float32, CPU) and labels of ``ds`` under ``model``.

    ``limit`` takes a seeded, class-stratified random sample of that many images (never the first
    ``limit`` files: a class-folder data set is sorted by class).
    """
    if limit is not None:
        from compressor.data.subset import sample

        ds = sample(ds, limit, seed=0)
    vds = ViewDataset(ds, Views(x=eval_transform(spec)), seed=0)
    loader = DataLoader(vds, batch_size=batch_size, num_workers=workers, collate_fn=collate_views)
    was_training = model.training
    model.eval()
    feats, labels = [], []
    it: Iterable[dict[str, torch.Tensor]] = loader
    if progress:
        from compressor.utils.progress import track

        it = track(loader, description="embedding", total=len(loader))
    for batch in it:
        if "x" not in batch:
            continue
        feats.append(model(batch["x"].to(device)).float().cpu())
        labels.append(batch["label"])
    model.train(was_training)
    if not feats:
        raise CompressorError("every image in the dataset failed to load; check the files named above")
    return torch.cat(feats), torch.cat(labels)


def _files(ds: object) -> list | None:
    """The image files behind ``ds`` (through ``Subset``), or ``None`` for data without files."""
    if isinstance(ds, torch.utils.data.Subset):
        inner = _files(ds.dataset)
        return None if inner is None else [inner[i] for i in ds.indices]
    files = getattr(ds, "files", None)
    return list(files) if files is not None else None


def check_disjoint(train: ImageDataset, val: ImageDataset) -> None:
    """Queries must exist and must not be bank images: a query that finds itself scores 100%."""
    if len(val) == 0:
        raise CompressorError("the evaluation data has no held-out images to use as queries (a folder needs at "
                              "least 5 images, or train/ and val/ sub-folders); pass --data with more images")
    a, b = _files(train), _files(val)
    if a is not None and b is not None:
        shared = {str(p.resolve()) for p in a} & {str(p.resolve()) for p in b}
        if shared:
            raise CompressorError(f"{len(shared)} query images are also in the kNN bank (e.g. {sorted(shared)[0]}); "
                                  "give the data separate train/ and val/ folders")


@dataclass
class EvalResult:
    knn_top1: float
    linear_top1: float | None
    n_train: int
    n_query: int
    probe: dict[str, Any] | None = None  # which linear probe produced linear_top1 (compressor.eval.linear)

    def to_dict(self) -> dict:
        """What eval.json holds: the figures, and the probe beside the linear one."""
        return {"knn_top1": self.knn_top1, "linear_top1": self.linear_top1, "probe": self.probe,
                "n_train": self.n_train, "n_query": self.n_query}


def evaluate_encoder(model: Encoder, train: ImageDataset, val: ImageDataset, *, linear: bool = True,
                     probe: str = DEFAULT_PROBE, limit_train: int | None = None, limit_val: int | None = None,
                     device: str = "cpu", batch_size: int = 256, workers: int = 0,
                     progress: bool = False) -> EvalResult:
    """kNN (cosine, k=20, T=0.07) and linear-probe top-1: train split = bank, val split = queries.

    ``probe`` names the linear probe (:data:`compressor.eval.linear.PROBE_KINDS`; default the papers'
    L-BFGS logistic regression with C swept on the bank); the result records it.
    """
    if not (train.has_labels and val.has_labels):
        raise CompressorError("evaluation needs labels: use class sub-folders, fashion-mnist or synthetic")
    check_disjoint(train, val)
    kw: dict[str, Any] = dict(batch_size=batch_size, workers=workers, device=device, progress=progress)
    xb, yb = embed_dataset(model, model.spec, train, limit=limit_train, **kw)
    xq, yq = embed_dataset(model, model.spec, val, limit=limit_val, **kw)
    knn = knn_top1(xb, yb, xq, yq, k=20, t=0.07)
    lin = linear_probe(xb, yb, xq, yq, kind=probe) if linear else None
    return EvalResult(knn, lin.top1 if lin else None, len(yb), len(yq), lin.record if lin else None)
