"""Everything a report shows, read from a run directory (and its teacher's, when that is a run too).

Nothing here measures: the figures come from the files ``distill``, ``eval``, ``export`` and ``bench``
wrote (see :mod:`compressor.rundir`). What is missing is left out of the report, not invented.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compressor.errors import CompressorError
from compressor.manifest import ExportEntry, manifest_entry
from compressor.rundir import RunDir


@dataclass
class DeployRow:
    """One measured (model, backend, format, batch) with the quality figures that belong to it."""

    model: str  # "student" | "teacher"
    backend: str
    format: str
    precision: str
    batch: int
    size_mb: float | None
    params_m: float | None
    p50_ms: float
    p99_ms: float
    img_s: float
    cosine: float | None  # mean cosine vs the PyTorch fp32 model on the same images
    knn_delta: float | None  # kNN top-1 of this format minus fp32's, from the export's own check
    knn: float | None  # the model's kNN top-1 (eval) plus knn_delta where it is beyond the noise: the plot's axis
    knn_noise: float | None = None  # the check's ~95% half-width for knn_delta (None: not recorded)
    mode: str = "latency"  # or "throughput" (several requests in flight: img_s is then the measured rate)
    timing: str = "host"  # what p50_ms and e2e_p50_ms measured (export/report.py: TIMINGS)
    e2e_p50_ms: float | None = None  # end to end, host input → host output (a host row: its p50_ms)
    in_flight: int | None = None  # throughput mode: requests in flight

    @property
    def within_noise(self) -> bool:
        """A delta the export's small check cannot tell from zero (or, unrecorded, not shown to be a loss)."""
        if self.knn_delta is None or self.precision == "fp32":
            return False
        return abs(self.knn_delta) <= self.knn_noise if self.knn_noise is not None else self.knn_delta > 0


@dataclass
class ReportData:
    run_dir: Path
    config: dict[str, Any]
    run: dict[str, Any]
    student: dict[str, Any]
    metrics: list[dict[str, Any]]
    evaluation: dict[str, Any]
    env: dict[str, Any]
    deploy: list[DeployRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def student_knn(self) -> float | None:
        return self.evaluation.get("knn_top1")

    @property
    def teacher_knn(self) -> float | None:
        return (self.evaluation.get("teacher") or {}).get("knn_top1")


def _json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CompressorError(f"{path} is not valid JSON ({err}); delete it and re-run its stage") from err


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl``; a torn last line (a killed run) is skipped, not fatal."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


def _entry_of(file: str | None) -> ExportEntry:
    """The export manifest's entry of an exported file (empty for the PyTorch model)."""
    if not file:
        return {}

    try:
        return manifest_entry(file) or {}
    except CompressorError:
        return {}


def _deploy_rows(bench: dict[str, Any] | None, model: str, knn: float | None) -> list[DeployRow]:
    """One row per benchmarked file. The plot places a row at the model's kNN plus its export-check delta only
    where the delta is beyond the check's noise: quantisation never reads as a gain the check cannot show."""
    rows = []
    for r in (bench or {}).get("results", []):
        entry = _entry_of(r.get("file"))
        fid = entry.get("fidelity", {})
        delta = None
        if "knn_top1_int8" in fid and "knn_top1_fp32" in fid:
            delta = fid["knn_top1_int8"] - fid["knn_top1_fp32"]
        elif r.get("precision") == "fp32":
            delta = 0.0  # the same weights in the same precision: kNN is the fp32 model's
        row = DeployRow(
            model=model, backend=r["backend"], format=r["format"] + (" (QAD)" if "qad" in entry else ""),
            precision=r["precision"], batch=r["batch"],
            size_mb=r.get("size_mb"), params_m=r.get("params_m"), p50_ms=r["p50_ms"], p99_ms=r["p99_ms"],
            img_s=r["throughput_ips"], cosine=r.get("cosine_vs_torch"), knn_delta=delta, knn=None,
            knn_noise=fid.get("knn_delta_noise"), mode=r.get("mode", "latency"), timing=r.get("timing", "host"),
            e2e_p50_ms=r.get("e2e_p50_ms", r["p50_ms"] if r.get("timing", "host") == "host" else None),
            in_flight=(r.get("settings") or {}).get("requests_in_flight"))
        if knn is not None and delta is not None:
            row.knn = knn if row.within_noise else knn + delta
        rows.append(row)
    return rows


def collect(run_dir: str | Path) -> ReportData:
    """Read a finished run directory; a run without ``student.json`` is an error naming the fix."""
    run = RunDir(run_dir)
    run_dir = run.path
    if not run.is_finished():
        raise CompressorError(f"{run_dir} is not a finished run (no {run.meta_path().name}); pass the --out of a "
                              "finished `compress distill` or `compress run`")
    cfg_path = run.config_path
    config = (yaml.safe_load(cfg_path.read_text()) or {}) if cfg_path.is_file() else {}
    evaluation = _json(run.eval_path) or {}
    bench = _json(run.bench_path)
    teacher_bench = _json(run.teacher_bench_path)
    data = ReportData(run_dir=run_dir, config=config, run=_json(run.info_path) or {},
                      student=_json(run.meta_path()), metrics=read_metrics(run.metrics_path),
                      evaluation=evaluation, env=(bench or teacher_bench or {}).get("env", {}))
    data.deploy = _deploy_rows(bench, "student", data.student_knn) + \
        _deploy_rows(teacher_bench, "teacher", data.teacher_knn)
    for what, found in ((f"evaluation ({run.eval_path.name})", evaluation),
                        (f"student benchmark ({run.bench_path.name})", bench),
                        (f"teacher benchmark ({run.teacher_bench_path.name})", teacher_bench)):
        if not found:
            data.notes.append(f"no {what}: its part of the report is left out")
    for b in (bench, teacher_bench):
        data.notes += [n for n in (b or {}).get("notes", []) if n.startswith("unstable")]
    return data


@dataclass
class Headline:
    speedup: float | None
    speedup_how: str
    size_ratio: float | None
    knn_kept: float | None

    def text(self) -> str:
        parts = []
        if self.speedup is not None:
            fast = f"{self.speedup:.1f}x faster" if self.speedup >= 1 else f"{1 / self.speedup:.1f}x slower"
            parts.append(f"{fast} ({self.speedup_how})")
        if self.size_ratio is not None:
            parts.append(f"{self.size_ratio:.1f}x smaller (parameters)")
        if self.knn_kept is not None:
            parts.append(f"{100 * self.knn_kept:.0f}% of the teacher's kNN")
        return ", ".join(parts) if parts else "no teacher figures to compare with"


def headline(data: ReportData) -> Headline:
    """Student vs teacher, like for like: the same backend, format and batch on this machine.

    Of the (backend, format, batch) both models were measured in, the one where the student is
    fastest at the smallest common batch (the latency case) is the headline's comparison.
    """
    latency = [r for r in data.deploy if r.mode == "latency"]  # a throughput row's p50 is under load
    student = {(r.backend, r.format, r.batch): r for r in latency if r.model == "student"}
    teacher = {(r.backend, r.format, r.batch): r for r in latency if r.model == "teacher"}
    common = sorted(set(student) & set(teacher), key=lambda k: (k[2], student[k].p50_ms))
    speedup, how = None, ""
    if common:
        k = common[0]
        speedup = teacher[k].p50_ms / student[k].p50_ms
        how = f"{k[1]} on {k[0]}, batch {k[2]}, p50"
    s_params = next((r.params_m for r in data.deploy if r.model == "student" and r.params_m), None)
    t_params = next((r.params_m for r in data.deploy if r.model == "teacher" and r.params_m), None)
    ratio = t_params / s_params if s_params and t_params else None
    kept = data.student_knn / data.teacher_knn if data.student_knn and data.teacher_knn else None
    return Headline(speedup, how, ratio, kept)
