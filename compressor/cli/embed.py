"""``compress embed``: embeddings of a folder of images with a run's student or an exported model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.cli.util import setup_logging


def embed_cmd(
    model: Annotated[str, typer.Argument(help="A run directory, or an .onnx / OpenVINO .xml from `compress export`.")],
    data: Annotated[Path, typer.Argument(help="A folder of images (searched recursively).")],
    out: Annotated[Path, typer.Option(help="Output: .npy, .safetensors or .parquet; the file list goes to "
                                           "<out>.files.txt.")],
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps (PyTorch runs only).")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Write the embeddings of every image under DATA.

    Unreadable images are skipped and named.
    """
    from compressor.engine.setup import resolve_device
    from compressor.export.embed_files import embed_folder
    from compressor.rundir import check_output_path

    setup_logging()
    check_output_path(out, "--out", folder=False)  # before embedding every image, not after
    emb, _ = embed_folder(model, data, out, batch_size=batch_size, device=str(resolve_device(device)),
                           progress=not quiet)
    typer.echo(f"{emb.shape[0]} embeddings of dimension {emb.shape[1]} written to {out} "
               f"(files listed in {out.with_suffix('.files.txt')})")
