"""``compress run``: distill → eval → export → bench → report from one YAML, skipping current stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def run_cmd(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="YAML: the fields of `compress distill --config`, plus an "
                                                "optional `pipeline:` mapping (export formats, bench sizes).")],
    only: Annotated[list[str] | None, typer.Option(
        help="Run only this stage (repeatable or comma-separated): distill, eval, export, bench, report.")] = None,
    force: Annotated[list[str] | None, typer.Option(
        help="Run this stage even when it is current (repeatable or comma-separated).")] = None,
    pipeline_set: Annotated[list[str] | None, typer.Option(
        "--pipeline-set", help="Pipeline option key=value (repeatable), e.g. export=onnx,onnx-int8.")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="Tiny eval/export/bench sizes: a smoke test of the whole chain.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Run distill, eval, export, bench and report from one YAML file.

    A stage whose configuration and inputs are unchanged is skipped.

    Any `compress distill` flag overrides the file (e.g. --max-steps 2 --teacher-weights random --set lr=1e-3).
    An interrupted run continues where it stopped when the same command is run again.

    Example: compress run examples/demo_fashion_mnist.yaml --max-steps 50
    """
    from compressor.cli.util import setup_logging
    from compressor.engine.config import parse_set_options
    from compressor.pipeline import run_pipeline
    from compressor.pipeline.config import parse_distill_flags
    from compressor.report.collect import collect, headline
    from compressor.rundir import check_output_path

    setup_logging()
    overrides = parse_distill_flags(list(ctx.args))
    check_output_path(overrides.get("out"), "--out")  # an `out:` of the YAML: the one-line net in cli/main.py
    result = run_pipeline(config, overrides=overrides, pipeline_overrides=parse_set_options(pipeline_set),
                          only=only, force=force, quick=quick, progress=not quiet)
    typer.echo(f"stages run: {', '.join(result.ran) or 'none'}; skipped (current): "
               f"{', '.join(result.skipped) or 'none'}")
    if result.report.is_file():
        typer.echo(headline(collect(result.run_dir)).text())
        typer.echo(f"report: {result.report}")
