"""``compress data shard``: write an image folder as WebDataset shards for ``--data``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.util import setup_logging

data_app = typer.Typer(help="Write data sets as WebDataset shards for --data.\n\n"
                            "Read them with `--data 'shards/train-{000000..000127}.tar'`.", no_args_is_help=True)


@data_app.command("shard")
def shard(
    folder: Annotated[Path, typer.Argument(help="Folder of images (class sub-folders give labels).")],
    out: Annotated[Path, typer.Argument(help="Folder for the shards and classes.json.")],
    shard_size: Annotated[int, typer.Option(help="Images per shard.")] = 1000,
    prefix: Annotated[str, typer.Option(help="Shard file names: PREFIX-000000.tar … (train, val).")] = "train",
    seed: Annotated[int, typer.Option(min=0, help="Seed of the shuffle before writing.")] = 0,
    shuffle: Annotated[bool, typer.Option(help="Shuffle the images first, so that every shard mixes classes.")
                       ] = True,
) -> None:
    """Write a folder of images as WebDataset shards.

    The images under FOLDER become .tar shards in OUT; the command prints the --data SPEC to read them.

    Example: compress data shard ./images shards --shard-size 1000, then
    compress distill --data 'shards/train-{000000..000012}.tar' … (quote the SPEC: the shell expands braces).
    """
    from compressor.data.shard_writer import write_shards
    from compressor.rundir import check_output_path

    setup_logging()
    check_output_path(out, "OUT")
    spec = write_shards(folder, out, shard_size=shard_size, prefix=prefix, seed=seed if shuffle else None)
    typer.echo(f"wrote {spec}\nread them with: --data '{spec}'")
