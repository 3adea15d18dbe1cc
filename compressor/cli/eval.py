"""``compress eval``: kNN and linear-probe top-1 of a run's student on frozen embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from compressor.cli.util import setup_logging
from compressor.eval.linear import DEFAULT_PROBE, PROBE_KINDS


def eval_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory written by `compress distill`.")],
    data: Annotated[str | None, typer.Option(help="Data SPEC to evaluate on (default: the run's --data).")] = None,
    data_root: Annotated[str | None, typer.Option(help="Where to look for fashion-mnist first.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="A copy of RUN/eval.json here.")] = None,
    linear: Annotated[bool, typer.Option(help="Also fit a linear probe.")] = True,
    probe: Annotated[str, typer.Option(help=f"Linear probe, one of {', '.join(PROBE_KINDS)}: lbfgs-logreg is the "
                                            "papers' (L-BFGS logistic regression, C swept on a split of the bank), "
                                            "adam a faster untuned one.")] = DEFAULT_PROBE,
    max_train: Annotated[int | None, typer.Option(help="Use at most N training images as the kNN bank.")] = None,
    max_val: Annotated[int | None, typer.Option(help="Use at most N validation images as queries.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 256,
) -> None:
    """Measure a run's kNN and linear-probe top-1 accuracy.

    Weighted kNN (cosine, k=20, T=0.07) and linear probe: train split = bank, val/test split = queries.
    """
    from compressor.data.datasets import build_dataset
    from compressor.engine.setup import resolve_device
    from compressor.errors import CompressorError
    from compressor.eval.embed import evaluate_encoder
    from compressor.models.saved import load_encoder
    from compressor.rundir import RunDir, check_output_path
    from compressor.runlock import refuse_if_training
    from compressor.utils.io import atomic_write_text

    setup_logging()
    check_output_path(json_out, "--json", folder=False)  # before the embedding and the probe, not after
    refuse_if_training(run, "eval")
    for flag, value in (("--batch-size", batch_size), ("--max-train", max_train), ("--max-val", max_val)):
        if value is not None and value < 1:
            raise CompressorError(f"{flag} must be at least 1, got {value}")
    encoder = load_encoder(run)
    if data is None:
        data, run_root = RunDir(run).data(fix="pass --data SPEC")
        data_root = data_root or run_root
        if data is None:
            raise CompressorError(f"{RunDir(run).config_path} is missing; pass --data SPEC")
    dev = resolve_device(device)
    encoder.to(dev)
    res = evaluate_encoder(encoder, build_dataset(data, "train", data_root), build_dataset(data, "val", data_root),
                           linear=linear, probe=probe, limit_train=max_train, limit_val=max_val, device=str(dev),
                           batch_size=batch_size, progress=True)
    table = Table(title=f"{run} on {data}")
    for col in ("metric", "top-1"):
        table.add_column(col)
    table.add_row("kNN (k=20, T=0.07)", f"{100 * res.knn_top1:.2f}%")
    table.add_row("bank / queries", f"{res.n_train} / {res.n_query} images (disjoint)")
    if res.linear_top1 is not None:
        how = f"L-BFGS logreg, C={res.probe['C']:g}" if res.probe and "C" in res.probe else "Adam, no sweep"
        table.add_row(f"linear probe ({how})", f"{100 * res.linear_top1:.2f}%")
    Console().print(table)
    text = json.dumps({**res.to_dict(), "data": data}, indent=2) + "\n"
    atomic_write_text(RunDir(run).eval_path, text)  # beside the student, where report and pick look for it
    if json_out:
        atomic_write_text(json_out, text)
