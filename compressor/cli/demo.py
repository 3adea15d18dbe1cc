"""``compress demo``: the whole chain, offline, on CPU (Fashion-MNIST)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from compressor.cli.util import setup_logging


def demo(
    out: Annotated[str, typer.Option(help="Where the demo's runs go.")] = "runs/demo",
    data_root: Annotated[str | None, typer.Option(help="Where to look for fashion-mnist first.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs of each student.")] = 2,
    teacher_epochs: Annotated[int, typer.Option(min=1, help="Training epochs of the teacher (whole split).")] = 2,
    images: Annotated[int, typer.Option(min=1, help="The students' training images (a fixed subset).")] = 10_000,
) -> None:
    """Run the whole chain offline on CPU, on Fashion-MNIST.

    Train a teacher, distill a smaller student, train it alone, compare by kNN; then export the teacher and
    the KD student to ONNX and INT8, bench them here and write report.md / report.html.
    """
    from compressor.demo import DemoConfig, run_demo
    from compressor.demo_deploy import deploy_demo
    from compressor.report.collect import collect, headline
    from compressor.rundir import check_output_path

    setup_logging()
    check_output_path(out, "--out")
    cfg = DemoConfig(out=out, data_root=data_root, epochs=epochs, teacher_epochs=teacher_epochs, images=images)
    results = run_demo(cfg)
    table = Table(title=f"Fashion-MNIST kNN top-1 (k=20, T=0.07; {cfg.eval_bank} train bank, "
                        f"{cfg.eval_queries} test queries)")
    table.add_column("model")
    table.add_column("kNN top-1", justify="right")
    for name, acc in results.items():
        table.add_row(name, f"{100 * acc:.2f}%")
    Console().print(table)
    html, student_run = deploy_demo(cfg, results)  # export, bench, report (compressor/demo_deploy.py)
    typer.echo(f"{student_run.name} vs teacher: {headline(collect(student_run)).text()}")
    typer.echo(f"report: {html} (and {html.with_suffix('.md')})")
