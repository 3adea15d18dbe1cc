"""Fastest exported format vs the fastest of {ORT, OpenVINO} x {fp32, INT8}, same run, batch 1.

    .venv/bin/python benchmarks/deploy_latency.py --threads 2 --repeats 3 --json deploy.json

For each student (default: resnet50, resnet18, efficientnet_b0, mobilenetv3_large_100 at 224 px) it
builds a stand-in run (a timm student trained briefly with labels on Fashion-MNIST, see
``cpu_latency.build_run`` for why random weights are a poor stand-in for INT8 fidelity), exports it
as onnx, onnx-int8, openvino and openvino-int8 through the library (``export_run``: the same
representative calibration sample for both INT8 formats), then benches the four files in the same
process, round after round (``bench``), with cosine vs the PyTorch fp32 student on real images.

Printed per round and as medians: each format's p50, "tool" = the fastest format that keeps cosine
>= 0.99, "best" = the fastest of the four whatever its cosine, and tool/best (target <= 1.05). For
ResNet-50 it also measures this CPU's INT8 ceiling (one large QLinearConv, ``cpu_latency.int8_peak``)
and prints ceiling-limited time / best INT8 p50 (target >= 0.90). The machine's load average is
printed with every round: other processes are the main source of noise.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
from common import build_run, int8_peak

from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.rundir import RunDir

FORMATS = ("onnx", "onnx-int8", "openvino", "openvino-int8")
MACS = {"resnet50": 4.09e9}  # multiply-adds at 224 px, for the INT8 ceiling


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--students", default="resnet50,resnet18,efficientnet_b0,mobilenetv3_large_100")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "compressor-bench-deploy")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=200)
    ap.add_argument("--calib-size", type=int, default=512)
    ap.add_argument("--check-size", type=int, default=128)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from compressor.data.datasets import find_fashion_mnist
    from compressor.manifest import read_manifest

    data = "fashion-mnist" if find_fashion_mnist() else "synthetic"
    out: dict = {"students": {}}
    for arch in [a.strip() for a in args.students.split(",") if a.strip()]:
        run = args.workdir / arch
        if not RunDir(run).is_finished():
            print(f"building {run} ({arch} trained {args.train_steps} steps on {data})", flush=True)
            build_run(run, data, steps=args.train_steps, arch=arch)
        exports = read_manifest(run / "export")["exports"]
        for fmt in FORMATS:
            name = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx", "openvino": "model.xml",
                    "openvino-int8": "model.int8.xml"}[fmt]
            if name not in exports:
                try:
                    exports[name] = export_run(run, ExportOptions(format=fmt, calib_size=args.calib_size,
                                                                  check_size=args.check_size)).entry
                except Exception as err:  # a refused export is a result here, not a crash
                    print(f"{arch} {fmt}: not exported: {err}", flush=True)
                    continue
            fid = exports[name]["fidelity"]
            print(f"{arch} {fmt}: manifest cosine mean {fid['mean_cosine']:.5f} min {fid['min_cosine']:.5f}"
                  + (f", inference precision {exports[name]['openvino']['inference_precision']}"
                     if "openvino" in exports[name] else ""), flush=True)
        rounds = []
        for r in range(args.repeats):
            load = os.getloadavg()[0]
            rep = bench(run, BenchOptions(backends=("ort-cpu", "openvino"), batches=(1,), threads=args.threads,
                                          warmup=10, iters=args.iters, seconds=None))
            rows = {x.format: {"p50": x.p50_ms, "cos": x.cosine_vs_torch, "precision": x.precision, "cv": x.cv}
                    for x in rep.results}
            best = min(rows, key=lambda f: rows[f]["p50"])
            ok = [f for f in rows if (rows[f]["cos"] or 0) >= 0.99]
            tool = min(ok, key=lambda f: rows[f]["p50"]) if ok else None
            ratio = rows[tool]["p50"] / rows[best]["p50"] if tool else None
            rounds.append({"rows": rows, "best": best, "tool": tool, "ratio": ratio,
                           "load": [load, os.getloadavg()[0]]})
            print(f"{arch} round {r + 1}: " + ", ".join(f"{f} {v['p50']:.2f} ms ({v['precision']}, cos "
                                                        f"{v['cos']:.4f})" for f, v in rows.items())
                  + f" | tool {tool} / best {best} = {ratio if ratio is None else round(ratio, 3)}"
                  + f" [load {load:.1f} -> {os.getloadavg()[0]:.1f}]", flush=True)
        med = {f: statistics.median(r["rows"][f]["p50"] for r in rounds) for f in rounds[0]["rows"]}
        ratios = [r["ratio"] for r in rounds if r["ratio"] is not None]
        summary = {"median_p50": med, "median_ratio": statistics.median(ratios) if ratios else None,
                   "rounds": rounds, "exports": {k: v.get("fidelity") for k, v in exports.items()}}
        if arch in MACS:
            peak = int8_peak(args.threads, args.iters)
            int8_best = min(med.get("onnx-int8", float("inf")), med.get("openvino-int8", float("inf")))
            floor = MACS[arch] / peak / 1e6
            summary.update(int8_peak_gmacs=peak, int8_floor_ms=floor, int8_vs_ceiling=floor / int8_best)
            print(f"{arch}: INT8 ceiling {peak:.0f} GMAC/s -> floor {floor:.2f} ms; best INT8 median p50 "
                  f"{int8_best:.2f} ms = {100 * floor / int8_best:.0f}% of the ceiling (target >= 90%)", flush=True)
        out["students"][arch] = summary
        print(f"{arch} medians over {len(rounds)} rounds: "
              + ", ".join(f"{f} {v:.2f} ms" for f, v in med.items())
              + f"; tool/best median {summary['median_ratio']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
