"""``compress pick``: candidates benched in their best format for the target, ranked with data."""

from __future__ import annotations

import json
from pathlib import Path

from compressor.export.pick import Candidate, PickOptions, _mark_pareto, pick


def test_pareto_front_against_brute_force() -> None:
    pts = {"a": (1.0, 0.50), "b": (2.0, 0.70), "c": (2.5, 0.60), "d": (3.0, 0.70), "e": (0.5, 0.40)}
    cands = [Candidate(k, p50_ms=ms, knn_top1=acc) for k, (ms, acc) in pts.items()]
    _mark_pareto(cands)
    # dominated: c by b (faster and better), d by b (faster, equal accuracy)
    assert {c.arch for c in cands if c.pareto} == {"a", "b", "e"}


def test_pick_benches_best_format_and_ranks_with_data(tmp_path: Path) -> None:
    opts = PickOptions(budget_ms=1e4, backend="ort-cpu", threads=1, candidates=("resnet18", "mobilenetv3_large_100"),
                       image_size=32, out=tmp_path / "pick", data="synthetic", steps=1, batch_size=4,
                       calib_size=8, check_size=8, iters=2, seconds=0.5, max_train=64, max_val=16)
    report = pick(opts)
    by = {c.arch: c for c in report.candidates}
    for c in by.values():
        assert c.format in ("onnx", "onnx-int8") and c.p50_ms and c.p50_ms > 0 and c.fits
        assert c.gflops and c.gflops > 0 and c.size_mb and c.size_mb > 0
        assert c.knn_top1 is not None and 0 <= c.knn_top1 <= 1
        assert abs(c.knn_per_ms - c.knn_top1 / c.p50_ms) < 1e-12  # type: ignore[operator]
    # the chosen format is the faster of the two exports that passed their checks
    rows = json.loads((tmp_path / "pick" / "latency" / "resnet18" / "export" / "manifest.json").read_text())
    assert set(rows["exports"]) <= {"model.onnx", "model.int8.onnx"}
    assert any(c.pareto for c in by.values())
    assert report.best() is not None
    report.to_json(tmp_path / "pick.json")
    report.plot(tmp_path / "pick.png")
    assert json.loads((tmp_path / "pick.json").read_text())["pick"] in by
    assert (tmp_path / "pick.png").stat().st_size > 1000


def test_pick_cli_budget_and_errors(tmp_path: Path, cli) -> None:
    code, out, _ = cli("pick", "--budget-ms", "0.0001", "--candidates", "resnet18", "--image-size", "32",
                       "--threads", "1", "--iters", "2", "--out", tmp_path / "p", "--no-plot")
    assert code == 0 and "no candidate runs within" in out
    assert json.loads((tmp_path / "p" / "pick.json").read_text())["candidates"][0]["fits"] is False
    code, _, err = cli("pick", "--budget-ms", "5", "--backend", "tensorflow", "--out", tmp_path / "q")
    assert code == 2 and "tensorflow" in err and len(err.strip().splitlines()) == 1
