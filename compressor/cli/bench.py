"""``compress bench``: latency, throughput and fidelity of a run's student and exports, or of one file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from compressor.export.options import BenchOptions, as_csv

DEFAULTS = BenchOptions  # the defaults, declared once


def bench_cmd(
    target: Annotated[Path, typer.Argument(
        help="A run directory (the PyTorch student and every file in RUN/export) or one exported file.")],
    backend: Annotated[str, typer.Option(
        help="Comma-separated backends: torch, ort-cpu, ort-cuda, trt, openvino (unavailable ones are skipped).",
    )] = as_csv(DEFAULTS.backends),
    batch: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = as_csv(DEFAULTS.batches),
    threads: Annotated[int | None, typer.Option(
        help="CPU threads for torch and ORT (default: all cores).")] = None,
    warmup: Annotated[int, typer.Option(
        help="Untimed calls before timing, at least (with --warmup-s).")] = DEFAULTS.warmup,
    warmup_s: Annotated[float, typer.Option(
        "--warmup-s", help="Untimed seconds before timing, at least (as trtexec --warmUp, in s).")] = DEFAULTS.warmup_s,
    iters: Annotated[int | None, typer.Option(help="Timed calls per measurement (at most).")] = DEFAULTS.iters,
    seconds: Annotated[float | None, typer.Option(
        help="Time budget per measurement (at least 5 calls).")] = DEFAULTS.seconds,
    compile: Annotated[bool, typer.Option(
        "--compile", help="torch.compile the PyTorch student.")] = DEFAULTS.compile,
    torch_device: Annotated[str, typer.Option(
        help="Device of the torch backend: cpu or cuda.")] = DEFAULTS.torch_device,
    data: Annotated[str | None, typer.Option(help="Data SPEC for the inputs (default: the run's).")] = None,
    data_root: Annotated[str | None, typer.Option(help="Where to look for fashion-mnist first.")] = None,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Write {env, results} as JSON here.")] = None,
    md: Annotated[Path | None, typer.Option("--md", help="Write a Markdown table here.")] = None,
    plot: Annotated[Path | None, typer.Option(
        help="Write a PNG of p50 latency vs batch per backend (needs matplotlib).")] = None,
    cv_warn: Annotated[float, typer.Option(
        help="Warn when std/mean of a measurement exceeds this.")] = DEFAULTS.cv_warn,
    mode: Annotated[str, typer.Option(
        help="latency: one request at a time, compute-only and end-to-end figures; throughput: several "
             "requests in flight, images/s (ort-cpu, ort-cuda, openvino).")] = DEFAULTS.mode,
    streams: Annotated[int | None, typer.Option(
        help="--mode throughput: requests in flight (default: ORT one per thread, OpenVINO its THROUGHPUT "
             "hint's choice).")] = DEFAULTS.streams,
) -> None:
    """Measure the latency, throughput and fidelity of a model.

    Per backend, format, batch: p50/p90/p99, mean±std, img/s, size, params, GFLOPs, cosine vs PyTorch.
    """
    from rich.console import Console

    from compressor.cli.util import parse_ints, setup_logging
    from compressor.export.bencher import bench
    from compressor.rundir import check_output_path
    from compressor.runlock import refuse_if_training

    setup_logging()
    for option, path in (("--json", json_out), ("--md", md), ("--plot", plot)):  # before minutes of timing
        check_output_path(path, option, folder=False)
    refuse_if_training(target if target.is_dir() else target.parent.parent, "bench")
    opts = BenchOptions(backends=tuple(b.strip() for b in backend.split(",") if b.strip()),
                        batches=parse_ints(batch, "--batch"), threads=threads, warmup=warmup, iters=iters,
                        seconds=seconds, compile=compile, torch_device=torch_device, data=data,
                        data_root=data_root, cv_warn=cv_warn, progress=True, warmup_s=warmup_s, mode=mode,
                        streams=streams)
    report = bench(target, opts)
    console = Console()
    # 16 columns: when the output is not a terminal (a log, a pipe), do not squeeze them into 80 characters
    (console if console.is_terminal else Console(width=200)).print(report.table())
    for note in report.notes:
        console.print(note, style="yellow" if note.startswith("unstable") else None, markup=False)
    if json_out:
        report.to_json(json_out)
    if md:
        md.write_text(report.to_markdown())
    if plot:
        report.plot(plot)
