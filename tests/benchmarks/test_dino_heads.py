"""benchmarks/dino_heads.py: the DINO heads' state read from a real (tiny) mokd run's checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from compressor.engine.config import TrainConfig
from compressor.engine.trainer import train
from compressor.recipes import get_recipe
from tests.conftest import load_benchmark


def _run(tmp_path: Path, recipe: str, **kw) -> Path:
    out = tmp_path / recipe
    train(TrainConfig(student="resnet10t", data="synthetic", image_size=32, batch_size=4, max_steps=2,
                      recipe=recipe, out=str(out), **kw), progress=False)
    return out


def test_entropy_matches_float64() -> None:
    p = np.random.default_rng(0).dirichlet(np.ones(7) * 0.3, size=5)
    expected = float(np.mean(-(p * np.log(p)).sum(1)))
    assert load_benchmark("dino_heads").entropy(torch.from_numpy(p)) == pytest.approx(expected, rel=1e-12)


def test_reads_every_head_of_a_mokd_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    overrides = dict(get_recipe("mokd").test_overrides)
    run = _run(tmp_path, "mokd", peer="vit_tiny_patch16_224", recipe_config=overrides)
    assert load_benchmark("dino_heads").main([str(run), "--batch", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    lines = out[next(i for i, line in enumerate(out) if "ln K =" in line):]  # after any log line of the rebuild
    k = overrides["out_dim"]
    assert f"ln K = {math.log(k):.3f}" in lines[0] and "step 2" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [r[:3] for r in rows] == [[m, n, h] for m in ("student", "peer") for n in ("student", "teacher")
                                     for h in ("mlp", "thead")]
    for _, _, _, spread, _, h_target, winners in rows:  # winners among 2 global crops × 4 images
        assert float(spread) >= 0 and 0 <= float(h_target) <= math.log(k) + 1e-3 and 1 <= int(winners) <= 8


def test_refuses_a_run_of_another_recipe(tmp_path: Path) -> None:
    run = _run(tmp_path, "simclr")
    with pytest.raises(SystemExit, match="simclr run"):
        load_benchmark("dino_heads").main([str(run)])
