"""``compress distill``: train a student with an SSL-KD recipe (its flags are TrainConfig's fields)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from compressor.cli.util import dataclass_options, given_on_command_line, setup_logging, with_parameters
from compressor.engine.config import FIELDS, TrainConfig


def distill(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(help="YAML file with the same fields as these flags "
                                                     "(flags win; unknown keys are errors).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.", show_default=False)] = False,
    **fields: Any,
) -> None:
    """Distill a compact student from a teacher or a peer.

    The student learns the teacher's (or a peer's) representation with a self-supervised KD recipe (--recipe).

    Example: compress distill --teacher clip-vit-b16 --teacher-weights ckpt.pt --student resnet18
    --recipe mvmr --data ./images --epochs 10
    """
    from compressor.engine.config import parse_set_options, resolve_config
    from compressor.engine.trainer import train
    from compressor.rundir import RunDir, check_output_path

    setup_logging()
    flags = {k: v for k, v in fields.items() if given_on_command_line(ctx, k)}  # YAML keeps what was not typed
    if "recipe_config" in flags:
        flags["recipe_config"] = parse_set_options(flags["recipe_config"])
    config_file: Path | None = config
    out = flags.get("out")
    resuming = flags.get("resume") or flags.get("auto_resume")
    if resuming and out and config_file is None and RunDir(out).config_path.is_file():
        config_file = RunDir(out).config_path  # a resumed run keeps its own configuration
    cfg = resolve_config(flags, config_file)
    check_output_path(cfg.out, "--out")  # one line before any model is built (cfg.out may come from the YAML)
    run_dir = train(cfg, progress=not quiet)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    typer.echo(f"student written to {RunDir(run_dir).weights_path()}; evaluate it with `compress eval {run_dir}`")


with_parameters(distill, dataclass_options(TrainConfig, FIELDS))
