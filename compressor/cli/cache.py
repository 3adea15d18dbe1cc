"""``compress cache build``: fill a teacher-embedding cache ahead of training (one batched pass)."""

from __future__ import annotations

from typing import Annotated

import typer

from compressor.cli.util import setup_logging

cache_app = typer.Typer(help="Build a teacher-embedding cache for --teacher-cache.", no_args_is_help=True)


@cache_app.command("build")
def build(
    out: Annotated[str, typer.Argument(help="Cache folder (the --teacher-cache of the training run).")],
    teacher: Annotated[str, typer.Option(help="Teacher name, as for `compress distill --teacher`.")],
    data: Annotated[str, typer.Option(help="Data SPEC, as for `compress distill --data`.")],
    teacher_weights: Annotated[str | None, typer.Option(help="Teacher checkpoint, or `random`.")] = None,
    teacher_image_size: Annotated[int | None, typer.Option(help="Teacher input size (default: its own).")] = None,
    data_root: Annotated[str | None, typer.Option(help="Where to look for fashion-mnist first.")] = None,
    max_images: Annotated[int | None, typer.Option(help="The same --max-images as the training run.")] = None,
    seed: Annotated[int, typer.Option(help="The same --seed as the training run (picks the --max-images subset).")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per teacher forward pass.")] = 256,
    workers: Annotated[int, typer.Option(help="Data-loading worker processes.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    trust_checkpoint: Annotated[bool, typer.Option("--trust-checkpoint", help="Allow TorchScript teacher files.")
                                ] = False,
) -> None:
    """Fill the teacher-embedding cache OUT in one pass.

    Computes the teacher's embedding of every image's deterministic view into OUT; resumes a partial cache.

    Example: compress cache build tcache --teacher clip-vit-b16 --teacher-weights ViT-B-16.pt --data ./images
    """
    from compressor.data.datasets import build_dataset
    from compressor.data.subset import training_subset
    from compressor.data.teacher_cache import TeacherCache, cache_key, fill_cache, teacher_source
    from compressor.engine.config import TrainConfig
    from compressor.engine.ranges import check_train_config
    from compressor.engine.setup import build_teachers, resolve_device
    from compressor.rundir import check_output_path

    setup_logging()
    check_output_path(out, "OUT (the cache folder)")
    cfg = TrainConfig(student="-", teacher=teacher, teacher_weights=teacher_weights,
                      teacher_image_size=teacher_image_size, data=data, data_root=data_root, max_images=max_images,
                      seed=seed, batch_size=batch_size, workers=workers, trust_checkpoint=trust_checkpoint)
    check_train_config(cfg)  # the ranges of distill's flags of the same names (engine/ranges.py)
    dataset = training_subset(build_dataset(data, "train", data_root), max_images, seed)
    teachers = build_teachers(cfg)
    if len(teachers) != 1:
        from compressor.errors import CompressorError

        raise CompressorError("a teacher cache holds one teacher; pass a single --teacher")
    cache = TeacherCache(out, cache_key(dataset, teachers[0]), repair=True)  # damaged rows are computed again
    cache.record_source(teacher_source(teacher, teacher_weights, teacher_image_size))
    before = cache.num_filled
    done = fill_cache(cache, teachers[0], dataset, batch_size=batch_size, workers=workers,
                      device=resolve_device(device))
    typer.echo(f"{out}: {before + done} of {len(cache)} embeddings ({done} computed now, {before} already there)")
