"""``compress export``: a run's student as ONNX, FP16, calibrated INT8, OpenVINO IR or a TensorRT engine, checked."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from compressor.cli.util import dataclass_options, with_parameters
from compressor.export.options import ExportOptions
from compressor.utils.coerce import field_hints


def export_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory written by `compress distill`.")],
    **fields: Any,
) -> None:
    """Export the student to ONNX, INT8, OpenVINO or TensorRT.

    Each file is checked against PyTorch on real images; RUN/export/manifest.json records it.

    Example: compress export runs/r18 -f onnx,onnx-int8 --calib-size 256
    """
    from compressor.cli.util import from_flags, setup_logging
    from compressor.export.exporter import check_options
    from compressor.rundir import check_output_path
    from compressor.runlock import refuse_if_training

    setup_logging()
    opts = from_flags(ExportOptions, fields)
    check_output_path(opts.out_dir, "--out")
    formats = [f.strip() for f in opts.format.split(",") if f.strip()] or [opts.format]
    each = [replace(opts, format=f) for f in formats]
    for o in each:  # every format, and every number whatever the format, before the first file is written
        check_options(o)
    refuse_if_training(run, "export")
    for o in each:
        _export_one(run, o)


def _export_one(run: Path, opts: ExportOptions) -> None:
    from rich.console import Console
    from rich.table import Table

    from compressor.export.exporter import export_run

    with Console().status(f"exporting {run} as {opts.format}"):
        res = export_run(run, opts)
    fid = res.entry["fidelity"]
    table = Table(title=f"{res.path} ({res.entry['size_mb']:.1f} MB)")
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_row("mean cosine vs PyTorch fp32", f"{fid['mean_cosine']:.6f} (≥ {fid['threshold']})")
    table.add_row("min cosine", f"{fid['min_cosine']:.6f}")
    table.add_row("max abs diff", f"{fid['max_abs_diff']:.3g}")
    table.add_row("images", f"{fid['n_images']} of {fid['data']}")
    if "openvino" in res.entry:
        table.add_row("OpenVINO inference precision", res.entry["openvino"]["inference_precision"])
    if "knn_top1_int8" in fid:
        table.add_row("kNN top-1 fp32 → int8",
                      f"{100 * fid['knn_top1_fp32']:.2f}% → {100 * fid['knn_top1_int8']:.2f}%")
    Console().print(table)
    typer.echo(f"manifest: {res.manifest}")


with_parameters(export_cmd, dataclass_options(ExportOptions, field_hints(ExportOptions)))
