"""Compression past distillation: PTQ vs QAD INT8, and structured pruning with recovery, on this CPU.

    .venv/bin/python benchmarks/compression.py --threads 2 --repeats 3 --json compression.json

**QAD** (``--qad-students``, default efficientnet_b0 and mobilenetv3_large_100 at 224 px): each student is
the stand-in of deploy_latency.py (``cpu_latency.build_run``: a timm network trained briefly with labels on
Fashion-MNIST). It is exported through the library as ``onnx`` and ``openvino`` (float), ``onnx-int8`` and
``openvino-int8`` by post-training quantization (PTQ, the same calibration sample) and by
quantization-aware distillation (``--qad-steps``), then every kept file is benched in the same process,
round after round, at batch 1 on ``--threads`` threads. Per file: the median p50, the parity cosine and
the kNN top-1 of fp32 vs INT8 embeddings (both from the export's own check on ``--check-size`` held-out
images, bank = the ``--calib-size`` calibration images), and the speed-up over the fastest float format
*of the same runtime*. Targets (issue 36): QAD INT8 mean cosine ≥ 0.99, kNN within 0.5 points of fp32,
≥ 1.3× faster than the runtime's fastest float format.

**Pruning** (``--prune-students``, default resnet18 and mobilenetv3_large_100, ``--ratios`` 0.3,0.5): the
same stand-ins pruned by ``compress prune`` (torch-pruning), recovered for ``--prune-steps`` steps toward
the unpruned student; per ratio: parameters, ORT fp32 p50 (median of the rounds, same process as the
unpruned student), and kNN top-1 of the embeddings on Fashion-MNIST (``--knn-bank`` training images as the
bank, ``--knn-queries`` test images) before and after recovery. Targets: a pruned resnet18 ≥ 1.6× faster
in fp32 ORT than the unpruned one, within 1.5 kNN points of it after recovery.

The machine's load average is printed with every round; run it alone (two cores shared give figures
worth nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from common import build_run

from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.rundir import RunDir

FLOAT = {"ort-cpu": "onnx", "openvino": "openvino"}  # the float format of each runtime
QAD_FORMATS = ("onnx-int8", "openvino-int8")


def _export(run: Path, fmt: str, args: argparse.Namespace, **extra: object) -> dict:
    """Export one format; a refused export is a result (its figures kept), not a crash."""
    label = fmt + (" qad" if extra.get("qad_steps") else "")
    started = time.time()
    try:
        res = export_run(run, ExportOptions(format=fmt, calib_size=args.calib_size, check_size=args.check_size,
                                            **extra))  # type: ignore[arg-type]
    except Exception as err:
        print(f"  {label}: refused: {err}", flush=True)
        return {"label": label, "refused": str(err), "seconds": round(time.time() - started, 1)}
    fid = res.entry["fidelity"]
    row = {"label": label, "file": res.path.name, "cosine": fid["mean_cosine"], "min_cosine": fid["min_cosine"],
           "knn_fp32": fid.get("knn_top1_fp32"), "knn_int8": fid.get("knn_top1_int8"),
           "knn_noise": fid.get("knn_delta_noise"), "seconds": round(time.time() - started, 1)}
    if "qad" in res.entry:
        q = res.entry["qad"]
        row["qad"] = {k: q[k] for k in ("steps", "lr", "batch_size", "loss_first", "loss_last", "fake_quantizers",
                                        "batchnorm_folded")}
    print(f"  {label}: {res.path.name} cosine {row['cosine']:.5f} (min {row['min_cosine']:.4f})"
          + (f", kNN fp32 {row['knn_fp32']:.4f} int8 {row['knn_int8']:.4f}" if row["knn_fp32"] is not None else "")
          + f" [{row['seconds']} s]", flush=True)
    return row


def _bench_rounds(run: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    """``{file: [p50 of each round]}`` for every file in RUN/export, ORT and OpenVINO at batch 1."""
    times: dict[str, list[float]] = {}
    for r in range(args.repeats):
        load = os.getloadavg()[0]
        rep = bench(run, BenchOptions(backends=("ort-cpu", "openvino"), batches=(1,), threads=args.threads,
                                      warmup=10, iters=args.iters, seconds=None))
        for x in rep.results:
            if x.format == "pytorch":
                continue
            times.setdefault(Path(x.file or x.format).name, []).append(x.p50_ms)
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in times.items())
              + f" [load {load:.1f} -> {os.getloadavg()[0]:.1f}]", flush=True)
    return times


def qad_student(arch: str, args: argparse.Namespace, data: str) -> dict:
    run = args.workdir / arch
    if not RunDir(run).is_finished():
        print(f"building {run} ({arch} trained {args.train_steps} steps on {data})", flush=True)
        build_run(run, data, steps=args.train_steps, arch=arch)
    rows = [_export(run, "onnx", args), _export(run, "openvino", args)]
    for fmt in QAD_FORMATS:
        rows.append(_export(run, fmt, args))
        rows.append(_export(run, fmt, args, qad_steps=args.qad_steps, qad_lr=args.qad_lr))
    times = _bench_rounds(run, args)
    by_file = {r["file"]: r for r in rows if "file" in r}
    for name, ts in times.items():
        if name in by_file:
            by_file[name]["p50_ms"] = statistics.median(ts)
            by_file[name]["p50_rounds"] = ts
    for float_fmt in FLOAT.values():
        fastest = min((r["p50_ms"] for r in rows if r.get("p50_ms") and r["label"] == float_fmt), default=None)
        for r in rows:
            if r.get("p50_ms") and fastest and r["label"].split(" ")[0].startswith(float_fmt):
                r["speedup_vs_float"] = fastest / r["p50_ms"]
    print(f"{arch}:", flush=True)
    for r in rows:
        if "refused" in r:
            print(f"  {r['label']:<20} refused", flush=True)
            continue
        knn = (f"kNN Δ {100 * (r['knn_int8'] - r['knn_fp32']):+.2f} pt" if r.get("knn_fp32") is not None else "")
        print(f"  {r['label']:<20} {r.get('p50_ms', float('nan')):7.2f} ms  cos {r['cosine']:.4f}  {knn}  "
              f"×{r.get('speedup_vs_float', float('nan')):.2f} vs float", flush=True)
    return {"rows": rows}


def _knn(encoder, data: str, args: argparse.Namespace) -> float:
    from compressor.data.datasets import build_dataset
    from compressor.eval.embed import evaluate_encoder

    res = evaluate_encoder(encoder, build_dataset(data, "train"), build_dataset(data, "val"), linear=False,
                           limit_train=args.knn_bank, limit_val=args.knn_queries)
    return res.knn_top1


def _ort_p50(runs: dict[str, Path], args: argparse.Namespace) -> dict[str, list[float]]:
    """ORT fp32 p50 of each run's model.onnx, the runs interleaved round after round in this process."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.repeats):
        load = os.getloadavg()[0]
        for label, run in runs.items():
            rep = bench(run / "export" / "model.onnx", BenchOptions(backends=("ort-cpu",), batches=(1,),
                                                                    threads=args.threads, warmup=10,
                                                                    iters=args.iters, seconds=None))
            times[label].append(rep.results[0].p50_ms)
        print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} ms" for k, v in times.items())
              + f" [load {load:.1f} -> {os.getloadavg()[0]:.1f}]", flush=True)
    return times


def prune_student(arch: str, args: argparse.Namespace, data: str) -> dict:
    """Unpruned vs pruned at each ratio: params, ORT fp32 p50, kNN before and after the recovery."""
    from compressor.models.pruning import count_params, prune_encoder
    from compressor.models.saved import load_encoder
    from compressor.prune import prune_run

    run = args.workdir / arch
    if not RunDir(run).is_finished():
        print(f"building {run} ({arch} trained {args.train_steps} steps on {data})", flush=True)
        build_run(run, data, steps=args.train_steps, arch=arch)
    if not (run / "export" / "model.onnx").is_file():
        export_run(run, ExportOptions(format="onnx", check_size=64))
    base = load_encoder(run)
    rows: dict[str, dict] = {"unpruned": {"params": count_params(base), "knn": _knn(base, data, args)}}
    runs = {"unpruned": run}
    for ratio in [float(r) for r in args.ratios.split(",") if r.strip()]:
        label = f"pruned {ratio:g}"
        raw = load_encoder(run)
        prune_encoder(raw, ratio)  # the same pruning prune_run does, before any recovery
        knn_before = _knn(raw.eval(), data, args)
        out = args.workdir / f"{arch}-pruned{ratio * 100:.0f}"
        started = time.time()
        prune_run(run, out, ratio=ratio, steps=args.prune_steps)
        pruned = load_encoder(out)
        export_run(out, ExportOptions(format="onnx", check_size=64))
        rows[label] = {"params": count_params(pruned), "knn_before_recovery": knn_before,
                       "knn": _knn(pruned, data, args), "prune_seconds": round(time.time() - started, 1)}
        runs[label] = out
        print(f"  {label}: params {rows[label]['params'] / 1e6:.2f} M, kNN before recovery "
              f"{100 * knn_before:.2f}, after {100 * rows[label]['knn']:.2f} [{rows[label]['prune_seconds']} s]",
              flush=True)
    times = _ort_p50(runs, args)
    base_ms = statistics.median(times["unpruned"])
    print(f"{arch}:", flush=True)
    for label, row in rows.items():
        row["p50_ms"] = statistics.median(times[label])
        row["p50_rounds"] = times[label]
        row["speedup"] = base_ms / row["p50_ms"]
        row["knn_delta"] = row["knn"] - rows["unpruned"]["knn"]
        print(f"  {label:<12} {row['params'] / 1e6:6.2f} M params  ORT fp32 {row['p50_ms']:7.2f} ms  "
              f"×{row['speedup']:.2f}  kNN {100 * row['knn']:.2f} ({100 * row['knn_delta']:+.2f})"
              + (f", {100 * row['knn_before_recovery']:.2f} before recovery" if "knn_before_recovery" in row
                 else ""), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qad-students", default="efficientnet_b0,mobilenetv3_large_100")
    ap.add_argument("--prune-students", default="resnet18,mobilenetv3_large_100")
    ap.add_argument("--ratios", default="0.3,0.5")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "compressor-bench-compression")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--calib-size", type=int, default=512)
    ap.add_argument("--check-size", type=int, default=1000)
    ap.add_argument("--qad-steps", type=int, default=300)
    ap.add_argument("--qad-lr", type=float, default=1e-5)
    ap.add_argument("--prune-steps", type=int, default=300)
    ap.add_argument("--knn-bank", type=int, default=10000)
    ap.add_argument("--knn-queries", type=int, default=5000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from compressor.data.datasets import find_fashion_mnist

    data = "fashion-mnist" if find_fashion_mnist() else "synthetic"
    out: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "qad": {}, "prune": {}}
    started = time.time()
    for arch in [a.strip() for a in args.qad_students.split(",") if a.strip()]:
        out["qad"][arch] = qad_student(arch, args, data)
        if args.json:
            args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    for arch in [a.strip() for a in args.prune_students.split(",") if a.strip()]:
        out["prune"][arch] = prune_student(arch, args, data)
        if args.json:
            args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    out["minutes"] = round((time.time() - started) / 60, 1)
    print(f"done in {out['minutes']} min", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
