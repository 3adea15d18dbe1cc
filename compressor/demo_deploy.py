"""The demo's second half: from trained runs to a deployment story (export → bench → report).

``compressor.demo`` trains the teacher and the students and returns their kNN; this module takes the
run directories it left under ``cfg.out``, and for the teacher and the knowledge-distilled student:
evaluates them on the demo's kNN split, exports each to ONNX fp32 and calibrated INT8, benchmarks
every format on this machine and writes ``report.md`` / ``report.html`` into ``cfg.out``. It reads
only run directories, so the training half can change its models and recipes freely.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from compressor.errors import CompressorError
from compressor.pipeline import run_pipeline
from compressor.pipeline.config import PipelineConfig
from compressor.report import write_report
from compressor.rundir import RunDir
from compressor.utils.io import atomic_write_text

log = logging.getLogger("compressor")


def _config(run: Path) -> dict[str, Any]:
    return yaml.safe_load(RunDir(run).config_path.read_text()) or {}


def kd_students(root: Path) -> list[Path]:
    """Finished runs under ``root`` whose teacher is itself a run under ``root`` (the distilled students)."""
    runs = sorted(p for p in root.iterdir() if RunDir(p).is_finished() and RunDir(p).config_path.is_file())
    out = []
    for run in runs:
        teacher = str(_config(run).get("teacher") or "")
        if teacher and RunDir(teacher).is_finished() and Path(teacher).resolve().parent == root.resolve():
            out.append(run)
    return out


def demo_pipeline(cfg: Any) -> PipelineConfig:
    """Export onnx and onnx-int8; bench torch and ORT at batch 1 (latency) and 32 (throughput), ~3 s each."""
    return PipelineConfig(export=["onnx", "onnx-int8"], eval_max_train=getattr(cfg, "eval_bank", 5000),
                          eval_max_val=getattr(cfg, "eval_queries", 2000), bench_backends=["torch", "ort-cpu"],
                          bench_batches=[1, 32], bench_seconds=3.0, bench_iters=100)


def deploy_demo(cfg: Any, knn: dict[str, float], *, progress: bool = True) -> tuple[Path, Path]:
    """Evaluate, export, bench and report the demo's KD student and its teacher.

    Returns (report.html, the student's run directory).

    ``cfg`` is the demo's config (``out``, and ``eval_bank``/``eval_queries`` when it has them); ``knn`` is
    what training returned (label → kNN top-1), shown as the report's quality table.
    """
    root = Path(cfg.out)
    students = kd_students(root)
    if not students:
        raise CompressorError(f"no distilled student under {root} (a run whose teacher is a run beside it); "
                              "run the demo's training first")
    pipe = asdict(demo_pipeline(cfg))

    def stages(run: Path, only: list[str]) -> None:
        values = {k: v for k, v in _config(run).items() if k != "resume"}
        run_pipeline({**values, "out": str(run), "pipeline": pipe}, only=only, progress=progress)

    for run in students:
        stages(run, ["eval"])
    best = max(students, key=lambda r: json.loads(RunDir(r).eval_path.read_text())["knn_top1"])
    if len(students) > 1:
        log.info("deploying %s, the distilled student with the best kNN", best.name)
    evaluation = json.loads(RunDir(best).eval_path.read_text())
    evaluation["quality"] = knn
    atomic_write_text(RunDir(best).eval_path, json.dumps(evaluation, indent=2) + "\n")
    stages(best, ["export", "bench", "report"])
    _, html = write_report(best, root)
    return html, best
