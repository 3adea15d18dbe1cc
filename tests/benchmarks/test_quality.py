"""benchmarks/quality.py end to end at --quick budgets: every row trained, scored and tabulated."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from compressor.engine.cpu_bf16 import cpu_bf16_is_native
from compressor.eval.embed import embed_dataset
from compressor.eval.knn import knn_top1
from compressor.models.students import build_student
from tests.conftest import load_benchmark, requires_fmnist

# end to end (real processes, training runs): `make test-fast` leaves it out
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@requires_fmnist
def test_quick_table_has_every_row_and_its_control(tmp_path: Path) -> None:
    out = tmp_path / "q"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--out", str(out), "--quick",
                           "--recipes", "feature-kd", "dogo"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "quality.json").read_text())
    # the student and the pair's peer at initialisation: what training adds to random weights
    assert set(res["reference"]) == {"teacher", "raw pixels", "resnet10t at initialisation",
                                     "resnet18d at initialisation"}
    labels = {r["label"]: r for r in res["rows"]}
    assert {"student alone (simclr)", "feature-kd from the teacher", "resnet10t with dogo",
            "resnet10t alone (dogo control)", "resnet18d with dogo", "resnet18d alone (dogo control)"} == set(labels)
    assert labels["feature-kd from the teacher"]["control"] == "student alone (simclr)"
    for r in res["rows"]:
        assert len(r["knn"]) == 1 and all(0 <= v <= 100 for v in r["knn"] + r["linear"])
    # the control of a peer recipe is that recipe with its distillation switched off
    cfg = (out / "dogo-control-s0" / "config.yaml").read_text()
    assert "w_1: 0.0" in cfg and "w_2: 0.0" in cfg
    table = (out / "quality.md").read_text()
    assert "| feature-kd from the teacher |" in table and "% of teacher kNN" in table


@requires_fmnist
def test_scorer_images_kept_in_memory_embed_as_the_data_sets_do() -> None:
    quality = load_benchmark("quality")
    score = quality.Scorer(argparse.Namespace(data_root=None, eval_bank=300, eval_queries=100))
    torch.manual_seed(0)
    enc = build_student("resnet10t", 32)
    xb, yb = embed_dataset(enc, enc.spec, score.bank, limit=300)
    xq, yq = embed_dataset(enc, enc.spec, score.queries, limit=100)
    images_b, labels_b, images_q, labels_q = score.images(enc.spec)
    assert images_b.shape == (300, 3, 32, 32) and images_q.shape == (100, 3, 32, 32)
    assert torch.equal(labels_b, yb) and torch.equal(labels_q, yq)
    assert score.images(enc.spec)[0] is images_b  # computed once per spec
    knn, linear = score(enc, enc.spec)
    assert knn == 100 * knn_top1(xb, yb, xq, yq, k=20, t=0.07) and 0 <= linear <= 100


def test_a_peer_recipe_and_its_control_train_at_the_same_precision() -> None:
    """mokd's CPU-budget precision applies to its control as well (a fair comparison); other rows keep auto."""
    quality = load_benchmark("quality")
    args = load_benchmark("common").parse_protocol(["--recipes", "mokd", "dogo", "seed"])
    _, plans = quality.build_rows(args, "runs/teacher")
    precision = {plan["name"]: plan.get("precision", "auto") for plan in plans.values()}
    assert precision["mokd-s0"] == precision["mokd-control-s1"] == quality.budget_precision("bf16")
    # bf16 only where oneDNN has bf16 kernels for this CPU (without them it is ~10x slower than fp32)
    assert quality.budget_precision("bf16") == ("bf16" if cpu_bf16_is_native() else "auto")
    assert precision["dogo-s0"] == precision["dogo-control-s0"] == precision["seed-s0"] == "auto"
