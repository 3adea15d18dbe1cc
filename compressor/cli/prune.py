"""``compress prune``: structured channel pruning of a run's student, then a distillation to recover."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.util import setup_logging
from compressor.prune import DEFAULT_BATCH_SIZE, DEFAULT_LR, DEFAULT_STEPS


def prune_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory of a finished `compress distill`.")],
    ratio: Annotated[float, typer.Option(help="Fraction of the channels of every prunable layer group to remove, "
                                              "between 0 and 1 (0.3 removes 30%).", show_default=False)],
    steps: Annotated[int, typer.Option(help="Steps of the recovery distillation from the unpruned student.")]
    = DEFAULT_STEPS,
    out: Annotated[Path | None, typer.Option(help="Where the pruned run goes (default: RUN-pruned<ratio·100> "
                                                  "beside RUN).")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per recovery step.")] = DEFAULT_BATCH_SIZE,
    lr: Annotated[float, typer.Option(help="Peak learning rate of the recovery (AdamW, cosine decay).")] = DEFAULT_LR,
    seed: Annotated[int, typer.Option(help="Seed of the recovery's image sample and batches.")] = 0,
) -> None:
    """Prune a student's channels, then distil it back.

    Remove a fraction of RUN's student's channels (torch-pruning, group L2 magnitude; the embedding keeps its
    width), then distil the pruned network back toward the unpruned one on the run's training images.

    The result is a run directory like any other: eval, export (onnx, openvino) and bench read it. A killed
    job started again with the same options continues from OUT/checkpoints/prune.pt.
    """
    from compressor.prune import prune_run
    from compressor.rundir import check_output_path

    setup_logging()
    check_output_path(out, "--out")
    path = prune_run(run, out, ratio=ratio, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    typer.echo(f"pruned student written to {path}")
