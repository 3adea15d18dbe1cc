"""A small real run (ResNet-18 at 32 px on the synthetic data), pruned once per session and shared."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from compressor.models.encoder import Encoder

RATIO = 0.5
# few, large steps on a small pool: enough for the recovery to move, quick on two cores
FAST = {"steps": 12, "batch_size": 16, "pool_size": 32, "lr": 1e-3}


def make_run(root: Path, arch: str = "resnet18", image_size: int = 32) -> Path:
    """A run whose student has the BatchNorm statistics of its own training images, as a trained one has.

    A freshly built network's statistics (mean 0, variance 1) describe no data: its eval-mode output is not the
    function training shapes, so a recovery (trained in train mode) could not be compared with it.
    """
    from compressor.export.images import load_images
    from compressor.models.saved import save_encoder
    from compressor.models.students import build_student

    torch.manual_seed(0)
    student = build_student(arch, image_size)
    norms = [m for m in student.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.momentum = None  # a cumulative average: exactly these images' statistics
    with torch.no_grad():
        for batch in torch.from_numpy(load_images("synthetic", student.spec, 64).images).split(32):
            student.train()(batch)
    for m in norms:
        m.momentum = 0.1
    run = root / "run"
    save_encoder(student.eval(), run)
    (run / "config.yaml").write_text("data: synthetic\n")
    return run


@pytest.fixture(scope="session")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="session")
def pruned_run(source_run: Path) -> Path:
    from compressor.prune import prune_run

    return prune_run(source_run, ratio=RATIO, **FAST)


@pytest.fixture(scope="session")
def unrecovered(source_run: Path) -> Encoder:
    """The source student pruned in memory, no recovery: where ``pruned_run``'s recovery started (pruning is
    deterministic)."""
    from compressor.models.pruning import prune_encoder
    from compressor.models.saved import load_encoder

    student = load_encoder(source_run)
    student.record = prune_encoder(student, RATIO)  # type: ignore[attr-defined]
    return student.eval()
