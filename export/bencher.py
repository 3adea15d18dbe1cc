"""``bench``: latency, throughput and fidelity of a run's student and its exports, per backend and batch.

On a run directory it benches the PyTorch student and every ``.onnx``/``.engine`` in ``RUN/export/``;
on a file, that file (with the student of its run, when it lives in ``RUN/export/``, as the reference).
Inputs are real images from the run's data when it can be read (random pixels otherwise, noted), and
every row's ``cosine_vs_torch`` compares its embeddings with the PyTorch fp32 student's on CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compressor.errors import CompressorError
from compressor.export import images as img
from compressor.export.backend import backend_for_file, bench_runtimes, runtime_suffixes
from compressor.export.env import environment, usable_cores
from compressor.export.options import BENCH_MODES, BenchOptions
from compressor.export.report import BenchReport, BenchRow
from compressor.export.runners import backend_unavailable
from compressor.manifest import ExportEntry, preprocess_baked
from compressor.registry import unknown_name_message
from compressor.rundir import RunDir

log = logging.getLogger("compressor")



@dataclass
class _Target:
    run_dir: Path | None
    files: list[Path] = field(default_factory=list)
    torch: bool = False
    lock: Any = None  # the reader's lock on RUN/export while benching (a FolderLock), if any


def _resolve(target: Path) -> _Target:
    if not target.exists():
        raise CompressorError(f"{target} does not exist; pass a run directory or an exported "
                              ".onnx/.engine file")
    if target.is_dir():
        if not RunDir(target).is_finished():
            raise CompressorError(f"{target} is not a run directory (no {RunDir(target).meta_path().name}); pass "
                                  "the --out of a finished `compress distill` or an exported file")
        export_dir = RunDir(target).export_dir
        # model.onnx before model.fp16.onnx and model.int8.onnx: fp32 first, as tables usually read
        suffixes = runtime_suffixes()
        files = sorted((p for p in export_dir.glob("*") if p.suffix in suffixes and p.is_file()),
                       key=lambda p: (p.name.count("."), p.name))
        return _Target(target, files, torch=True)
    if target.suffix not in runtime_suffixes():
        raise CompressorError(f"cannot bench {target.name}: expected a run directory, a .onnx, an OpenVINO "
                              ".xml or an .engine file")
    run = target.parent.parent
    in_run = target.parent == RunDir(run).export_dir and RunDir(run).is_finished()
    return _Target(run if in_run else None, [target])


def _check_files(tgt: _Target, notes: list[str]) -> None:
    """Every file is a readable model, and an export older than the run's student is marked stale."""
    from compressor.manifest import verify_export
    from compressor.utils.io import check_regular_file

    student = RunDir(tgt.run_dir).weights_path() if tgt.run_dir is not None else None
    for f in tgt.files:
        check_regular_file(f, "model file")
        verify_export(f)  # a file replaced or damaged since `compress export` wrote it: named, not measured
        if f.suffix == ".onnx":
            import onnx

            try:
                onnx.load(str(f), load_external_data=False)
            except Exception as err:  # protobuf's DecodeError and friends: not an ONNX file
                raise CompressorError(f"{f} is not a readable ONNX model ({type(err).__name__}); re-export it "
                                      "with `compress export RUN --format onnx`") from None
        if student is not None and student.is_file() and f.stat().st_mtime < student.stat().st_mtime:
            notes.append(f"stale: {f.name} is older than {student}; its figures describe an earlier student, "
                         "re-export it with `compress export`")


def bench(target: str | Path, options: BenchOptions | None = None) -> BenchReport:
    """Benchmark ``target`` (a run directory or an exported file); see :class:`BenchOptions`."""
    opts = options or BenchOptions()
    for b in opts.backends:
        if b not in (known := bench_runtimes()):
            raise CompressorError(unknown_name_message("backend", b, known))
    if not opts.batches or min(opts.batches) < 1:
        raise CompressorError("--batch takes positive batch sizes, e.g. --batch 1,8,32")
    import math

    for flag, value, low in (("--iters", opts.iters, 1), ("--warmup", opts.warmup, 0), ("--threads", opts.threads, 1),
                             ("--seconds", opts.seconds, 1e-3), ("--cv-warn", opts.cv_warn, 0),
                             ("--warmup-s", opts.warmup_s, 0), ("--streams", opts.streams, 1)):
        if value is not None and not (math.isfinite(value) and value >= low):
            raise CompressorError(f"{flag} must be at least {low}, got {value}")
    if opts.mode not in BENCH_MODES:
        raise CompressorError(unknown_name_message("--mode", opts.mode, list(BENCH_MODES)))
    if opts.streams is not None and opts.mode != "throughput":
        raise CompressorError("--streams sets the requests in flight of --mode throughput; add --mode throughput")
    tgt = _resolve(Path(target))
    if tgt.run_dir is None:
        return _bench(target, tgt, opts, None)
    from compressor.runlock import FolderLock, reading

    # A shared lock: no `compress export` rewrites RUN/export while its files are measured.
    with reading(RunDir(tgt.run_dir).export_dir, "bench") as lock:
        return _bench(target, _resolve(Path(target)), opts, lock if isinstance(lock, FolderLock) else None)


def _bench(target: str | Path, tgt: _Target, opts: BenchOptions, lock: Any) -> BenchReport:
    import torch

    tgt.lock = lock
    file_notes: list[str] = []
    _check_files(tgt, file_notes)
    threads = opts.threads or usable_cores()
    report = BenchReport(env=environment(threads))
    report.notes.extend(file_notes)
    skipped = {b: r for b in opts.backends if (r := backend_unavailable(b, torch_device=opts.torch_device))}
    if skipped and set(skipped) == set(opts.backends):  # nothing asked for can run: an error, not an empty table
        raise CompressorError("; ".join(f"{b} cannot run here: {r}" for b, r in skipped.items()))
    for b, reason in skipped.items():
        report.notes.append(f"{b}: skipped: {reason}")

    encoder = None
    if tgt.run_dir is not None:
        from compressor.models.saved import load_encoder

        encoder = load_encoder(tgt.run_dir)
    spec = encoder.spec if encoder is not None else _spec_from_file(tgt.files[0])
    inputs = _inputs(tgt.run_dir, spec, max(opts.batches), opts, report.notes)
    reference = None
    if encoder is not None:
        from compressor.export.parity import torch_embeddings

        reference = torch_embeddings(encoder, inputs)
    model_facts = _model_facts(encoder)

    jobs: list[tuple[str, Path | None]] = []
    if tgt.torch and "torch" in opts.backends and "torch" not in skipped:
        jobs.append(("torch", None))
    for f in tgt.files:
        jobs += [(b, f) for b in runtime_suffixes()[f.suffix] if b in opts.backends and b not in skipped]
    if not jobs:
        raise CompressorError(f"nothing to bench in {target} with backends {','.join(opts.backends)} "
                              "(export a model first: `compress export RUN --format onnx`)")

    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _run_jobs(jobs, tgt, encoder, inputs, reference, model_facts, threads, opts, report)
    finally:
        torch.set_num_threads(old_threads)
    for row in report.results:
        if row.cosine_vs_torch is not None and not row.cosine_vs_torch >= -1:  # NaN: non-finite outputs
            report.notes.append(f"broken: {row.backend} {row.format} batch {row.batch} gives non-finite embeddings "
                                "(cosine NaN); re-export it, and check the run's student")
        if row.mode == "latency" and row.cv > opts.cv_warn:  # under load, a request's latency varies by design
            report.notes.append(f"unstable: {row.backend} {row.format} batch {row.batch} has CV {row.cv:.2f} "
                                f"(> {opts.cv_warn}): the machine was likely busy; re-run or raise --iters")
    return report


def _run_jobs(jobs, tgt: _Target, encoder, inputs, reference, model_facts, threads, opts, report) -> None:
    from compressor.utils.progress import make_progress

    total = len(jobs) * len(opts.batches)
    with make_progress("what") as progress:
        task = progress.add_task("bench", total=total, what="", visible=opts.progress)
        for backend, path in jobs:
            runner, fmt, precision, size_mb, params, baked = _runner(backend, path, tgt, encoder, threads,
                                                                     opts)
            if opts.mode == "throughput" and not callable(getattr(runner, "throughput", None)):
                report.notes.append(f"{backend}: skipped: --mode throughput runs ort-cpu, ort-cuda and openvino; "
                                    f"time {backend} with --mode latency (TensorRT with several streams: trtexec "
                                    "--infStreams=N, see docs/bench.md)")
                progress.advance(task, len(opts.batches))
                continue
            rows = []
            for b in opts.batches:
                progress.update(task, what=f"{backend} {fmt} batch {b}")
                x = img.to_uint8_nhwc(inputs[:b], _spec(encoder, path)) if baked else inputs[:b]
                measured, out = (_latency if opts.mode == "latency" else _throughput)(runner, x, threads, opts)
                cos = None
                if reference is not None:
                    from compressor.export.parity import cosine_rows

                    cos = float(cosine_rows(reference[:b], out).mean())
                rows.append(BenchRow(
                    backend=backend, format=fmt, precision=precision, batch=b, size_mb=size_mb, params_m=params,
                    gflops=model_facts.get("gflops"), cosine_vs_torch=cos, file=str(path) if path else None,
                    mode=opts.mode, **measured))
                progress.advance(task)
            report.results += rows
            if path is not None:
                _record(path, rows, report)


def manifest_digest(export_dir: str | Path) -> str | None:
    """SHA-256 of ``export_dir``'s manifest less the ``bench`` figures that :func:`bench` records in it: what a
    bench of those files depends on (``compress run`` keys its bench stage on it, so that recording figures does
    not make the stage stale). ``None`` when there is no manifest."""
    import hashlib
    import json

    from compressor.manifest import read_manifest
    from compressor.rundir import MANIFEST

    if not (Path(export_dir) / MANIFEST).is_file():
        return None
    data = read_manifest(export_dir)
    exports = {name: {k: v for k, v in entry.items() if k != "bench"} for name, entry in data["exports"].items()}
    return hashlib.sha256(json.dumps({**data, "exports": exports}, sort_keys=True).encode()).hexdigest()


def _latency(runner, x: np.ndarray, threads: int, opts: BenchOptions) -> tuple[dict, np.ndarray]:
    """One request at a time: the runner's compute step, then (a GPU runner) its end-to-end step, each timed
    with the same warm-up and budget. Returns the row's figures and the embeddings for the cosine check."""
    from compressor.export.runners import as_numpy
    from compressor.export.timing import Timing, measure

    def timed(step: Callable[[], object]) -> Timing:  # the same warm-up and budget for both figures
        return measure(step, warmup=opts.warmup, warmup_s=opts.warmup_s, iters=opts.iters, seconds=opts.seconds)

    compute = runner.prepare(x)
    t = timed(compute)
    out = as_numpy(compute())  # now: a later end_to_end() may refill the runner's buffers (TrtRunner)
    b = len(x)
    settings: dict[str, Any] = {"warmup_s": round(t.warmup_s, 4), "warmup_calls": t.warmup_calls}
    row: dict[str, Any] = {"p50_ms": t.p50, "p90_ms": t.p90, "p99_ms": t.p99, "mean_ms": t.mean, "std_ms": t.std,
                           "throughput_ips": b * 1e3 / t.mean, "cv": t.cv, "iters": t.iters, "timing": "host",
                           "settings": settings}
    make_e2e = getattr(runner, "end_to_end", None)  # absent or None: the runner computes in host memory
    e2e_step = make_e2e(x) if callable(make_e2e) else None
    if e2e_step is not None:
        e = timed(e2e_step)
        row.update(timing="device", e2e_p50_ms=e.p50, e2e_p99_ms=e.p99, e2e_mean_ms=e.mean,
                   e2e_throughput_ips=b * 1e3 / e.mean)
        settings.update(e2e_warmup_s=round(e.warmup_s, 4), e2e_iters=e.iters)
    return row, out


def _throughput(runner, x: np.ndarray, threads: int, opts: BenchOptions) -> tuple[dict, np.ndarray]:
    """Several requests in flight (the runner's ``throughput``): images/s over the window, and each request's
    latency under that load as the row's percentiles."""
    from compressor.export.runners import as_numpy

    tp = runner.throughput(x, streams=opts.streams, threads=threads, warmup=opts.warmup, warmup_s=opts.warmup_s,
                           iters=opts.iters, seconds=opts.seconds)
    t = tp.latency
    make_e2e = getattr(runner, "end_to_end", None)
    host = not callable(make_e2e) or make_e2e(x) is None
    row = {"p50_ms": t.p50, "p90_ms": t.p90, "p99_ms": t.p99, "mean_ms": t.mean, "std_ms": t.std,
           "throughput_ips": tp.images_per_s, "cv": t.cv, "iters": tp.requests, "timing": "host" if host else "e2e",
           "settings": {**tp.settings, "warmup_s": round(t.warmup_s, 4), "warmup_calls": t.warmup_calls,
                        "elapsed_s": tp.elapsed_s, "requests": tp.requests}}
    return row, as_numpy(runner.prepare(x)())


def _record(path: Path, rows: list[BenchRow], report: BenchReport) -> None:
    """The rows' figures into the manifest entry of their file, under ``bench`` (one record per backend, mode
    and batch; a later bench replaces it, a re-export drops them all). A file without an entry is left alone."""
    import time

    from compressor.export.report import TIMINGS
    from compressor.manifest import manifest_entry, record_export

    entry = manifest_entry(path)
    if not entry:
        return
    figures = dict(entry.get("bench") or {})
    env = report.env
    for r in rows:
        compute_label, e2e_label = TIMINGS[r.timing]
        figures[f"{r.backend} {r.mode} batch {r.batch}"] = {
            "backend": r.backend, "mode": r.mode, "batch": r.batch, "precision": r.precision,
            "compute": {"label": compute_label, "p50_ms": r.p50_ms, "p90_ms": r.p90_ms, "p99_ms": r.p99_ms,
                        "mean_ms": r.mean_ms, "std_ms": r.std_ms, "throughput_ips": r.throughput_ips},
            "end_to_end": {"label": e2e_label, "p50_ms": r.e2e_p50_ms, "p99_ms": r.e2e_p99_ms,
                           "mean_ms": r.e2e_mean_ms, "throughput_ips": r.e2e_throughput_ips},
            "cosine_vs_torch": r.cosine_vs_torch, "cv": r.cv, "iters": r.iters,
            "settings": {**r.settings, "threads": env.get("threads")},
            "hardware": {"cpu": env.get("cpu"), "gpu": (env.get("gpu") or {}).get("name")},
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        record_export(path.parent, path.name, {**entry, "bench": figures})
    except OSError as err:  # a read-only export folder: the figures are still in the table and --json
        report.notes.append(f"{path.name}: figures not recorded in its manifest ({err.strerror or err})")


def _spec(encoder, path: Path | None):
    if encoder is not None:
        return encoder.spec
    assert path is not None  # an exported file is benched when there is no PyTorch model
    return _spec_from_file(path)


def _runner(backend: str, path: Path | None, tgt: _Target, encoder, threads: int, opts: BenchOptions):
    """(runner, format, precision, size MB, params in millions, baked-preprocess input) of one job."""
    from compressor.manifest import manifest_entry

    if backend == "torch":
        from compressor.export.runners import TorchRunner

        assert tgt.run_dir is not None  # a torch job exists only for a run directory
        weights = RunDir(tgt.run_dir).weights_path()
        params = sum(p.numel() for p in encoder.parameters()) / 1e6
        runner = TorchRunner(encoder, device=opts.torch_device, compile=opts.compile)
        return runner, runner.format, "fp32", weights.stat().st_size / 1e6, params, False
    assert path is not None  # bench() gives every backend but torch a file
    entry: ExportEntry = manifest_entry(path) or {}
    baked = preprocess_baked(entry)
    size_mb = path.stat().st_size / 1e6
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        size_mb += path.with_suffix(".bin").stat().st_size / 1e6
    params = (sum(p.numel() for p in encoder.parameters()) / 1e6) if encoder is not None else None
    if not entry:  # a file without a manifest beside it: its own metadata, if compressor wrote it
        entry = _metadata_entry(path)
        if entry:
            baked = preprocess_baked(entry)
        elif path.suffix == ".onnx":
            from compressor.export.onnx import graph_input

            baked = graph_input(path)[1] == "uint8"
    if params is None and path.suffix == ".onnx":
        from compressor.export.onnx import onnx_params

        params = onnx_params(path) / 1e6
    reexport = None
    run_dir = tgt.run_dir  # a local, so that reexport() sees it narrowed to Path
    if run_dir is not None:
        from compressor.export.exporter import ExportOptions, export_run

        def reexport(options: ExportOptions) -> ExportEntry:
            """Rebuild the file from its run (an engine built for another GPU or TensorRT version)."""
            if tgt.lock is not None:  # the export takes the writer's lock: give back this reader's
                tgt.lock.release()
            try:
                return export_run(run_dir, options).entry
            finally:
                if tgt.lock is not None:
                    tgt.lock.acquire()

    file_backend = backend_for_file(path)
    assert file_backend is not None  # _resolve keeps only the files of registered backends
    runner, fmt, precision = file_backend.runner(backend, path, entry, threads=threads, reexport=reexport)
    return runner, fmt, precision, size_mb, params, baked


def _metadata_entry(path: Path) -> ExportEntry:
    """A manifest-like entry from the file's own ``metadata_props`` / IR ``rt_info`` (empty for a foreign file)."""
    from compressor.export.metadata import input_from_metadata, read_onnx_metadata

    if path.suffix == ".xml":
        from compressor.export.openvino import read_metadata

        props = read_metadata(path)
    elif path.suffix == ".onnx":
        props = read_onnx_metadata(path)
    else:
        return {}
    inp = input_from_metadata(props)
    if inp is None:
        return {}
    entry: ExportEntry = {"input": inp}
    if fmt := props.get("model.format"):
        entry["format"] = fmt
    if precision := props.get("model.precision"):
        entry["precision"] = precision
    return entry


def _spec_from_file(path: Path):
    """The input spec of a file without its run: from the manifest beside it, else the file's own
    ``metadata_props``, else (a foreign file) the graph's shape with ImageNet mean/std."""
    from compressor.manifest import manifest_entry
    from compressor.models.encoder import InputSpec

    entry = manifest_entry(path) or _metadata_entry(path)
    if "input" in entry:
        shape, inp = entry["input"]["shape"], entry["input"]
        size = shape[1] if inp["layout"] == "NHWC" else shape[2]
        mean, std = inp["mean"], inp["std"]
        return InputSpec(int(size), (mean[0], mean[1], mean[2]), (std[0], std[1], std[2]))
    if path.suffix != ".onnx":
        raise CompressorError(f"{path} has no manifest entry beside it and no compressor metadata; bench it "
                              "from its run directory")
    from compressor.export.onnx import graph_input

    _, dtype, shape = graph_input(path)
    size = shape[1] if dtype == "uint8" else shape[2]
    if not isinstance(size, int) or size <= 0:
        raise CompressorError(f"{path} has a dynamic image size; export it with a fixed size")
    return InputSpec(size)


def _inputs(run_dir: Path | None, spec, n: int, opts: BenchOptions, notes: list[str]) -> np.ndarray:
    """``n`` normalised images from the run's data (repeated when it has fewer), else random pixels."""
    data, root = opts.data, opts.data_root
    if data is None and run_dir is not None:
        data, run_root = img.run_data(run_dir)
        root = root or run_root
    batch = None
    if data is not None:
        try:
            batch = img.load_images(data, spec, n, split="val", root=root)
        except CompressorError as err:
            notes.append(f"inputs: random pixels ({err})")
    else:
        notes.append("inputs: random pixels (no run data to read; pass --data SPEC for real images)")
    if batch is None:
        batch = img.random_images(spec, n)
    reps = -(-n // len(batch))
    return np.ascontiguousarray(np.concatenate([batch.images] * reps)[:n])


def _model_facts(encoder) -> dict:
    """GFLOPs per image (multiply-add = 2 FLOPs), counted by PyTorch's FLOP counter at batch 1."""
    if encoder is None:
        return {}
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, encoder.spec.image_size, encoder.spec.image_size)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        encoder(x)
    return {"gflops": counter.get_total_flops() / 1e9}
