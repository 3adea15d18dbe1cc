"""``compress run``'s figures in the run's experiment trackers: what eval, export and bench measured.

Training logs its own curves (``--logger``, :mod:`compressor.engine.trackers`); the stages after it write JSON
files. Right after eval, export or bench has run, the figures it wrote go to the same tracker runs as summary
values, named by where they come from:

``eval/knn_top1``, ``eval/linear_top1``, ``eval/teacher/knn_top1``, ``eval/pruned/knn_top1``
    from ``eval.json``
``export/<format>/size_mb``, ``export/<format>/mean_cosine``, ``min_cosine``, ``max_abs_diff``
    from ``export/manifest.json`` (fidelity against the PyTorch student)
``bench/<backend>/<format>/<precision>/b<batch>/<p50_ms|p90_ms|throughput_ips|cosine_vs_torch>``
    from ``bench.json``

A stage that is current is skipped and logs nothing again; one that runs again (new inputs, ``--force``) logs its
new figures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from compressor.engine.trackers import log_figures, parse_loggers
from compressor.manifest import read_manifest
from compressor.rundir import RunDir

log = logging.getLogger("compressor")

EVAL_KEYS = ("knn_top1", "linear_top1")
EXPORT_KEYS = ("mean_cosine", "min_cosine", "max_abs_diff")
BENCH_KEYS = ("p50_ms", "p90_ms", "throughput_ips", "cosine_vs_torch")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def eval_figures(run: RunDir) -> dict[str, float]:
    data = _read(run.eval_path)
    out = {f"eval/{k}": float(data[k]) for k in EVAL_KEYS if _number(data.get(k))}
    for part in ("teacher", "pruned"):
        block = data.get(part)
        if isinstance(block, dict):
            out.update({f"eval/{part}/{k}": float(block[k]) for k in EVAL_KEYS if _number(block.get(k))})
    return out


def export_figures(run: RunDir) -> dict[str, float]:
    out: dict[str, float] = {}
    for record in read_manifest(run.export_dir)["exports"].values():
        entry: dict[str, Any] = dict(record) if isinstance(record, dict) else {}  # the JSON as written, read loosely
        if not entry.get("format"):
            continue
        name = f"export/{entry['format']}"
        if _number(entry.get("size_mb")):
            out[f"{name}/size_mb"] = float(entry["size_mb"])
        fidelity = entry.get("fidelity")
        fidelity = fidelity if isinstance(fidelity, dict) else {}
        out.update({f"{name}/{k}": float(fidelity[k]) for k in EXPORT_KEYS if _number(fidelity.get(k))})
    return out


def bench_figures(run: RunDir) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in _read(run.bench_path).get("results") or []:
        if not isinstance(row, dict):
            continue
        name = f"bench/{row.get('backend')}/{row.get('format')}/{row.get('precision')}/b{row.get('batch')}"
        out.update({f"{name}/{k}": float(row[k]) for k in BENCH_KEYS if _number(row.get(k))})
    return out


FIGURES = {"eval": eval_figures, "export": export_figures, "bench": bench_figures}  # stage → what it wrote


def log_stage_figures(run_dir: Path, logger: str | None, stage: str) -> None:
    """After ``stage`` ran: its figures to the trackers ``logger`` names (nothing for the other stages)."""
    if stage not in FIGURES or not parse_loggers(logger):
        return
    run = RunDir(run_dir)
    values = FIGURES[stage](run)
    log_figures(run, logger, values)
    if values:
        log.info("%s: %d figures logged to %s", stage, len(values), logger)
