"""Training throughput of MV-MR: live teacher vs the on-disk teacher cache, the loader alone, FLOP bound.

For each student: images/s of a full training step (forward, backward, optimiser) with the teacher
run live, and with its embeddings read from a filled ``--teacher-cache``; the FLOPs of both steps
from torch's ``FlopCounterMode``, so the cache's ceiling ``(T+S)/S`` (the speed-up if the step
time were proportional to FLOPs) and the fraction of it reached are printed from the same run; the
fraction of the machine's FLOP bound (peak measured with a bf16 and an fp32 matmul in the same run);
and the loader alone (real JPEG decoding + MV-MR's views, one worker = one core) in images/s.

Synthetic in-memory batches for the steps (random weights: throughput only). CPU at small sizes
for CI (``--image-size 64 --batch 4 --students resnet18``), a CUDA GPU when present.

    python benchmarks/train_throughput.py --image-size 224 --batch 8 --students resnet18
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from compressor.data.datasets import FolderDataset
from compressor.data.loader import ViewDataset
from compressor.data.teacher_cache import TeacherCache, cache_key, fill_cache
from compressor.data.transforms import Views
from compressor.engine.recipe import DataInfo, make_config
from compressor.models.students import build_student
from compressor.recipes.mvmr import MVMR


class _Batches(torch.utils.data.Dataset):
    def __init__(self, n: int, size: int, tsize: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, size, size, generator=g)
        self.t = torch.randn(n, 3, tsize, tsize, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.t[i], i


def peak_matmul(dtype: torch.dtype, device: torch.device, n_max: int = 2048, reps: int = 5,
                budget_s: float = 0.05) -> float:
    """FLOP/s of an n×n matmul, n doubled from 256 up to ``n_max`` while one call stays under ``budget_s``: a CPU
    without native bf16 emulates it at ~1 GFLOP/s, where a fixed 2048² matmul took 5 minutes (AVX2-only EPYC)."""
    n = 256
    while True:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        a @ b
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        if n >= n_max or time.perf_counter() - t0 > budget_s:
            break
        n *= 2
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_time(recipe: MVMR, batch: dict, opt: torch.optim.Optimizer, steps: int, device: torch.device,
              amp: torch.dtype | None = None) -> float:
    def one() -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = recipe.step(batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    one()  # warm-up (and, for the cached recipe, nothing is computed by the teacher after this)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        one()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def flops_of(recipe: MVMR, batch: dict) -> int:
    with FlopCounterMode(display=False) as fc:  # FLOPs do not depend on the precision: counted in fp32
        recipe.step(batch).loss.backward()
    recipe.zero_grad(set_to_none=True)
    return fc.get_total_flops()


def loader_rate(views: Views, n: int, size: int) -> float:
    """Images/s of one worker: JPEG decode + ``views`` (MV-MR's x_o, x_a and, with a live teacher, t_o)."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as d:
        files = []
        rng = np.random.default_rng(0)
        for i in range(n):
            p = Path(d) / f"{i}.jpg"
            Image.fromarray(rng.integers(0, 255, (size * 8 // 7, size * 8 // 7, 3), dtype=np.uint8)).save(p, quality=90)
            files.append(p)
        ds = ViewDataset(FolderDataset(files, [0] * n, ["x"]), views, seed=0)
        ds[0]
        t0 = time.perf_counter()
        for i in range(n):
            ds[i]
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="vit_base_patch16_224")
    ap.add_argument("--students", default="resnet50,resnet18,mobilenetv3_large_100")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--loader-images", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="bf16: the step under autocast")
    ap.add_argument("--compile", action="store_true", help="torch.compile the recipe's step (after counting FLOPs)")
    ap.add_argument("--compile-backend", default="inductor",
                    help="torch.compile backend (the CPU dry run of scripts/gpu-check.sh uses aot_eager: no codegen)")
    args = ap.parse_args()
    amp = torch.bfloat16 if args.precision == "bf16" else None
    device = torch.device(args.device)
    torch.manual_seed(0)
    teacher = build_student(args.teacher, args.image_size).freeze().to(device)
    peaks = {str(dt).split(".")[1]: peak_matmul(dt, device) for dt in (torch.bfloat16, torch.float32)}
    print(f"device {device}, threads {torch.get_num_threads()}; measured matmul peak: "
          + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peaks.items()))
    best = max(peaks, key=peaks.__getitem__)  # a CPU without native bf16 emulates it far below its fp32 peak
    data = _Batches(args.batch, args.image_size, teacher.spec.image_size)
    idx = torch.arange(args.batch)
    for name in args.students.split(","):
        student = build_student(name, args.image_size)
        recipe = MVMR(make_config(MVMR), student, teachers=[teacher], data=DataInfo(0, args.batch, args.batch))
        recipe.to(device).train()
        batch = {"x_o": data.x.to(device), "x_a": data.x.flip(-1).to(device), "t_o": data.t.to(device),
                 "index": idx.to(device)}
        opt = torch.optim.Adam([p for p in recipe.parameters() if p.requires_grad], lr=1e-4)
        f_live = flops_of(recipe, batch)
        eager = recipe.step
        if args.compile:  # as the trainer's --compile: graph breaks fall back to eager
            recipe.step = torch.compile(recipe.step, backend=args.compile_backend)  # type: ignore[method-assign]
        t_live = step_time(recipe, batch, opt, args.steps, device, amp)
        with tempfile.TemporaryDirectory() as d:
            cache = TeacherCache(d, cache_key(data, teacher))
            fill_cache(cache, teacher, data, batch_size=args.batch, device=device)
            recipe.teacher_disk_cache = cache  # the same attribute the trainer sets for --teacher-cache
            cached = {k: v for k, v in batch.items() if k != "t_o"}  # a complete cache: the view is not decoded
            stepper, recipe.step = recipe.step, eager  # type: ignore[method-assign]  # FLOPs counted eagerly
            f_cached = flops_of(recipe, cached)
            recipe.step = stepper  # type: ignore[method-assign]
            t_cached = step_time(recipe, cached, opt, args.steps, device, amp)
            recipe.teacher_disk_cache = None
        ceiling, speedup = f_live / f_cached, t_live / t_cached
        print(f"{args.teacher} -> {name} @ {args.image_size}px, batch {args.batch}, {args.precision}"
              f"{', compiled' if args.compile else ''}: "
              f"live {args.batch / t_live:.2f} img/s, cached {args.batch / t_cached:.2f} img/s, "
              f"speed-up {speedup:.2f}x of ceiling (T+S)/S = {ceiling:.2f}x ({100 * speedup / ceiling:.0f}%); "
              f"FLOP bound ({best} peak, the faster here): live {100 * f_live / t_live / peaks[best]:.0f}%, "
              f"cached {100 * f_cached / t_cached / peaks[best]:.0f}%")
        views = recipe.views()
        assert isinstance(views, Views)  # MV-MR's named views
        live_rate = loader_rate(views, args.loader_images, args.image_size)
        cached_rate = loader_rate(views.without("t_o"), args.loader_images, args.image_size)
        print(f"  loader alone, one worker (one core): JPEG decode + x_o, x_a, t_o {live_rate:.1f} img/s; "
              f"without t_o (complete cache) {cached_rate:.1f} img/s; the live step needs "
              f"{args.batch / t_live / live_rate:.2f} such cores, the cached step "
              f"{args.batch / t_cached / cached_rate:.2f}")


if __name__ == "__main__":
    main()
