"""``compress distill``: train a student with an SSL-KD recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.main import app
from compressor.cli.util import setup_logging


@app.command("distill")
def distill(
    student: Annotated[str | None, typer.Option(help="Student architecture: any timm model (e.g. resnet18).")] = None,
    teacher: Annotated[str | None, typer.Option(
        help="Teacher name (see `compress list teachers`), timm:<name>, open_clip:<arch>:<tag> or a run "
             "directory; comma-separated for several (moma).")] = None,
    teacher_weights: Annotated[str | None, typer.Option(
        help="Local teacher checkpoint in its official format, or `random` (no pretrained weights). "
             "Needed offline.")] = None,
    teacher_image_size: Annotated[int | None, typer.Option(help="Teacher input size (default: its own).")] = None,
    student_weights: Annotated[str | None, typer.Option(
        help="Start the student from a local timm/HF/torchvision weights file, or `pretrained` (timm's weights "
             "from the hub cache, or the hub when online). The classifier is dropped; every other key must fit.")
    ] = None,
    peer: Annotated[str | None, typer.Option(help="Second trainable model for peer recipes (dogo, mokd, css).")] = None,
    recipe: Annotated[str | None, typer.Option(help="Recipe (see `compress list recipes`). Default mvmr.")] = None,
    data: Annotated[str | None, typer.Option(help="A folder of images (class sub-folders give labels), "
                                                  "`fashion-mnist` or `synthetic`.")] = None,
    data_root: Annotated[str | None, typer.Option(help="Where to look for fashion-mnist first.")] = None,
    max_images: Annotated[int | None, typer.Option(help="Train on a fixed random subset of N images.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs to train (default 1 when --max-steps is absent).")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimisation steps.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step (default 64).")] = None,
    image_size: Annotated[int | None, typer.Option(help="Student input size (default: the model's own).")] = None,
    peer_image_size: Annotated[int | None, typer.Option(help="Peer input size (default: --image-size).")] = None,
    device: Annotated[str | None, typer.Option(help="auto (CUDA when present), cpu or cuda.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32.")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML file with the same fields as these flags "
                                                     "(flags win; unknown keys are errors).")] = None,
    out: Annotated[str | None, typer.Option(help="Run directory (default runs/<recipe>-<student>-<time>).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in --out from its last checkpoint.")] = False,
    seed: Annotated[int | None, typer.Option(help="Random seed (default 0).")] = None,
    checkpoint_every: Annotated[int | None, typer.Option(
        help="Write a checkpoint every N steps (default 500).")] = None,
    keep_checkpoints: Annotated[int | None, typer.Option(
        help="Checkpoints to keep (default: the newest 2 while training, the last one once finished).")] = None,
    workers: Annotated[int | None, typer.Option(help="Data-loading worker processes (default 0).")] = None,
    trust_checkpoint: Annotated[bool, typer.Option(
        "--trust-checkpoint",
        help="Allow TorchScript teacher files (OpenAI CLIP .pt). Only for files you trust.")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Recipe option key=value (repeatable), e.g. --set lr=3e-4 --set projector_dims=[512,512].")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Distill a compact student from a teacher (or a peer) with an SSL-KD recipe.

    Example: compress distill --teacher clip-vit-b16 --teacher-weights ckpt.pt --student resnet18
    --recipe mvmr --data ./images --epochs 10
    """
    from compressor.engine.config import parse_set_options, resolve_config
    from compressor.engine.trainer import train

    setup_logging()
    flags = dict(student=student, teacher=teacher, teacher_weights=teacher_weights,
                 teacher_image_size=teacher_image_size, student_weights=student_weights, peer=peer, recipe=recipe,
                 data=data, data_root=data_root,
                 max_images=max_images, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                 image_size=image_size, peer_image_size=peer_image_size, device=device, precision=precision,
                 out=out, resume=resume or None, seed=seed, checkpoint_every=checkpoint_every,
                 keep_checkpoints=keep_checkpoints, workers=workers,
                 trust_checkpoint=trust_checkpoint or None, recipe_config=parse_set_options(set_) or None)
    config_file = str(config) if config else None
    if resume and out and config_file is None and (Path(out) / "config.yaml").is_file():
        config_file = str(Path(out) / "config.yaml")  # a resumed run keeps its own configuration
    cfg = resolve_config(flags, config_file)
    run_dir = train(cfg, progress=not quiet)
    typer.echo(f"student written to {run_dir / 'student.safetensors'}; evaluate it with `compress eval {run_dir}`")
