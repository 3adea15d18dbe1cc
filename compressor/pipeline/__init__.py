"""``compress run``: distill → (prune) → eval → export → bench → report, each stage skipped when it is current.

The library API is :func:`run_pipeline`; the CLI (``compressor/cli/run.py``) only parses flags into it.

    from compressor.pipeline import run_pipeline
    result = run_pipeline("examples/demo_fashion_mnist.yaml", overrides={"max_steps": 50})
    print(result.report)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.engine.config import resolve_config
from compressor.errors import CompressorError
from compressor.pipeline.config import QUICK, PipelineConfig, pipeline_config, read_run_config, split_run_config
from compressor.pipeline.stages import STAGES, Context
from compressor.pipeline.state import PipelineState
from compressor.pipeline.tracking import log_stage_figures
from compressor.registry import unknown_name_message
from compressor.rundir import RunDir

log = logging.getLogger("compressor")

__all__ = ["STAGES", "PipelineConfig", "PipelineResult", "run_pipeline"]


@dataclass
class PipelineResult:
    run_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return RunDir(self.run_dir).report_paths[1]


def _stage_names(names: Iterable[str] | None, what: str) -> list[str]:
    out = []
    for n in names or ():
        for part in str(n).split(","):
            part = part.strip()
            if part and part not in STAGES:
                raise CompressorError(unknown_name_message(f"stage (in {what})", part, list(STAGES)))
            if part:
                out.append(part)
    return out


def run_pipeline(config: str | Path | dict[str, Any], *, overrides: dict[str, Any] | None = None,
                 pipeline_overrides: dict[str, Any] | None = None, only: Iterable[str] | None = None,
                 force: Iterable[str] | None = None, quick: bool = False, progress: bool = True) -> PipelineResult:
    """Run the stages of ``config`` (a YAML path, or a mapping of the same keys) that are not current.

    Args:
        config: distill fields (as ``compress distill --config``) and an optional ``pipeline:`` mapping
            (:class:`PipelineConfig`).
        overrides: distill fields that win over the file (``{"max_steps": 2}``); ``recipe_config`` merges.
        pipeline_overrides: :class:`PipelineConfig` fields that win over ``pipeline:``.
        only: run just these stages (each still skipped when current, unless also in ``force``).
        force: run these stages even when current (``distill`` moves an existing run aside first).
        quick: the smallest eval/export/bench sizes (``QUICK``), for smoke tests.
    Returns:
        the run directory and which stages ran or were skipped; the report is ``result.report``.
    """
    if isinstance(config, dict):
        train_values, pipe_values = split_run_config(config, "the config")
        where, stem = "the config", "run"
    else:
        train_values, pipe_values = read_run_config(config)
        where, stem = str(config), Path(config).stem
    for key, value in (overrides or {}).items():
        if key == "recipe_config":
            train_values["recipe_config"] = {**train_values.get("recipe_config", {}), **value}
        elif value is not None:
            train_values[key] = value
    pipe = pipeline_config({**pipe_values, **(QUICK if quick else {}), **(pipeline_overrides or {})}, where)
    train = resolve_config(train_values)
    run_dir = Path(train.out) if train.out else Path("runs") / stem
    train.out = str(run_dir)
    selected, forced = _stage_names(only, "--only") or list(STAGES), set(_stage_names(force, "--force"))
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(train=train, pipe=pipe, run_dir=run_dir, state=PipelineState(run_dir), progress=progress)
    result = PipelineResult(run_dir)
    for name, stage in STAGES.items():
        if name not in selected or not stage.enabled(ctx):
            continue
        ctx.force = name in forced
        key = stage.key(ctx)
        outputs_ok = all(o.exists() for o in stage.outputs(RunDir(run_dir)))
        if not ctx.force and outputs_ok and ctx.state.current(name, key):
            log.info("%s: current, skipped (--force %s to run it again)", name, name)
            result.skipped.append(name)
            continue
        log.info("%s: running", name)
        started = time.perf_counter()
        if name != "distill":  # distill records its start itself, after deciding whether to resume
            ctx.state.start(name, key)
        stage.run(ctx, key)
        ctx.state.finish(name, key, time.perf_counter() - started)
        log_stage_figures(run_dir, train.logger, name)  # eval/export/bench figures into the --logger trackers
        result.ran.append(name)
    return result
