"""benchmarks/peers.py end to end at --quick budgets: each peer recipe against its own control."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import load_benchmark, requires_fmnist

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@requires_fmnist
def test_quick_run_scores_every_peer_recipe_against_its_control(tmp_path: Path) -> None:
    # --jobs 2: the recipes train in two processes at once (the path the full table takes on two cores)
    out = tmp_path / "p"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--out", str(out), "--quick",
                           "--seeds", "7", "--jobs", "2"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "peers.json").read_text())
    assert set(res) == {"css", "dogo", "mokd"}
    for name, r in res.items():
        assert {"gain", "spread", "paired", "minutes", "networks"} <= set(r), name
        assert len(r["paired"]) == 1  # one seed: --seeds 7
    assert set(res["css"]["networks"]) == {"student", "peer"}
    # mokd reports its EMA teachers' target entropy against ln K
    ent = res["mokd"]["target_entropy"][0]["kd"]
    assert 0 < ent["student"] <= ent["ln_K"] + 1e-6 and 0 < ent["peer"] <= ent["ln_K"] + 1e-6

    def cfg(run: str) -> dict:
        return yaml.safe_load((out / run / "config.yaml").read_text())

    # dogo: the control is dogo with the distillation off; both arms start the peer from the same checkpoint
    control, kd = cfg("dogo-control-s7"), cfg("dogo-s7")
    assert control["recipe_config"]["w_1"] == 0.0 and kd["recipe_config"]["w_1"] == 100.0
    assert control["peer_weights"] == kd["peer_weights"] == str(out / "dogo-peer-start")
    # css: each network alone with cross-entropy, on css's optimiser, decay and crop
    css, ce = cfg("css-s7"), cfg("ce-resnet10t-s7")
    assert ce["recipe"] == "supervised" and ce["recipe_config"]["label_smoothing"] == 0.0
    for key in ("optimizer", "lr", "weight_decay", "crop_scale_min"):
        assert ce["recipe_config"][key] == css["recipe_config"][key], key
    assert ce["stem"] == css["stem"] == "small" and ce["max_images"] == css["max_images"]
    # the two networks trained alone, ensembled: a same-architecture pair's second network from another seed
    second = cfg("ce-resnet10t-s1007")
    assert second["seed"] == 1007 and second["recipe_config"] == ce["recipe_config"]
    # mokd: no 1x1 map, no one-token local crop: the CNN's small stem and the ViT's 4 px patches
    assert cfg("mokd-s7")["stem"] == "small"
    table = (out / "peers.md").read_text()
    for row in ("resnet10t (student) with css", "css ensemble of both networks",
                "ensemble of the two networks trained alone, cross-entropy", "resnet10t (student) with dogo",
                "resnet10t (student) alone (dogo control)", "vit_tiny_patch16_224 (peer) with mokd"):
        assert f"| {row} |" in table, row


@requires_fmnist
def test_top1_of_a_supervised_run_is_its_classifiers_accuracy(tmp_path: Path) -> None:
    """``supervised_top1`` against the classifier applied by hand to the test images, one by one."""
    import argparse

    import torch

    from compressor.data.datasets import build_dataset
    from compressor.data.subset import sample
    from compressor.data.transforms import eval_transform
    from compressor.engine.config import TrainConfig
    from compressor.engine.trainer import train

    peers = load_benchmark("peers")
    run = train(TrainConfig(student="resnet10t", recipe="supervised", data="fashion-mnist", max_images=64,
                            max_steps=3, batch_size=32, image_size=16, stem="small", out=str(tmp_path / "ce")),
                progress=False)
    score = peers.Scorer(argparse.Namespace(data_root=None, eval_bank=10, eval_queries=50))
    got = peers.supervised_top1(Path(run), score)
    recipe = peers.load_trained(Path(run)).recipe
    test = sample(build_dataset("fashion-mnist", "val", None), 50, seed=0)  # the Scorer's queries
    tf = eval_transform(recipe.student.spec)
    right = 0
    with torch.no_grad():
        for i in range(50):
            image, label = test[i][0], test[i][1]
            right += int(recipe.classifier(recipe.student(tf(image)[None])).argmax(1).item() == label)
    assert got == pytest.approx(100 * right / 50, abs=1e-4)


@requires_fmnist
def test_probe_projects_the_tables_training_time_from_each_runs_rate(tmp_path: Path) -> None:
    """--probe: every run of the table for N steps; minutes = the full run's images / its images/s, × seeds."""
    import statistics

    out = tmp_path / "probe"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "peers.py"), "--out", str(out), "--quick",
                           "--probe", "3", "--recipes", "dogo", "--seeds", "3", "4"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "probe.json").read_text())["dogo"]
    assert [e["run"] for e in res["runs"]] == ["dogo-peer-start", "dogo-control-s3", "dogo-s3"]
    total = 0.0
    for e in res["runs"]:
        run = out / "probe" / e["run"]
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["max_steps"] == 3
        rates = [json.loads(line)["ips"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert len(rates) == 3  # a window per step at 3 steps; the first holds the warm-up and is left out
        assert e["ips"] == pytest.approx(statistics.median(rates[1:]))
        assert e["minutes"] == pytest.approx(cfg["max_images"] * cfg["epochs"] / e["ips"] / 60)
        total += e["minutes"] * (1 if e["run"] == "dogo-peer-start" else 2)  # the peer start is shared by the seeds
    assert res["seeds"] == 2 and res["projected_minutes"] == pytest.approx(total)
    assert not (out / "dogo-s3").exists() and not (out / "peers.json").exists()  # nothing the table would reuse
    assert "| dogo | dogo-s3 |" in (out / "probe.md").read_text()
