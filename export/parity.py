"""Fidelity of an exported model: its embeddings against the PyTorch fp32 student's on the same images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from compressor.manifest import FidelityRecord
from compressor.models.encoder import Encoder


@dataclass
class Fidelity:
    """Agreement of ``n_images`` embeddings with the reference (per-image cosine; max abs element diff)."""

    n_images: int
    data: str
    max_abs_diff: float
    mean_cosine: float
    min_cosine: float
    reference: str = "pytorch fp32"

    def to_dict(self) -> FidelityRecord:
        return {"n_images": self.n_images, "data": self.data, "max_abs_diff": self.max_abs_diff,
                "mean_cosine": self.mean_cosine, "min_cosine": self.min_cosine, "reference": self.reference}

    def describe(self) -> str:
        return (f"mean cosine {self.mean_cosine:.6f} (min {self.min_cosine:.6f}), "
                f"max abs diff {self.max_abs_diff:.3g} over {self.n_images} images of {self.data}")


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (computed in float64)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(den, 1e-12)


def compare(reference: np.ndarray, output: np.ndarray, *, data: str) -> Fidelity:
    if reference.shape != output.shape:
        raise ValueError(f"output shape {output.shape} differs from the reference {reference.shape}")
    cos = cosine_rows(reference, output)
    return Fidelity(len(reference), data, float(np.abs(reference - output).max()), float(cos.mean()),
                    float(cos.min()))


@torch.inference_mode()
def torch_embeddings(encoder: Encoder, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """Embeddings of normalised N×3×H×W ``images`` by the fp32 encoder on CPU."""
    encoder = encoder.eval()
    outs = [encoder(torch.from_numpy(images[i:i + batch])).float().numpy()
            for i in range(0, len(images), batch)]
    return np.concatenate(outs)
