"""Linear probe: a logistic-regression layer trained on frozen, standardised embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_probe_top1(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor,
                      test_labels: torch.Tensor, *, epochs: int = 100, lr: float = 0.1,
                      weight_decay: float = 1e-4, seed: int = 0) -> float:
    """Top-1 accuracy (fraction) of a linear classifier fit with full-batch L-BFGS-free Adam steps.

    Embeddings are standardised with the training set's mean and std; the classifier is trained
    full-batch (embedding sets here are small) with Adam and a cosine-decayed learning rate.
    """
    g = torch.Generator().manual_seed(seed)
    mean, std = train.mean(0, keepdim=True), train.std(0, keepdim=True) + 1e-6
    x, xt = (train.float() - mean) / std, (test.float() - mean) / std
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    layer = torch.nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 0.01)
        layer.bias.zero_()
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    with torch.enable_grad():
        for _ in range(epochs):
            opt.zero_grad()
            F.cross_entropy(layer(x), train_labels).backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return float((layer(xt).argmax(1) == test_labels).float().mean())
