"""Linear probe: the papers' L2-regularised logistic regression (L-BFGS) on frozen, standardised embeddings.

The self-supervised papers whose figures this tool reproduces report a linear probe fit the way CLIP
(Radford et al. 2021, appendix A.3) and SimCLR's transfer protocol do it: scikit-learn's
``LogisticRegression`` (multinomial, L-BFGS) on standardised features, its inverse L2 strength ``C``
swept on a held-out split of the *training* features, then refit on all of them with the best ``C`` and
scored once on the test features. :func:`linear_probe` does exactly that (``kind="lbfgs-logreg"``, the
default); the test split never influences ``C``.

``kind="adam"`` keeps the earlier probe (100 full-batch Adam steps, no sweep) as a named option: about
twice as fast on a 10,000-image bank, but not the papers' protocol, and its figures are not comparable with
theirs (on that bank it scored 76.4% where this probe scores 79.0%). Every result carries a ``record``
saying which probe produced it (eval.json's ``"probe"``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compressor.errors import CompressorError

if TYPE_CHECKING:  # imported where used: the CLI reads PROBE_KINDS and DEFAULT_PROBE without loading torch
    import numpy as np
    import torch

LOGREG = "lbfgs-logreg"
ADAM = "adam"
PROBE_KINDS = (LOGREG, ADAM)
DEFAULT_PROBE = LOGREG
# One value per decade. For standardised features the useful inverse strengths sit well inside this span
# (C = 1e-4 underfits any bank of a thousand images or more); every extra decade costs one more fit.
C_GRID: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
VAL_FRACTION = 0.2  # of the training features held out to choose C (stratified, seeded)
# CLIP capped L-BFGS at 1000 iterations; the weakly regularised end of the grid is what reaches the cap. At 500, a
# 10,000 × 512 bank (Fashion-MNIST through a resnet10t) takes 16 s for the sweep and the refit on 2 EPYC cores.
MAX_ITER = 500
ADAM_EPOCHS, ADAM_LR, ADAM_WEIGHT_DECAY = 100, 0.1, 1e-4


def probe_settings(kind: str = DEFAULT_PROBE) -> dict[str, Any]:
    """The default settings of a probe of ``kind``: its record less what a fit chose (``C``), for a table's caption."""
    if kind == ADAM:
        return {"kind": ADAM, "epochs": ADAM_EPOCHS, "lr": ADAM_LR, "weight_decay": ADAM_WEIGHT_DECAY}
    return {"kind": LOGREG, "grid": list(C_GRID), "val_fraction": VAL_FRACTION, "max_iter": MAX_ITER}


@dataclass(frozen=True)
class ProbeResult:
    """Top-1 on the test features, and the record of the probe that produced it (kind and settings)."""

    top1: float
    record: dict[str, Any]


def linear_probe(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
                 *, kind: str = DEFAULT_PROBE, seed: int = 0) -> ProbeResult:
    """Top-1 (fraction) of a linear classifier fit on ``train`` and scored on ``test``; ``kind``: see the module."""
    if kind == LOGREG:
        return logreg_probe(train, train_labels, test, test_labels, seed=seed)
    if kind == ADAM:
        return adam_probe(train, train_labels, test, test_labels, seed=seed)
    from compressor.registry import unknown_name_message

    raise CompressorError(unknown_name_message("linear probe", kind, list(PROBE_KINDS)))


def logreg_probe(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
                 *, grid: tuple[float, ...] = C_GRID, val_fraction: float = VAL_FRACTION, max_iter: int = MAX_ITER,
                 seed: int = 0) -> ProbeResult:
    """Sweep ``C`` over ``grid`` on a stratified ``val_fraction`` of ``train``, refit on all of it, score ``test``.

    Each fit standardises with the statistics of the features it is fit on (a scaler fit on the sweep's
    part during the sweep, on the whole of ``train`` for the final fit). Ties between values of ``C`` go to
    the smaller (the stronger regularisation), as in a grid search over an ascending grid. A bank too small
    to hold out a stratified split (a class with one image, or fewer held-out images than classes) is fit
    with scikit-learn's default ``C = 1`` and the record says so.
    """
    import numpy as np

    _require_sklearn()
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    x, y = train.float().cpu().numpy(), train_labels.cpu().numpy()
    xt, yt = test.float().cpu().numpy(), test_labels.cpu().numpy()
    classes = np.unique(y)
    if len(classes) < 2:
        raise CompressorError(f"the linear probe needs at least two classes in the training features, got "
                              f"{len(classes)}; evaluate with more images (--max-train) or pass --no-linear")
    grid = tuple(sorted(float(c) for c in grid))
    record: dict[str, Any] = {"kind": LOGREG, "C": 1.0, "grid": list(grid), "val_fraction": val_fraction,
                              "max_iter": max_iter, "seed": seed}
    # One BLAS thread: X·W with W of width n_classes is memory-bound, and OpenBLAS's spinning threads made a fit
    # 18x slower on a loaded 2-core machine (torch's own threads, loader workers or another job beside it).
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)  # recorded as "converged" instead
        n_val = int(np.ceil(val_fraction * len(y)))
        if np.bincount(np.searchsorted(classes, y)).min() >= 2 and len(classes) <= n_val <= len(y) - len(classes):
            xa, xv, ya, yv = train_test_split(x, y, test_size=val_fraction, stratify=y, random_state=seed)
            scores = [_fit(xa, ya, c, max_iter).score(xv, yv) for c in grid]
            record["C"] = grid[int(np.argmax(scores))]  # argmax: the first of equal scores, the smaller C
            record["val_top1"] = [float(s) for s in scores]
        else:
            record["grid"] = []
            record["note"] = ("too few training features per class to hold out a split: C = 1, "
                              "scikit-learn's default")
        pipe = _fit(x, y, record["C"], max_iter)
        record["converged"] = bool(int(np.max(pipe[-1].n_iter_)) < max_iter)
        top1 = float(np.mean(pipe.predict(xt) == yt))
    return ProbeResult(top1, record)


def _require_sklearn() -> None:
    """scikit-learn is a dependency of the package; an environment without it gets one line, not a traceback."""
    from compressor.utils.extras import available

    if not available("sklearn"):
        raise CompressorError("the linear probe needs scikit-learn, a dependency of compressor that is not "
                              "installed here: pip install scikit-learn (or pass --no-linear, or --probe adam)")


def _fit(x: np.ndarray, y: np.ndarray, c: float, max_iter: int) -> Any:
    """A logistic regression on ``x`` standardised by its own statistics (a fitted scikit-learn pipeline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, solver="lbfgs", max_iter=max_iter)).fit(x, y)


def adam_probe(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
               *, epochs: int = ADAM_EPOCHS, lr: float = ADAM_LR, weight_decay: float = ADAM_WEIGHT_DECAY,
               seed: int = 0) -> ProbeResult:
    """The earlier probe: full-batch Adam with a cosine-decayed learning rate, no sweep (fast, not the papers').

    Embeddings are standardised with the training set's mean and std; the classifier is trained
    full-batch (embedding sets here are small).
    """
    import torch
    import torch.nn.functional as F

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
        top1 = float((layer(xt).argmax(1) == test_labels).float().mean())
    return ProbeResult(top1, {"kind": ADAM, "epochs": epochs, "lr": lr, "weight_decay": weight_decay, "seed": seed})


def describe_probe(record: dict[str, Any] | None) -> str:
    """One phrase for a caption: which probe produced a linear figure (``record``: eval.json's ``probe``)."""
    if not record:  # every eval.json from before probes were recorded was the Adam loop's
        return "the untuned Adam probe (an eval.json from before the probe was recorded)"
    if record.get("kind") == ADAM:
        return f"Adam, {record.get('epochs')} full-batch epochs, no C sweep (not the papers' probe)"
    grid = record.get("grid") or []
    chosen = f"C = {record['C']:g}" if "C" in record else "C"
    how = (f"chosen from {{{', '.join(f'{c:g}' for c in grid)}}} on a stratified {record.get('val_fraction', 0):.0%} "
           "split of the training features" if grid else "(no sweep: " + str(record.get("note", "")) + ")")
    return (f"L2 logistic regression (scikit-learn, L-BFGS, at most {record.get('max_iter')} iterations) on "
            f"standardised features, {chosen} {how}")
