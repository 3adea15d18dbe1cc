"""``compress list students``: the curated edge zoo with its costs by default, timm's catalogue with --all."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from compressor.export.zoo import EDGE_STUDENT_COSTS, EDGE_STUDENTS
from compressor.models.students import create_timm_backbone


def test_default_is_the_edge_zoo_with_params_and_gmacs(cli) -> None:
    code, out, _ = cli("list", "students")
    assert code == 0 and "GMACs" in out
    rows = [line for line in out.splitlines() if any(f" {n} " in line for n in EDGE_STUDENTS)]
    assert len(rows) == len(EDGE_STUDENTS)
    assert "11.18" in next(r for r in rows if " resnet18 " in r)  # ResNet-18 without its classifier


def test_all_and_filter_list_the_timm_catalogue(cli) -> None:
    code, out, _ = cli("list", "students", "--all")
    assert code == 0 and "resnet10t" in out and "GMACs" not in out
    assert len(out.splitlines()) > 500
    code, out, _ = cli("list", "students", "--filter", "resnet1*")
    assert code == 0 and "resnet10t" in out and "mobilenetv3_large_100" not in out


@pytest.mark.parametrize("name", EDGE_STUDENTS)
def test_stored_costs_match_a_recount(name: str) -> None:
    # the stored table against the real timm model, counted again: parameters and MACs (FLOPs / 2) at 224 px
    model = create_timm_backbone(name, 224).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 224, 224))
    want_params, want_gmacs = EDGE_STUDENT_COSTS[name]
    assert params == pytest.approx(want_params, abs=0.01)
    assert counter.get_total_flops() / 2e9 == pytest.approx(want_gmacs, abs=0.01)
