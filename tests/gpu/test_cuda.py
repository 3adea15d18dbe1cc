"""The CUDA path: fused optimiser without host syncs, bf16 autocast end to end. Skip on a machine without CUDA.

``scripts/gpu-check.sh`` runs these with the sync-free hot-loop test (tests/cli/test_bad_inputs.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from compressor.engine.recipe import build_optimizer, get_recipe, make_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)")


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_optimiser_is_fused_and_steps_without_a_host_sync(optimizer: str) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.LayerNorm(64), torch.nn.Linear(64, 8)).cuda()
    cfg = make_config(get_recipe("simclr"), {"optimizer": optimizer})
    opt = build_optimizer(cfg, list(model.parameters()), batch_size=16)
    assert opt.defaults.get("fused") is True
    x = torch.randn(16, 32, device="cuda")
    model(x).square().mean().backward()
    opt.step()  # the first step creates the state
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
            opt.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_bf16_autocast_run_trains_with_finite_losses(tmp_path: Path) -> None:
    from compressor.engine.config import TrainConfig
    from compressor.engine.trainer import train

    run = train(TrainConfig(student="resnet10t", teacher="timm:resnet18", teacher_weights="random",
                            teacher_image_size=64, recipe="feature-kd", data="synthetic", batch_size=16,
                            image_size=64, max_images=64, max_steps=6, log_every=2, device="cuda",
                            precision="bf16", out=str(tmp_path / "run")), progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses)
    assert "bf16" in (run / "config.yaml").read_text() or "bfloat16" in (run / "run.json").read_text()
