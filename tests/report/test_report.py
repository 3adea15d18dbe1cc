"""`compress report`: the headline's figures follow from the files the stages wrote; the HTML stands alone
and renders, with every plot, in a real headless Chromium with networking off."""

from __future__ import annotations

import html
import importlib.util
import json
import math
import re
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from compressor.pipeline import run_pipeline


def _load_script(path: Path) -> ModuleType:
    """scripts/check_report_html.py: a command and this test's helper, outside the package (a script, not a module)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_check = _load_script(Path(__file__).resolve().parents[2] / "scripts" / "check_report_html.py")
check_html, external_references, find_chromium = _check.check_html, _check.external_references, _check.find_chromium


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "run"
    cfg = {"student": "resnet10t", "teacher": "timm:resnet18", "teacher_weights": "random",
           "teacher_image_size": 32, "recipe": "mvmr", "recipe_config": {"projector_dims": [32, 32]},
           "data": "synthetic", "image_size": 32, "batch_size": 8, "max_steps": 4, "log_every": 1,
           "eval_every": 2, "out": str(out), "pipeline": {"export": ["onnx", "onnx-int8"]}}
    run_pipeline(cfg, quick=True, progress=False)
    return out


def test_headline_matches_the_stage_files(run: Path, cli) -> None:
    code, out, err = cli("report", run)
    assert code == 0, err
    ev = json.loads((run / "eval.json").read_text())
    student, teacher = ({(r["backend"], r["format"], r["batch"]): r
                         for r in json.loads((run / f).read_text())["results"]}
                        for f in ("bench.json", "bench-teacher.json"))
    key = ("torch", "pytorch", 1)  # the only thing a named teacher is measured in
    speed = teacher[key]["p50_ms"] / student[key]["p50_ms"]
    word = f"{speed:.1f}x faster" if speed >= 1 else f"{1 / speed:.1f}x slower"
    size = teacher[key]["params_m"] / student[key]["params_m"]
    kept = ev["knn_top1"] / ev["teacher"]["knn_top1"]
    line = (f"{word} (pytorch on torch, batch 1, p50), {size:.1f}x smaller (parameters), "
            f"{100 * kept:.0f}% of the teacher's kNN")
    md = (run / "report.md").read_text()
    assert line in md and line in out
    for section in ("## Training curves", "## Quality", "## Deployment", "## Latency vs accuracy", "## Environment"):
        assert section in md
    # The deployment table has the INT8 row with its kNN delta from the export's own check.
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    fid = manifest["exports"]["model.int8.onnx"]["fidelity"]
    delta = 100 * (fid["knn_top1_int8"] - fid["knn_top1_fp32"])
    noise = 100 * fid["knn_delta_noise"]
    within = abs(delta) <= noise
    row = re.search(r"^\| student \| ort-cpu \| onnx-int8 \| int8 \| 1 \|.*$", md, re.MULTILINE)
    cell = f"| {delta:+.2f} pt (± {noise:.2f}{', within noise' if within else ''}) |"
    assert row and row.group(0).endswith(cell), md


def test_int8_delta_within_the_checks_noise_is_not_plotted_as_a_gain(run: Path) -> None:
    """The plot's accuracy axis: the fp32 model's kNN where the export check cannot tell int8 from it."""
    from compressor.report.collect import collect

    data = collect(run)
    int8 = next(r for r in data.deploy if r.model == "student" and r.precision == "int8")
    assert int8.knn_delta is not None and int8.knn_noise is not None and data.student_knn is not None
    expected = data.student_knn + (0.0 if abs(int8.knn_delta) <= int8.knn_noise else int8.knn_delta)
    assert int8.knn == pytest.approx(expected)
    # the rule itself, on rows the small check cannot separate from fp32 (+2 of 128 queries) and can (−20)
    noisy = replace(int8, knn_delta=2 / 128, knn_noise=2 * math.sqrt(2) / 128)
    real = replace(int8, knn_delta=-20 / 128, knn_noise=2 * math.sqrt(20) / 128)
    unrecorded = replace(int8, knn_delta=2 / 128, knn_noise=None)
    assert noisy.within_noise and not real.within_noise and unrecorded.within_noise


def test_training_curves_include_knn_from_eval_every(run: Path) -> None:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "knn_top1" in r] == [2, 4]
    assert (run / "report" / "training_curves.png").stat().st_size > 10_000


def test_html_is_self_contained(run: Path) -> None:
    html = (run / "report.html").read_text()
    assert external_references(html) == []
    assert html.count("<img ") == html.count("src='data:image/png;base64,") == 2
    # The checker itself must catch an external reference (else the assertion above proves nothing).
    assert external_references("<img src='https://cdn.example/x.png'>") and external_references(
        '<link href="//fonts.example/css">') and external_references("a{background:url(http://x/y.png)}")


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (Debian: apt-get install chromium)")
def test_html_renders_in_headless_chromium_offline(run: Path, tmp_path: Path) -> None:
    res = check_html(run / "report.html", screenshot=tmp_path / "shot.png")
    assert res.images_total == 2 and res.images_ok == 2, res
    assert res.resources == 0 and res.screenshot_distinct_colours > 10, res
    # A page that does reach for the network is caught: its image cannot load with networking off.
    bad = tmp_path / "bad.html"
    bad.write_text((run / "report.html").read_text().replace("</body>", "<img src='http://example.com/x.png'></body>"))
    res_bad = check_html(bad)
    assert not res_bad.ok and res_bad.images_ok < res_bad.images_total and res_bad.external_refs


def test_the_configuration_names_what_the_short_run_preset_changed(run: Path) -> None:
    md = (run / "report.md").read_text()
    line = ("short-run preset (4 steps < 5000): optimizer adam → adamw, lr 0.0001 → 0.001, crop_scale_min 0.2 → 0.8, "
            "w_dcor_teacher 1 → 64")
    assert f"| preset | {line} |" in md
    assert html.escape(line) in (run / "report.html").read_text()
