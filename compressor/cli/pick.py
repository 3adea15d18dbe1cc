"""``compress pick``: bench candidate students for a target under a latency budget (and, with data, rank them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def pick_cmd(
    budget_ms: Annotated[float, typer.Option("--budget-ms", help="Latency budget per image at batch 1, ms.")],
    backend: Annotated[str, typer.Option(help="Target runtime: ort-cpu, openvino, trt or torch.")] = "ort-cpu",
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads of the target (default: all cores).")] = None,
    candidates: Annotated[str | None, typer.Option(
        help="Comma-separated timm students (default: the edge zoo, see docs/bench.md).")] = None,
    image_size: Annotated[int, typer.Option(min=16, max=4096,
                                            help="Input size the students will be deployed at.")] = 224,
    data: Annotated[str | None, typer.Option(
        help="Data SPEC: distil each candidate within budget briefly and rank by kNN per ms.")] = None,
    data_root: Annotated[str | None, typer.Option(help="Where to look for fashion-mnist first.")] = None,
    teacher: Annotated[str | None, typer.Option(
        help="Teacher for the short distillations (default: none, SimCLR).")] = None,
    teacher_weights: Annotated[str | None, typer.Option(help="The teacher's checkpoint (see distill).")] = None,
    recipe: Annotated[str | None, typer.Option(help="Recipe of the short distillations (default: distill's "
                                                    "default with a teacher, simclr without).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Steps of each short distillation.")] = 50,
    iters: Annotated[int, typer.Option(min=1, help="Timed calls per candidate (at most; 3 s each at most).")] = 20,
    qad_steps: Annotated[int | None, typer.Option(
        min=1, help="Where a candidate's PTQ INT8 is refused, consider its QAD variant (this many steps of "
                    "quantization-aware distillation; needs the openvino extra's NNCF).")] = None,
    out: Annotated[Path, typer.Option(help="Working folder; pick.json and pick.png are written here.")] = Path(
        "runs/pick"),
    plot: Annotated[bool, typer.Option(help="Write OUT/pick.png (needs matplotlib).")] = True,
) -> None:
    """Pick the student to deploy under a latency budget.

    Which student to deploy: latency, size and FLOPs of each candidate in its best format for the target.
    """
    from rich.console import Console

    from compressor.cli.util import setup_logging
    from compressor.export.pick import PickOptions, pick
    from compressor.rundir import check_output_path

    setup_logging()
    check_output_path(out, "--out")
    opts = PickOptions(budget_ms=budget_ms, backend=backend, threads=threads, image_size=image_size, out=out,
                       data=data, data_root=data_root, teacher=teacher, teacher_weights=teacher_weights,
                       recipe=recipe, steps=steps, iters=iters, qad_steps=qad_steps)
    if candidates:
        opts.candidates = tuple(c.strip() for c in candidates.split(",") if c.strip())
    with Console().status("benching candidates"):
        report = pick(opts)
    console = Console()
    (console if console.is_terminal else Console(width=160)).print(report.table())
    for c in report.candidates:
        for note in c.notes:
            console.print(f"{c.arch}: {note}", markup=False, style="yellow")
    report.to_json(out / "pick.json")
    if plot:
        report.plot(out / "pick.png")
    best = report.best()
    typer.echo(f"pick: {best.arch} ({best.format}, {best.p50_ms:.2f} ms)" if best else
               f"no candidate runs within {budget_ms} ms here; raise --budget-ms or lower --image-size")
    typer.echo(f"table: {out / 'pick.json'}" + (f", plot: {out / 'pick.png'}" if plot else ""))
