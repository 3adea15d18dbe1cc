"""``compress report``: report.md and a self-contained report.html from a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory (of `compress distill` or `compress run`).")],
    out: Annotated[Path | None, typer.Option(help="Folder for report.md/report.html (default: RUN).")] = None,
) -> None:
    """Write a run's report.md and a self-contained report.html.

    Headline (speed-up, size ratio, kNN kept), curves, quality and deployment tables, latency vs accuracy.

    Reads what the other stages wrote (eval.json, bench.json, bench-teacher.json, export/manifest.json);
    `compress run` writes all of them.
    """
    from compressor.cli.util import setup_logging
    from compressor.report import write_report
    from compressor.report.collect import collect, headline
    from compressor.rundir import check_output_path

    setup_logging()
    check_output_path(out, "--out")
    md, html = write_report(run, out)
    typer.echo(headline(collect(run)).text())
    typer.echo(f"report: {html} (and {md})")
