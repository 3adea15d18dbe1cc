"""The stages of ``compress run``, in order: distill → prune → eval → export → bench → report.

``prune`` runs only with ``pipeline: {prune_ratio: R}``: it writes the pruned student as a run of its own in
``RUN/pruned/``, which eval (``eval.json``'s ``pruned`` block), export and bench (``RUN/pruned/bench.json``)
then treat beside the student. ``pipeline: {qad_steps: N}`` makes export write every INT8 format by
quantization-aware distillation instead of post-training quantization.

Each stage has a key (:mod:`compressor.pipeline.state`): its configuration and the digests of the files
it reads. It writes its outputs atomically at its end, so an interrupted stage simply runs again;
distill, the long one, resumes from its last checkpoint instead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from compressor.engine.config import TrainConfig
from compressor.errors import CompressorError
from compressor.pipeline.config import PipelineConfig
from compressor.pipeline.state import PipelineState, file_digest, stage_key
from compressor.rundir import RunDir
from compressor.utils.io import atomic_write_text

log = logging.getLogger("compressor")

PRUNED = "pruned"  # RUN/pruned/: the prune stage's run


@dataclass
class Context:
    train: TrainConfig
    pipe: PipelineConfig
    run_dir: Path
    state: PipelineState
    progress: bool = True
    force: bool = False  # this stage was named in --force

    @property
    def run(self) -> RunDir:
        return RunDir(self.run_dir)

    @property
    def student_digest(self) -> str | None:
        return file_digest(self.run.weights_path())

    def teacher_run(self) -> Path | None:
        """The teacher's run directory when the (first) teacher is a run of ours, else ``None``."""
        names = self.train.teachers()
        if names and RunDir(Path(names[0]).expanduser()).is_finished():
            return Path(names[0]).expanduser()
        return None

    def teacher_id(self) -> dict:
        t = self.teacher_run()
        return {"teacher": self.train.teacher, "weights": self.train.teacher_weights,
                "size": self.train.teacher_image_size,
                "digest": file_digest(RunDir(t).weights_path()) if t else None}

    @property
    def pruned_dir(self) -> Path | None:
        """``RUN/pruned`` when the pipeline prunes and the prune stage has written it, else ``None``."""
        path = self.run_dir / PRUNED
        return path if self.pipe.prune_ratio is not None and RunDir(path).is_finished() else None

    def needs_student(self, stage: str) -> None:
        if not self.run.is_finished():
            raise CompressorError(f"{stage} needs a trained student in {self.run_dir}; run the distill stage "
                                  "first (drop --only)")


# -- distill --------------------------------------------------------------------------------------------
def distill_key(ctx: Context) -> str:
    d = ctx.train.to_dict()
    for k in ("out", "resume", "auto_resume", "logger"):  # where it logs does not change what it trains
        d.pop(k, None)
    return stage_key(config=d)


def run_distill(ctx: Context, key: str) -> None:
    from compressor.engine.checkpoint import list_checkpoints
    from compressor.engine.trainer import train

    run_dir = ctx.run_dir
    has_run = bool(list_checkpoints(run_dir)) or ctx.run.is_finished()
    resume = False
    if has_run:
        if ctx.force or ctx.state.started_with("distill") != key:
            if not ctx.force:
                raise CompressorError(f"{run_dir} holds a run of another configuration (or not made by "
                                      "`compress run`); pass --force distill to train again (the old run is "
                                      "moved aside, not deleted) or set another `out:`")
            aside = run_dir.with_name(f"{run_dir.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
            run_dir.rename(aside)
            log.warning("moved the previous run to %s", aside)
            ctx.state = PipelineState(run_dir)
        else:
            resume = bool(list_checkpoints(run_dir))
            log.info("resuming the interrupted distillation in %s", run_dir)
    ctx.state.start("distill", key)
    cfg = TrainConfig(**{**ctx.train.to_dict(), "out": str(run_dir), "resume": resume})
    train(cfg, progress=ctx.progress)


# -- prune ----------------------------------------------------------------------------------------------
def prune_key(ctx: Context) -> str:
    return stage_key(pipe=ctx.pipe.section("prune_ratio", "prune_steps"), student=ctx.student_digest)


def run_prune(ctx: Context, key: str) -> None:
    """``compress prune RUN --ratio R --steps N --out RUN/pruned`` (nothing without ``prune_ratio``)."""
    import shutil

    from compressor.prune import prune_run

    out = ctx.run_dir / PRUNED
    assert ctx.pipe.prune_ratio is not None  # the stage is enabled only then
    ctx.needs_student("prune")
    if out.exists() and (ctx.force or ctx.state.started_with("prune") != key):
        shutil.rmtree(out)  # the pruned run of an earlier student or ratio: derived, so rebuilt, not kept
    ctx.state.start("prune", key)
    prune_run(ctx.run_dir, out, ratio=ctx.pipe.prune_ratio, steps=ctx.pipe.prune_steps)


# -- eval -----------------------------------------------------------------------------------------------
def eval_key(ctx: Context) -> str:
    from compressor.eval.linear import probe_settings

    pruned = ctx.pruned_dir
    return stage_key(pipe=ctx.pipe.section("eval_max_train", "eval_max_val", "linear", "teacher"),
                     probe=probe_settings() if ctx.pipe.linear else None,  # a new probe protocol re-scores
                     student=ctx.student_digest, data=[ctx.train.data, ctx.train.data_root],
                     teacher=ctx.teacher_id(), pruned=file_digest(RunDir(pruned).weights_path()) if pruned else None)


def run_eval(ctx: Context, key: str) -> None:
    from compressor.data.datasets import build_dataset
    from compressor.engine.setup import build_teachers, resolve_device
    from compressor.eval.embed import evaluate_encoder
    from compressor.models.saved import load_encoder

    ctx.needs_student("eval")
    tc, pc = ctx.train, ctx.pipe
    device = resolve_device(tc.device)
    bank, queries = build_dataset(tc.data, "train", tc.data_root), build_dataset(tc.data, "val", tc.data_root)

    def knn(encoder) -> dict:
        return evaluate_encoder(encoder.to(device), bank, queries, linear=pc.linear, limit_train=pc.eval_max_train,
                                limit_val=pc.eval_max_val, device=str(device), progress=ctx.progress).to_dict()

    out = knn(load_encoder(ctx.run_dir))
    if pc.teacher and tc.teachers():
        out["teacher"] = {"name": tc.teachers()[0], **knn(build_teachers(tc)[0])}
    if (pruned := ctx.pruned_dir) is not None:
        out["pruned"] = {"run": str(pruned), "ratio": ctx.pipe.prune_ratio, **knn(load_encoder(pruned))}
        RunDir(pruned).eval_path.write_text(json.dumps({k: v for k, v in out["pruned"].items()
                                                        if k not in ("run", "ratio")}, indent=2) + "\n")
    path = ctx.run.eval_path
    if path.is_file():  # a quality table added by the demo stays
        quality = json.loads(path.read_text()).get("quality")
        if quality:
            out["quality"] = quality
    atomic_write_text(path, json.dumps(out, indent=2) + "\n")
    log.info("kNN top-1: student %.2f%%%s", 100 * out["knn_top1"],
             f", teacher {100 * out['teacher']['knn_top1']:.2f}%" if "teacher" in out else "")


# -- export ---------------------------------------------------------------------------------------------
def export_key(ctx: Context) -> str:
    pruned = ctx.pruned_dir
    return stage_key(pipe=ctx.pipe.section("export", "calib_size", "check_size", "teacher", "qad_steps"),
                     student=ctx.student_digest, data=[ctx.train.data, ctx.train.data_root],
                     teacher=ctx.teacher_id(), pruned=file_digest(RunDir(pruned).weights_path()) if pruned else None)


def run_export(ctx: Context, key: str) -> None:
    """Each format of the student (and of the pruned student), and of the teacher when it is a run of ours (for
    its INT8 rows). With ``qad_steps`` the INT8 formats are trained by QAD rather than calibrated."""
    from compressor.export.exporter import ExportOptions, export_run, file_name
    from compressor.export.qad import SCHEMES

    ctx.needs_student("export")
    runs = [ctx.run_dir, *([ctx.pruned_dir] if ctx.pruned_dir else [])]
    teacher = ctx.teacher_run()
    if ctx.pipe.teacher and teacher is not None:
        runs.append(teacher)
    done = dict((ctx.state.records.get("export") or {}).get("formats") or {})
    for run in runs:
        for fmt in ctx.pipe.export:
            fkey = stage_key(stage=key, run=str(run), format=fmt)
            qad = ctx.pipe.qad_steps if fmt in SCHEMES and run != teacher else None
            exists = (RunDir(run).export_dir / file_name(fmt, baked=False, qad=qad is not None)).is_file()
            if done.get(f"{run}:{fmt}") == fkey and exists and not ctx.force:  # done before an interruption
                continue
            opts = ExportOptions(format=fmt, calib_size=ctx.pipe.calib_size, check_size=ctx.pipe.check_size,
                                 data=ctx.train.data, data_root=ctx.train.data_root, qad_steps=qad)
            res = export_run(run, opts)
            log.info("exported %s", res.path)
            done[f"{run}:{fmt}"] = fkey
            ctx.state.records["export"] = {**ctx.state.records.get("export", {}), "formats": done}
            ctx.state.save()


# -- bench ----------------------------------------------------------------------------------------------
def _bench_options(ctx: Context):
    from compressor.export.options import BenchOptions

    p = ctx.pipe
    return BenchOptions(backends=tuple(p.bench_backends), batches=tuple(p.bench_batches), threads=p.threads,
                        warmup=p.bench_warmup, iters=p.bench_iters, seconds=p.bench_seconds,
                        data=ctx.train.data, data_root=ctx.train.data_root, progress=ctx.progress)


def bench_key(ctx: Context) -> str:
    from compressor.export.bencher import manifest_digest  # the manifests less the figures bench records in them

    teacher = ctx.teacher_run()
    pruned = ctx.pruned_dir
    return stage_key(pipe=ctx.pipe.section("bench_backends", "bench_batches", "bench_seconds", "bench_iters",
                                           "bench_warmup", "threads", "teacher"),
                     student=ctx.student_digest, manifest=manifest_digest(ctx.run.export_dir),
                     pruned_manifest=manifest_digest(RunDir(pruned).export_dir) if pruned else None,
                     teacher=ctx.teacher_id(),
                     teacher_manifest=manifest_digest(RunDir(teacher).export_dir) if teacher else None)


def run_bench(ctx: Context, key: str) -> None:
    from compressor.export.bencher import bench

    ctx.needs_student("bench")
    opts = _bench_options(ctx)
    bench(ctx.run_dir, opts).to_json(ctx.run.bench_path)
    if (pruned := ctx.pruned_dir) is not None:
        bench(pruned, opts).to_json(RunDir(pruned).bench_path)
    teacher_path = ctx.run.teacher_bench_path
    if not (ctx.pipe.teacher and ctx.train.teachers()):
        teacher_path.unlink(missing_ok=True)
        return
    teacher = ctx.teacher_run()
    if teacher is not None:
        bench(teacher, opts).to_json(teacher_path)
    else:
        from compressor.pipeline.teacher_bench import bench_teacher

        bench_teacher(ctx.train, opts).to_json(teacher_path)


# -- report ---------------------------------------------------------------------------------------------
def report_key(ctx: Context) -> str:
    run = ctx.run
    paths = [run.config_path, run.metrics_path, run.meta_path(), run.eval_path, run.bench_path,
             run.teacher_bench_path, run.manifest_path]
    return stage_key(inputs={p.relative_to(run.path).as_posix(): file_digest(p) for p in paths})


def run_report(ctx: Context, key: str) -> None:
    from compressor.report import write_report

    ctx.needs_student("report")
    _, html = write_report(ctx.run_dir)
    log.info("report: %s", html)


@dataclass(frozen=True)
class Stage:
    name: str
    key: Callable[[Context], str]
    run: Callable[[Context, str], None]
    outputs: Callable[[RunDir], tuple[Path, ...]]  # files that must exist for the stage to count as current
    enabled: Callable[[Context], bool] = lambda ctx: True  # a stage the config does not ask for is not listed


STAGES: dict[str, Stage] = {s.name: s for s in (
    Stage("distill", distill_key, run_distill, lambda r: (r.meta_path(), r.weights_path())),
    Stage("prune", prune_key, run_prune, lambda r: (RunDir(r.path / PRUNED).meta_path(),),
          enabled=lambda ctx: ctx.pipe.prune_ratio is not None),
    Stage("eval", eval_key, run_eval, lambda r: (r.eval_path,)),
    Stage("export", export_key, run_export, lambda r: ()),  # each format checks its own file
    Stage("bench", bench_key, run_bench, lambda r: (r.bench_path,)),
    Stage("report", report_key, run_report, lambda r: r.report_paths),
)}

