"""``pick``: which student to deploy on this target, under a latency budget.

For every candidate (default: the edge zoo, :data:`compressor.export.zoo.EDGE_STUDENTS`) it exports
the formats of the target backend, keeps those that pass their parity check, benches them at batch 1
with the target's threads and takes the fastest. Latency does not depend on the weights, so this
phase uses a freshly initialised student (seeded). With ``data``, every candidate within the budget
then gets a short distillation (``steps`` steps; with a teacher the ``recipe`` given, else
``compress distill``'s default recipe; SimCLR without a teacher)
and a kNN evaluation on a class-stratified sample, and the candidates are ranked by kNN top-1 per
millisecond with the Pareto front (nothing else both faster and more accurate) marked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from compressor.errors import CompressorError
from compressor.export.zoo import EDGE_STUDENTS
from compressor.rundir import RunDir
from compressor.utils.extras import require
from compressor.utils.io import atomic_write_text

log = logging.getLogger("compressor")

PICK_TARGETS = ("ort-cpu", "openvino", "trt", "torch")  # ort-cuda: not a pick target yet


def target_formats(target: str) -> tuple[str, ...]:
    """The formats tried for ``target``, in the order exported: those of the export backend that runs on it
    (export/backend.py) that pick tries (``Format.pick``); none for ``torch``."""
    from compressor.export.backend import backend_for_runtime

    owner = backend_for_runtime(target)
    return tuple(f.name for f in owner.formats if f.pick) if owner is not None else ()


@dataclass
class PickOptions:
    budget_ms: float
    backend: str = "ort-cpu"
    threads: int | None = None
    candidates: tuple[str, ...] = EDGE_STUDENTS
    image_size: int = 224
    out: Path = Path("runs/pick")
    data: str | None = None  # with data: a short distillation and kNN of every candidate within budget
    data_root: str | None = None
    teacher: str | None = None
    teacher_weights: str | None = None
    recipe: str | None = None  # default: default_recipe(teacher), distill's own default with a teacher
    steps: int = 50
    batch_size: int = 32
    calib_size: int = 64  # small: the calibration is for latency here, not the final export
    check_size: int = 32
    iters: int = 20
    seconds: float = 3.0
    max_train: int = 2000
    max_val: int = 500
    qad_steps: int | None = None  # where PTQ INT8 is refused, try a QAD variant of this many steps (export/qad.py)


@dataclass
class Candidate:
    arch: str
    format: str | None = None
    p50_ms: float | None = None
    size_mb: float | None = None
    params_m: float | None = None
    gflops: float | None = None
    fits: bool = False
    knn_top1: float | None = None
    knn_per_ms: float | None = None
    pareto: bool = False
    notes: list[str] = field(default_factory=list)


@dataclass
class PickReport:
    options: dict
    candidates: list[Candidate]
    seconds: float = 0.0

    def best(self) -> Candidate | None:
        """The pick: among candidates within budget, the highest kNN/ms with data, else the fastest."""
        fit = [c for c in self.candidates if c.fits]
        if not fit:
            return None
        if any(c.knn_per_ms is not None for c in fit):
            return max((c for c in fit if c.knn_per_ms is not None), key=lambda c: c.knn_per_ms or 0.0)
        return min(fit, key=lambda c: c.p50_ms or float("inf"))

    def to_json(self, path: Path) -> None:
        data = {"options": self.options, "seconds": round(self.seconds, 1),
                "pick": (b.arch if (b := self.best()) else None), "candidates": [asdict(c) for c in self.candidates]}
        atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")

    def table(self):
        from rich.table import Table

        with_data = any(c.knn_top1 is not None for c in self.candidates)
        t = Table(title=f"candidates for {self.options['backend']}, {self.options['threads']} threads, "
                        f"budget {self.options['budget_ms']} ms at batch 1")
        for col in ["student", "format", "p50 ms", "size MB", "params M", "GFLOPs", "fits"] + (
                ["kNN top-1", "kNN/ms", "Pareto"] if with_data else []):
            t.add_column(col, justify="left" if col in ("student", "format") else "right")
        best = self.best()
        for c in sorted(self.candidates, key=lambda c: c.p50_ms if c.p50_ms is not None else float("inf")):
            row = [c.arch + (" ★" if best is c else ""), c.format or "-", _f(c.p50_ms, 2), _f(c.size_mb, 1),
                   _f(c.params_m, 2), _f(c.gflops, 2), "yes" if c.fits else "no"]
            if with_data:
                row += [_f(None if c.knn_top1 is None else 100 * c.knn_top1, 2), _f(c.knn_per_ms, 4),
                        "●" if c.pareto else ""]
            t.add_row(*row)
        return t

    def plot(self, path: Path) -> None:
        require("matplotlib", "--plot").use("Agg")
        import matplotlib.pyplot as plt
        pts = [c for c in self.candidates if c.p50_ms is not None]
        with_data = any(c.knn_top1 is not None for c in pts)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for c in pts:
            y = 100 * c.knn_top1 if with_data and c.knn_top1 is not None else c.gflops
            if y is None or c.p50_ms is None:
                continue
            ax.scatter(c.p50_ms, y, c="tab:red" if c.pareto else ("tab:blue" if c.fits else "tab:gray"))
            ax.annotate(f"{c.arch} ({c.format})", (c.p50_ms, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        front = sorted((c for c in pts if c.pareto and c.knn_top1 is not None), key=lambda c: c.p50_ms or 0.0)
        if front:
            ax.plot([c.p50_ms or 0.0 for c in front], [100 * (c.knn_top1 or 0.0) for c in front], "r--", lw=1)
        ax.axvline(self.options["budget_ms"], color="k", ls=":", lw=1, label="budget")
        ax.set_xscale("log")
        ax.set_xlabel(f"p50 latency at batch 1, ms ({self.options['backend']}, {self.options['threads']} threads)")
        ax.set_ylabel("kNN top-1 (%)" if with_data else "GFLOPs per image")
        ax.legend(loc="best")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _f(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def pick(options: PickOptions) -> PickReport:
    """Bench every candidate in its best format for the target; with data, distil and rank; see the module."""
    from compressor.export.env import usable_cores
    from compressor.export.runners import backend_unavailable

    opts = options
    if opts.backend not in PICK_TARGETS:
        from compressor.registry import unknown_name_message

        raise CompressorError(unknown_name_message("pick backend", opts.backend, list(PICK_TARGETS)))
    if not (math.isfinite(opts.budget_ms) and opts.budget_ms > 0):  # NaN compares false with everything
        raise CompressorError(f"--budget-ms takes a positive number of milliseconds, not {opts.budget_ms}")
    if (reason := backend_unavailable(opts.backend)) is not None:
        raise CompressorError(f"cannot pick for {opts.backend}: {reason}")
    threads = opts.threads or usable_cores()
    started = time.time()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    report = PickReport({**asdict(opts), "threads": threads, "out": str(out)}, [])
    for arch in opts.candidates:
        log.info("pick: benching %s", arch)
        report.candidates.append(_latency(arch, out / "latency" / arch, opts, threads))
    if opts.data:
        for c in report.candidates:
            if c.fits:
                log.info("pick: distilling %s for %d steps", c.arch, opts.steps)
                _quality(c, out / "distill" / c.arch, opts)
        _mark_pareto(report.candidates)
    report.seconds = time.time() - started
    return report


def _latency(arch: str, run: Path, opts: PickOptions, threads: int) -> Candidate:
    import torch

    from compressor.export.bencher import bench
    from compressor.export.exporter import ExportOptions, export_run
    from compressor.export.options import BenchOptions
    from compressor.models.saved import save_encoder
    from compressor.models.students import build_student

    cand = Candidate(arch)
    torch.manual_seed(0)
    try:
        save_encoder(build_student(arch, opts.image_size), run)
    except CompressorError as err:
        cand.notes.append(str(err))
        return cand
    data = {"data": opts.data or "synthetic", **({"data_root": opts.data_root} if opts.data_root else {})}
    RunDir(run).write_config(data)
    for fmt in target_formats(opts.backend):
        try:
            export_run(run, ExportOptions(format=fmt, calib_size=opts.calib_size, check_size=opts.check_size,
                                          knn=False))
        except CompressorError as err:  # a format that fails its parity check is not a candidate format
            cand.notes.append(f"{fmt}: {err}")
            if opts.qad_steps is not None and fmt.endswith("int8"):
                _try_qad(cand, run, fmt, opts)
    backends = ("torch",) if opts.backend == "torch" else (opts.backend,)
    try:
        rep = bench(run, BenchOptions(backends=backends, batches=(1,), threads=threads, warmup=3,
                                      iters=opts.iters, seconds=opts.seconds))
    except CompressorError as err:
        cand.notes.append(str(err))
        return cand
    rows = [r for r in rep.results if r.backend in backends]
    if not rows:
        cand.notes.append("nothing benched")
        return cand
    best = min(rows, key=lambda r: r.p50_ms)
    qad = bool(best.file and ".qad." in Path(best.file).name)
    cand.format, cand.p50_ms, cand.size_mb = best.format + (" (QAD)" if qad else ""), best.p50_ms, best.size_mb
    cand.params_m, cand.gflops = best.params_m, best.gflops
    cand.fits = best.p50_ms <= opts.budget_ms
    return cand


def _try_qad(cand: Candidate, run: Path, fmt: str, opts: PickOptions) -> None:
    """PTQ refused ``fmt``: export its QAD variant instead (benched beside the float format), and say so."""
    from compressor.export.exporter import ExportOptions, export_run

    assert opts.qad_steps is not None
    try:
        res = export_run(run, ExportOptions(format=fmt, calib_size=opts.calib_size, check_size=opts.check_size,
                                            knn=False, qad_steps=opts.qad_steps))
    except CompressorError as err:
        cand.notes.append(f"{fmt}: QAD ({opts.qad_steps} steps) refused too: {err}")
        return
    cand.notes.append(f"{fmt}: PTQ refused, so a QAD variant was considered ({opts.qad_steps} steps, parity "
                      f"{res.entry['fidelity']['mean_cosine']:.4f})")
    log.info("pick: %s %s", cand.arch, cand.notes[-1])


def _quality(cand: Candidate, run: Path, opts: PickOptions) -> None:
    from compressor.data.datasets import build_dataset
    from compressor.engine.config import TrainConfig
    from compressor.engine.trainer import train
    from compressor.eval.embed import evaluate_encoder
    from compressor.models.saved import load_encoder

    recipe = opts.recipe or default_recipe(opts.teacher)
    cfg = TrainConfig(student=cand.arch, teacher=opts.teacher, teacher_weights=opts.teacher_weights,
                      recipe=recipe, data=opts.data or "", data_root=opts.data_root, max_steps=opts.steps,
                      batch_size=opts.batch_size, image_size=opts.image_size, out=str(run))
    try:
        train(cfg, progress=False)
        enc = load_encoder(run)
        res = evaluate_encoder(enc, build_dataset(cfg.data, "train", opts.data_root),
                               build_dataset(cfg.data, "val", opts.data_root), linear=False,
                               limit_train=opts.max_train, limit_val=opts.max_val)
    except CompressorError as err:
        cand.notes.append(f"distillation: {err}")
        return
    cand.knn_top1 = res.knn_top1
    cand.knn_per_ms = res.knn_top1 / cand.p50_ms if cand.p50_ms else None


def default_recipe(teacher: str | None) -> str:
    """The recipe of the short distillations when none is named: with a teacher, ``compress distill``'s default
    (the one declaration, ``TrainConfig.recipe``: the best teacher→student recipe at short budgets in
    docs/benchmarks.md's quality table); without one there is nothing to distil from, so SimCLR."""
    if not teacher:
        return "simclr"
    from compressor.engine.config import TrainConfig

    recipe = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "recipe")
    assert isinstance(recipe, str)  # a plain default, not a factory
    return recipe


def _mark_pareto(cands: list[Candidate]) -> None:
    """Pareto front over (latency ↓, kNN ↑): a candidate no other one beats on both."""
    scored = [(c, c.p50_ms, c.knn_top1) for c in cands if c.knn_top1 is not None and c.p50_ms is not None]
    for c, ms, knn in scored:
        c.pareto = not any(oms <= ms and oknn >= knn and (oms < ms or oknn > knn)
                           for o, oms, oknn in scored if o is not c)
