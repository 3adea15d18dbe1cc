"""``compress export``: a run's student as ONNX, FP16, calibrated INT8, OpenVINO IR or a TensorRT engine, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.export.options import ExportOptions, as_csv

DEFAULTS = ExportOptions  # the defaults, declared once


def export_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory written by `compress distill`.")],
    format: Annotated[str, typer.Option("--format", "-f",
                                        help="onnx, onnx-fp16, onnx-int8, openvino, openvino-int8, trt-fp16, "
                                             "trt-int8 or timm.")] = DEFAULTS.format,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: RUN/export).")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (17 or newer).")] = DEFAULTS.opset,
    bake_preprocess: Annotated[bool, typer.Option(
        help="Put the normalisation in the graph: the input becomes uint8 N×H×W×3 RGB.")] = DEFAULTS.bake_preprocess,
    calib_data: Annotated[str | None, typer.Option(
        help="INT8 calibration data SPEC (default: the run's training data).")] = None,
    calib_size: Annotated[int, typer.Option(help="Number of INT8 calibration images.")] = DEFAULTS.calib_size,
    calib_method: Annotated[str, typer.Option(
        help="INT8 calibration: minmax, entropy or percentile.")] = DEFAULTS.calib_method,
    min_cosine: Annotated[float | None, typer.Option(
        help="Refuse the export below this mean cosine vs PyTorch (default 0.9999 onnx, 0.999 fp16 and "
             "openvino, 0.98 int8).")] = None,
    check_size: Annotated[int, typer.Option(
        help="Held-out images for the parity check (and kNN queries).")] = DEFAULTS.check_size,
    knn: Annotated[bool, typer.Option(
        help="For INT8 on labelled data, report kNN top-1 of fp32 vs int8.")] = DEFAULTS.knn,
    int8_exclude: Annotated[list[str] | None, typer.Option(
        help="ONNX node name to keep in float for INT8 (repeatable).")] = None,
    trt_batch: Annotated[str, typer.Option(
        help="TensorRT optimisation profile: min,opt,max batch.")] = as_csv(DEFAULTS.trt_batch),
    data: Annotated[str | None, typer.Option(
        help="Data SPEC for the parity check (default: the run's).")] = None,
    data_root: Annotated[str | None, typer.Option(help="Where to look for fashion-mnist first.")] = None,
    strict_fp32: Annotated[bool, typer.Option(
        "--strict-fp32", help="openvino: run in fp32 even where the CPU would pick bf16.")] = DEFAULTS.strict_fp32,
) -> None:
    """Export the student and check it against PyTorch on real images; writes RUN/export/manifest.json."""
    from rich.console import Console
    from rich.table import Table

    from compressor.cli.util import parse_ints, setup_logging
    from compressor.engine.runlock import refuse_if_training
    from compressor.errors import CompressorError
    from compressor.export.exporter import export_run

    setup_logging()
    refuse_if_training(run, "export")
    batch = parse_ints(trt_batch, "--trt-batch")
    if len(batch) != 3:
        raise CompressorError(f"--trt-batch takes min,opt,max (three numbers), not {trt_batch!r}")
    opts = ExportOptions(format=format, out_dir=out, opset=opset, bake_preprocess=bake_preprocess,
                         calib_data=calib_data, calib_size=calib_size, calib_method=calib_method,
                         min_cosine=min_cosine, check_size=check_size, knn=knn,
                         int8_exclude=tuple(int8_exclude or ()), trt_batch=batch, data=data,
                         data_root=data_root, strict_fp32=strict_fp32)
    with Console().status(f"exporting {run} as {format}"):
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
