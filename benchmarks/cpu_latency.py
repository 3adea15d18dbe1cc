"""CPU latency of a ResNet-50 student at 224 px, batch 1: torch eager fp32 vs ORT fp32 vs ORT INT8.

    .venv/bin/python benchmarks/cpu_latency.py --threads 2 --repeats 3 --ablation

Without ``--run`` it builds the student itself (no weights can be downloaded here): a timm ResNet-50
trained briefly on Fashion-MNIST (the synthetic set when that is not installed), see ``build_run``.
Latency does not depend on the weights; the INT8 cosine does, so pass ``--run`` to measure a
distilled student. The export and the timing go through the library (``export_run``, ``bench``), i.e.
exactly what ``compress export`` and ``compress bench`` do. ``--ablation`` also times the INT8 graphs
that plain ORT settings give, to show what each choice is worth. Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from common import build_run, int8_peak, p50_ms, plain_session, time_session

from compressor.export import BenchOptions, ExportOptions, bench, export_run
from compressor.rundir import RunDir


def ablation(run: Path, threads: int, iters: int, calib_n: int, rounds: int = 5) -> list[dict]:
    """INT8 variants quantised with ORT directly, timed with plain sessions at batch 1.

    The variants are timed in turn, ``rounds`` times over, and each reports the median and the range of
    its per-round p50: a busy spell on the machine then hits one round of every variant, not one variant.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_static

    from compressor.export.images import load_images, run_data
    from compressor.export.onnx import export_onnx
    from compressor.export.quantize import ArrayReader
    from compressor.models.saved import load_encoder

    enc = load_encoder(run)
    data, root = run_data(run)
    calib = load_images(data, enc.spec, calib_n, split="train", root=root).images  # type: ignore[arg-type]
    x = calib[:1].copy()
    fp32 = run / "export" / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        export_onnx(enc, raw, simplify=False)  # torch.onnx.export's output: Identity-wrapped weights and all
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        variants = [
            ("ORT defaults (S8S8, per-tensor) on torch.onnx.export's graph", raw, QuantType.QInt8, False, "all"),
            ("ORT defaults on the simplified, pre-processed graph", pre, QuantType.QInt8, False, "all"),
            ("+ uint8 activations (U8S8)", pre, QuantType.QUInt8, False, "all"),
            ("+ per-channel weights (= compress export)", pre, QuantType.QUInt8, True, "all"),
            ("the same, session at ORT_ENABLE_EXTENDED (no NHWC layout pass)", pre, QuantType.QUInt8, True,
             "extended"),
            ("U8S8 per-channel on torch.onnx.export's graph (not pre-processed)", raw, QuantType.QUInt8, True,
             "all"),
        ]
        sessions = []
        for i, (name, src, act, per_channel, level) in enumerate(variants):
            out = Path(tmp) / f"q{i}.onnx"
            quantize_static(str(src), str(out), ArrayReader("images", calib, 8),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=act,
                            weight_type=QuantType.QInt8)
            sessions.append((name, plain_session(out, threads, level)))
        sessions.append(("ORT fp32 (model.onnx)", plain_session(fp32, threads)))
        per_round: dict[str, list[float]] = {name: [] for name, _ in sessions}
        for _ in range(rounds):
            for name, sess in sessions:
                per_round[name].append(p50_ms(sess, x, iters))
    rows = []
    for name, values in per_round.items():
        rows.append({"variant": name, "p50_ms": statistics.median(values), "min_ms": min(values),
                     "max_ms": max(values)})
        print(f"  {rows[-1]['p50_ms']:7.2f} ms  [{min(values):6.2f} .. {max(values):6.2f}]  {name}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, help="a run directory with a ResNet-50 student (default: build one)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "compressor-bench-r50")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3, help="bench rounds; the spread is reported")
    ap.add_argument("--calib-size", type=int, default=512)
    ap.add_argument("--calib-method", default="minmax")
    ap.add_argument("--ablation", action="store_true", help="also time plain-ORT INT8 variants")
    ap.add_argument("--train-steps", type=int, default=300, help="steps to train the stand-in student")
    ap.add_argument("--reexport", action="store_true", help="export again even when RUN/export has the files")
    ap.add_argument("--json", type=Path, help="write all figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    run = args.run
    if run is None:
        from compressor.data.datasets import find_fashion_mnist

        run = args.workdir / "run-resnet50"
        if not RunDir(run).is_finished():
            data = "fashion-mnist" if find_fashion_mnist() else "synthetic"
            print(f"building {run} (ResNet-50 trained {args.train_steps} steps on {data})", flush=True)
            build_run(run, data, steps=args.train_steps)
    from compressor.manifest import read_manifest

    exports = read_manifest(run / "export")["exports"]
    for fmt, name in (("onnx", "model.onnx"), ("onnx-int8", "model.int8.onnx")):
        if args.reexport or name not in exports:
            res = export_run(run, ExportOptions(format=fmt, calib_size=args.calib_size,
                                                calib_method=args.calib_method, check_size=256))
            exports[name] = res.entry
        print(f"{name}: {json.dumps(exports[name]['fidelity'])}", flush=True)

    rounds = []
    for r in range(args.repeats):
        load_before = os.getloadavg()[0]  # other processes on the machine: the main source of noise
        report = bench(run, BenchOptions(backends=("torch", "ort-cpu"), batches=(1,), threads=args.threads,
                                         warmup=10, iters=args.iters, seconds=None))
        rows = {(x.backend, x.precision): x for x in report.results
                if x.format in ("pytorch", "onnx", "onnx-int8")}
        torch_ms, ort_ms = rows[("torch", "fp32")].p50_ms, rows[("ort-cpu", "fp32")].p50_ms
        int8 = rows[("ort-cpu", "int8")]
        rounds.append({"torch_fp32_p50": torch_ms, "ort_fp32_p50": ort_ms, "ort_int8_p50": int8.p50_ms,
                       "int8_cosine": int8.cosine_vs_torch, "ratio": int8.p50_ms / torch_ms,
                       "cv": {f"{k[0]} {k[1]}": v.cv for k, v in rows.items()},
                       "loadavg_1min": [load_before, os.getloadavg()[0]]})
        print(f"round {r + 1}: torch {torch_ms:.2f} ms, ORT fp32 {ort_ms:.2f} ms, "
              f"ORT INT8 {int8.p50_ms:.2f} ms "
              f"(cos {int8.cosine_vs_torch:.4f}) -> INT8/torch = {int8.p50_ms / torch_ms:.3f} "
              f"[load {load_before:.1f} -> {os.getloadavg()[0]:.1f}]", flush=True)
    print(report.to_markdown())
    ratios = [x["ratio"] for x in rounds]
    print(f"INT8/torch p50 ratio: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, "
          f"max {max(ratios):.3f}) over {len(ratios)} rounds; target <= 0.12")
    out = {"env": report.env, "rounds": rounds, "exports": exports, "last_report": report.to_dict()}
    # The same files timed by a plain InferenceSession, outside compress bench: the two should agree.
    from compressor.export.images import load_images, run_data
    from compressor.models.encoder import InputSpec
    from compressor.models.saved import read_encoder_meta

    data, root = run_data(run)
    spec = InputSpec.from_dict(read_encoder_meta(run))
    x1 = load_images(data, spec, 1, split="val", root=root).images  # type: ignore[arg-type]
    out["plain_ort_p50"] = {f: time_session(run / "export" / f, x1, args.threads, args.iters)
                            for f in ("model.onnx", "model.int8.onnx")}
    print(f"plain InferenceSession p50: {out['plain_ort_p50']}", flush=True)
    out["int8_peak_gmacs"] = int8_peak(args.threads, args.iters)
    macs = 4.09e9  # ResNet-50 at 224 px (half the GFLOPs bench reports)
    print(f"INT8 ceiling: {out['int8_peak_gmacs']:.0f} GMAC/s on {args.threads} threads (one large QLinearConv) "
          f"-> ResNet-50 cannot run faster than {macs / out['int8_peak_gmacs'] / 1e6:.1f} ms here", flush=True)
    if args.ablation:
        print("ablation (plain InferenceSession, batch 1; median p50 over rounds [range]):", flush=True)
        out["ablation"] = ablation(run, args.threads, max(10, args.iters // 2), calib_n=64, rounds=args.repeats)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return None


if __name__ == "__main__":
    sys.exit(main())
