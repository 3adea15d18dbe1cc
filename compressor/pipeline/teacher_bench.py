"""Latency of a named teacher (CLIP, MoCo, timm: …) in PyTorch: the baseline of the report's headline.

A teacher that is a run of ours goes through ``compress bench`` like any student (with its exports);
a named teacher has no run directory, so it is timed here with the same runner and timing loop.
"""

from __future__ import annotations

from compressor.engine.config import TrainConfig
from compressor.export.options import BenchOptions
from compressor.export.report import BenchReport, BenchRow


def bench_teacher(train: TrainConfig, opts: BenchOptions) -> BenchReport:
    """PyTorch fp32 eager latency of the (first) teacher of ``train`` at each of ``opts.batches``."""
    import numpy as np
    import torch

    from compressor.engine.setup import build_teachers
    from compressor.errors import CompressorError
    from compressor.export import images as img
    from compressor.export.env import environment, usable_cores
    from compressor.export.runners import TorchRunner
    from compressor.export.timing import measure

    encoder = build_teachers(train)[0]
    threads = opts.threads or usable_cores()
    report = BenchReport(env=environment(threads))
    n = max(opts.batches)
    try:
        batch = img.load_images(train.data, encoder.spec, n, split="val", root=train.data_root)
    except CompressorError as err:
        report.notes.append(f"teacher inputs: random pixels ({err})")
        batch = img.random_images(encoder.spec, n)
    x = np.ascontiguousarray(np.concatenate([batch.images] * -(-n // len(batch)))[:n])
    params = sum(p.numel() for p in encoder.parameters()) / 1e6
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runner = TorchRunner(encoder)
        for b in opts.batches:
            t = measure(runner.prepare(x[:b]), warmup=opts.warmup, warmup_s=opts.warmup_s, iters=opts.iters,
                        seconds=opts.seconds)
            report.results.append(BenchRow(
                backend="torch", format=runner.format, precision="fp32", batch=b, p50_ms=t.p50, p90_ms=t.p90,
                p99_ms=t.p99, mean_ms=t.mean, std_ms=t.std, throughput_ips=b * 1e3 / t.mean,
                size_mb=params * 4, params_m=params, gflops=None, cosine_vs_torch=None, cv=t.cv, iters=t.iters))
    finally:
        torch.set_num_threads(old)
    return report
