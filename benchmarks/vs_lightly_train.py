"""Side by side with lightly-train: one teacher file, student, image set, size, batch, epochs and thread count.

    python benchmarks/vs_lightly_train.py --out runs/vs-lt            # the table in docs/benchmarks.md
    python benchmarks/vs_lightly_train.py --out /tmp/vs-lt --quick    # about a minute: the plumbing (CI)

lightly-train is a benchmark-only dependency (``pip install -c constraints.txt -e '.[bench]'``); the library never
imports it. What the script does, top to bottom:

1. **Images.** Fashion-MNIST (a class-stratified training subset and held-apart test images) and, for another look,
   scikit-learn's bundled handwritten digits (8 px, every fifth image held apart), written as ``train/`` and
   ``val/`` folders of PNG files. Both tools train on ``train/``; labels are used only by the scorer.
2. **The teacher.** A DINOv2 ViT-S/14 (timm ``vit_small_patch14_dinov2``, our ``dinov2-vit-s14``) trained with
   labels on Fashion-MNIST as the demo's teacher is (``supervised``, the demo's settings), written in the official
   layout (``mask_token``, ``pos_embed`` for 518 px) under the official file name into lightly-train's model cache.
   The two tools resample ``pos_embed`` differently (timm once at load, antialiased; DINOv2 at each forward, with
   an offset of 0.1 and no antialias), so the stored 37×37 grid is the one nearest to a bicubic upsampling of the
   trained grid that **both** resamplings map back onto the trained grid exactly (a least-norm correction: 2·g²
   linear constraints on 1,369 positions per channel). The script then checks that both tools' teachers give the
   same CLS embedding and patch tokens on a batch, and the trained network's embedding, and stops if not.
3. **Rows**, three seeds each, every training in a subprocess of its own (wall time, images/s, peak RSS from
   ``VmHWM``): lightly-train's default ``distillation`` (v3 in 0.18), ``distillationv1`` and ``distillationv2``
   at their defaults; our ``feature-kd``, ``seed`` and ``mvmr`` at theirs; the settings swapped between the two
   default methods (v3 at our optimiser and crop, feature-kd at lightly-train's); mvmr with the teacher cache
   (filled ahead, timed apart). The digits run each tool's default method only. A speed pass then trains five
   rows for --epochs and 3× as many, back to back: extra images / extra time, set-up cancelled.
4. **Scoring** by our scorer (``compressor.eval.embed.evaluate_encoder``: weighted kNN k=20 T=0.07 and the linear
   probe) on both tools' students: lightly-train's exported student (a timm state dict) is loaded into timm's
   ``resnet18``. ONNX latency (batch 1) of our exported student; lightly-train's pre-training export is a PyTorch
   state dict (its ONNX export takes task-model checkpoints only), so its rows have none.

Finished runs in ``--out`` are reused (``results.json``), so an interrupted comparison continues.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import summarise  # mean ± half the spread over seeds, as in the quality table

import compressor
from compressor.data.datasets import build_dataset
from compressor.eval.embed import evaluate_encoder
from compressor.models.encoder import IMAGENET_MEAN, IMAGENET_STD, Encoder, InputSpec
from compressor.rundir import RunDir

STUDENT = "resnet18"
OUR_TEACHER, TEACHER_ARCH = "dinov2-vit-s14", "vit_small_patch14_dinov2"
LT_TEACHER = "dinov2/vits14-noreg"  # lightly-train's name for the plain (no-register) DINOv2 ViT-S/14
TEACHER_FILE = "dinov2_vits14_pretrain.pth"  # the basename of its download URL: lightly-train's cache name
STORED_GRID, PATCH = 37, 14  # the official pos_embed: 518 px / 14
AGREE_ATOL = 1e-3  # max |difference| allowed between the two tools' teachers (float32 kernels differ ~1e-5)
LT_METHODS = {"distillation": "distillation (v3, its default)", "distillationv1": "distillationv1",
              "distillationv2": "distillationv2"}
OUR_RECIPES = ("feature-kd", "seed", "mvmr")
SPEED_ROWS = ("lt-distillation", "lt-distillation-our-settings", "feature-kd", "mvmr", "mvmr-cache")
SPEED_FACTOR = 3  # the long run of the speed pass trains this many times --epochs
# Our short-run settings (the preset every teacher→student recipe takes below 5,000 steps: AdamW lr 1e-3, crop
# area ≥ 0.8; feature-kd's weight decay), given to lightly-train's methods for the "our settings" rows.
OUR_SETTINGS = {"lr": 1e-3, "weight_decay": 1e-4, "min_scale": 0.8}


@dataclass(frozen=True)
class Row:
    name: str  # run-directory stem
    label: str
    tool: str  # lightly-train | compressor
    method: str
    settings: str = "defaults"  # defaults | ours | lightly-train
    cache: bool = False


@dataclass
class Result:
    wall_s: float
    train_s: float
    img_s: float  # training images / the training call's wall time (set-up and export included; see speed_pass)
    rss_mb: float
    knn: float
    linear: float
    onnx_ms: float | None = None


def rows_for(dataset: str, quick: bool) -> list[Row]:
    if quick:
        return [Row("lt-distillation", LT_METHODS["distillation"], "lightly-train", "distillation"),
                Row("feature-kd", "feature-kd", "compressor", "feature-kd"),
                Row("mvmr-cache", "mvmr, teacher cache on", "compressor", "mvmr", cache=True)]
    if dataset != "fashion-mnist":  # the other look: each tool's default method (ours: TrainConfig's feature-kd)
        return [Row("lt-distillation", LT_METHODS["distillation"], "lightly-train", "distillation"),
                Row("feature-kd", "feature-kd", "compressor", "feature-kd")]
    rows = [Row(f"lt-{m}", label, "lightly-train", m) for m, label in LT_METHODS.items()]
    rows += [Row(r, r, "compressor", r) for r in OUR_RECIPES]
    # settings swapped between the two default methods (the CPU budget leaves v1/v2 at their defaults only)
    rows += [Row("lt-distillation-our-settings", f"{LT_METHODS['distillation']}, our optimiser and crop",
                 "lightly-train", "distillation", "ours"),
             Row("feature-kd-lt-settings", "feature-kd, lightly-train's optimiser and crop", "compressor",
                 "feature-kd", "lightly-train"),
             Row("mvmr-cache", "mvmr, teacher cache on", "compressor", "mvmr", cache=True)]
    return rows


# --- images --------------------------------------------------------------------------------------------------------

def write_folders(root: Path, images: list[tuple[np.ndarray, int]], split: str, classes: list[str]) -> None:
    from PIL import Image

    for i, (pixels, label) in enumerate(images):
        folder = root / split / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i:05d}.png")


def build_data(out: Path, args: argparse.Namespace) -> dict[str, Path]:
    """The image folders: ``fashion-mnist`` always, ``digits`` (scikit-learn's, bundled) unless --quick."""
    folders = {"fashion-mnist": out / "data" / "fashion-mnist"}
    if not args.quick:
        folders["digits"] = out / "data" / "digits"
    for name, root in folders.items():
        if (root / "val").is_dir():
            continue
        if name == "digits":
            from sklearn.datasets import load_digits

            d = load_digits()
            pix = (d.images * (255 / 16)).round().astype(np.uint8)  # 16 grey levels → 8-bit
            pairs = [(pix[i], int(d.target[i])) for i in range(len(pix))]
            splits = {"train": [p for i, p in enumerate(pairs) if i % 5 != 4],  # every fifth image held apart
                      "val": [p for i, p in enumerate(pairs) if i % 5 == 4]}
        else:
            splits = {split: ((np.asarray(img.convert("L")), label) for img, label in  # read as far as needed
                              build_dataset("fashion-mnist", split, args.data_root)) for split in ("train", "val")}
        for split, n in (("train", args.images), ("val", args.eval_queries)):
            write_folders(root, first_per_class(splits[split], n // 10), split, [str(c) for c in range(10)])
    return folders


def first_per_class(pairs: Iterable[tuple[np.ndarray, int]], per_class: int,
                    classes: int = 10) -> list[tuple[np.ndarray, int]]:
    """The first ``per_class`` images of each of the ``classes`` classes, in the data set's order."""
    taken: dict[int, int] = {}
    picked = []
    for pixels, label in pairs:
        if taken.get(label, 0) < per_class:
            taken[label] = taken.get(label, 0) + 1
            picked.append((pixels, label))
            if len(picked) == classes * per_class:
                break
    return picked


# --- the teacher ---------------------------------------------------------------------------------------------------

def train_teacher(out: Path, args: argparse.Namespace) -> Path:
    """A ViT-S/14 trained with labels on Fashion-MNIST at the benchmark's size, the way the demo trains its teacher."""
    from compressor.demo import DemoConfig
    from compressor.engine.cpu_bf16 import cpu_bf16_is_native

    run = out / "teacher"
    if RunDir(run).weights_path().exists():
        return run
    shutil.rmtree(run, ignore_errors=True)
    started = time.perf_counter()
    extra = {"max_steps": 2} if args.quick else {"epochs": args.teacher_epochs}
    # The demo's settings (crop area ≥ 0.8, no label smoothing) at AdamW lr 1e-3: the demo's 4e-3 is a ResNet's
    # rate, and a ViT from scratch takes a lower one. bf16 autocast where the CPU has bf16 arithmetic (the ViT is
    # mostly matmuls); the weights stay fp32.
    config = {**DemoConfig().teacher_config, "lr": 1e-3}
    compressor.distill(TEACHER_ARCH, recipe="supervised", data="fashion-mnist", data_root=args.data_root,
                       max_images=args.teacher_images, image_size=args.image_size, batch_size=args.teacher_batch,
                       seed=0, workers=args.workers, out=str(run), recipe_config=config,
                       precision="bf16" if cpu_bf16_is_native() else "auto", **extra)
    print(f"teacher: trained in {time.perf_counter() - started:.0f} s", flush=True)
    return run


def _lt_interpolate(P: torch.Tensor, grid: int) -> torch.Tensor:
    """lightly-train's own DINOv2 ``interpolate_pos_encoding`` on a stand-in holding ``P`` (1, 1+n, C)."""
    from lightly_train._models.dinov2_vit.dinov2_vit_src.models.vision_transformer import DinoVisionTransformer

    stand_in = types.SimpleNamespace(pos_embed=P, patch_size=PATCH, interpolate_offset=0.1,
                                     interpolate_antialias=False, precalculated_pos_embed=None)
    x = torch.zeros(1, 1 + grid * grid, P.shape[-1])
    return DinoVisionTransformer.interpolate_pos_encoding(stand_in, x, PATCH * grid, PATCH * grid)


def _timm_resample(P: torch.Tensor, grid: int) -> torch.Tensor:
    from timm.layers import resample_abs_pos_embed  # what timm's checkpoint filter runs on the official file

    return resample_abs_pos_embed(P, new_size=(grid, grid), num_prefix_tokens=1)


def stored_pos_embed(trained: torch.Tensor, grid: int) -> torch.Tensor:
    """The official (1, 1+37², C) pos_embed whose resampling to ``grid``² by either tool gives ``trained`` back."""
    n, dim = STORED_GRID**2, trained.shape[-1]
    basis = torch.cat([torch.zeros(1, 1, n), torch.eye(n)[None]], 1)  # one channel per stored position
    A = torch.cat([op(basis, grid)[0, 1:] for op in (_timm_resample, _lt_interpolate)]).double()  # (2g², n)
    Q = trained[0, 1:].double()  # (g², C)
    start = F.interpolate(Q.T.reshape(1, dim, grid, grid), size=(STORED_GRID, STORED_GRID), mode="bicubic",
                          align_corners=False).reshape(dim, n).T
    P = start + torch.linalg.pinv(A) @ (torch.cat([Q, Q]) - A @ start)
    return torch.cat([trained[0, :1].double(), P])[None].float()


def write_official(run: Path, path: Path, grid: int) -> None:
    """Our trained teacher (timm keys) as the authors' file: timm's names are DINOv2's, plus ``mask_token``."""
    state = compressor.load(run).backbone.state_dict()
    state = {k: v.clone() for k, v in state.items()}
    state["pos_embed"] = stored_pos_embed(state["pos_embed"], grid)
    state["mask_token"] = torch.zeros(1, state["cls_token"].shape[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


@torch.no_grad()
def check_teacher(run: Path, path: Path, folder: Path, size: int) -> dict[str, float]:
    """Max |difference| on a batch between both tools' teachers read from ``path``, and the trained network."""
    from lightly_train._methods.distillation.distillation import get_teacher as lt_v1_teacher
    from lightly_train._methods.distillationv3.distillationv3 import get_teacher as lt_v3_teacher

    from compressor.data.transforms import eval_transform
    from compressor.models.teachers import build_teacher

    val = build_dataset(str(folder), "val")
    tf = eval_transform(InputSpec(size, IMAGENET_MEAN, IMAGENET_STD))
    x = torch.stack([tf(val[i][0]) for i in range(0, len(val), max(1, len(val) // 32))][:32])
    ours = build_teacher(OUR_TEACHER, str(path), image_size=size).eval()
    lt_cls = lt_v1_teacher(LT_TEACHER, num_input_channels=3)  # v1/v2: the DINOv2 network, CLS after the norm
    lt_v3 = lt_v3_teacher(LT_TEACHER, num_input_channels=3, teacher_weights=None, teacher_args=None)
    trained = compressor.load(run).eval()
    emb = ours(x)
    tokens = ours.backbone.forward_features(x)[:, 1:]
    lt_tokens = lt_v3.forward_features(x)["features"].flatten(2).transpose(1, 2)
    diffs = {"cls (ours vs lightly-train)": (emb - lt_cls(x)).abs().max().item(),
             "patch tokens (ours vs lightly-train v3)": (tokens - lt_tokens).abs().max().item(),
             "cls (file vs the trained network)": (emb - trained(x)).abs().max().item(),
             "scale (max |cls|)": emb.abs().max().item()}
    print("teacher check on", len(x), "images:", ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()), flush=True)
    bad = {k: v for k, v in diffs.items() if not k.startswith("scale") and not v <= AGREE_ATOL}
    if bad:
        raise SystemExit(f"the two tools do not load {path} to the same teacher (max abs diff {bad}, allowed "
                         f"{AGREE_ATOL}): the comparison would not be on one teacher; fix the conversion first")
    return diffs


# --- one training, in a subprocess ---------------------------------------------------------------------------------

def job_for(row: Row, seed: int, folder: Path, run: Path, args: argparse.Namespace, paths: dict[str, Path]) -> dict:
    job: dict[str, Any] = {"tool": row.tool, "method": row.method, "out": str(run), "seed": seed,
                           "epochs": args.epochs, "batch": args.batch_size, "size": args.image_size,
                           "workers": args.workers, "threads": args.threads, "teacher_file": str(paths["file"])}
    if row.tool == "lightly-train":
        job.update(data=str(folder / "train"), method_args={"teacher": LT_TEACHER}, optim="auto", optim_args=None,
                   transform_args={"image_size": [args.image_size] * 2})
        if row.settings == "ours":  # lr given as is: the sqrt batch-size scaling is turned off by its reference
            job["method_args"]["reference_batch_size"] = args.batch_size
            job.update(optim="adamw", optim_args={k: OUR_SETTINGS[k] for k in ("lr", "weight_decay")})
            job["transform_args"]["random_resize"] = {"min_scale": OUR_SETTINGS["min_scale"]}
    else:
        cfg = lt_settings(args.batch_size) if row.settings == "lightly-train" else {}
        job.update(data=str(folder), recipe_config=cfg,
                   teacher_cache=str(paths["cache"] / folder.name) if row.cache else None)
    return job


def lt_settings(batch: int) -> dict[str, Any]:
    """lightly-train's default distillation optimiser and crop as our recipe fields, read from its own defaults:
    AdamW at lr × sqrt(batch / reference batch), weight decay 1e-6 for a convolutional student (its "auto"),
    random resized crop down to ``min_scale`` of the area."""
    from lightly_train._methods.distillationv3.distillationv3 import DistillationV3AdamWArgs, DistillationV3Args
    from lightly_train._methods.distillationv3.distillationv3_transform import DistillationV3TransformArgs

    crop = DistillationV3TransformArgs().random_resize
    assert crop is not None
    return {"optimizer": "adamw", "weight_decay": 1e-6, "crop_scale_min": crop.min_scale,
            "lr": DistillationV3AdamWArgs().lr * math.sqrt(batch / DistillationV3Args().reference_batch_size)}


def child(job: dict) -> None:
    """Run one training (this process is the subprocess) and write its timing beside the run."""
    torch.set_num_threads(job["threads"])
    started = time.perf_counter()
    if job["tool"] == "lightly-train":
        import lightly_train

        lightly_train.pretrain(out=job["out"], data=job["data"], model=f"timm/{STUDENT}", method=job["method"],
                               method_args=job["method_args"], epochs=job["epochs"], batch_size=job["batch"],
                               num_workers=job["workers"], seed=job["seed"], accelerator="cpu", devices=1,
                               optim=job["optim"], optim_args=job["optim_args"], transform_args=job["transform_args"],
                               overwrite=True)
    else:
        compressor.distill(STUDENT, data=job["data"], teacher=OUR_TEACHER, teacher_weights=job["teacher_file"],
                           teacher_image_size=job["size"], recipe=job["method"], image_size=job["size"],
                           stem="imagenet", epochs=job["epochs"], batch_size=job["batch"], seed=job["seed"],
                           workers=job["workers"], out=job["out"], recipe_config=job["recipe_config"],
                           teacher_cache=job["teacher_cache"])
    train_s = time.perf_counter() - started
    Path(job["out"], "timing.json").write_text(json.dumps({"train_s": train_s, "peak_rss_mb": peak_rss_mb()}))


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``) in MB.

    Not ``ru_maxrss``: Linux starts a child's ``ru_maxrss`` at the resident size of the process it was forked
    from (the exec'd-away copy counts), so every training started by this script reported at least this
    script's own 1.6-1.9 GB. ``VmHWM`` belongs to the address space made at exec. The loader's worker processes
    are not included."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # not Linux: the nearest figure there is

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)


def run_child(job: dict, env: dict[str, str]) -> tuple[float, float, float]:
    """(process wall s, training-call s, peak RSS MB) of one training in its own process."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], env=env, check=False)
    if proc.returncode:
        raise SystemExit(f"training {job['out']} failed (exit {proc.returncode}); its log is above")
    timing = json.loads(Path(job["out"], "timing.json").read_text())
    return time.perf_counter() - started, timing["train_s"], timing["peak_rss_mb"]


# --- scoring -------------------------------------------------------------------------------------------------------

def lt_student(run: Path, size: int) -> Encoder:
    """lightly-train's exported student (a timm state dict with timm's unused 1000-class head) in timm's resnet18."""
    import timm

    state = torch.load(run / "exported_models" / "exported_last.pt", map_location="cpu", weights_only=True)
    backbone = timm.create_model(STUDENT, num_classes=0)
    backbone.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=True)
    return Encoder(backbone, name=f"lightly-train {STUDENT}", spec=InputSpec(size, IMAGENET_MEAN, IMAGENET_STD),
                   embed_dim=backbone.num_features, arch=STUDENT)


def init_student(args: argparse.Namespace) -> Encoder:
    """The student before any training (timm's initialisation, seed 0): what a run adds to it."""
    import timm

    torch.manual_seed(0)
    backbone = timm.create_model(STUDENT, num_classes=0)
    return Encoder(backbone, name=STUDENT, spec=InputSpec(args.image_size, IMAGENET_MEAN, IMAGENET_STD),
                   embed_dim=backbone.num_features, arch=STUDENT)


def score(enc: torch.nn.Module, folder: Path, args: argparse.Namespace) -> tuple[float, float]:
    r = evaluate_encoder(enc, build_dataset(str(folder), "train"), build_dataset(str(folder), "val"),
                         limit_train=args.eval_bank, limit_val=args.eval_queries)
    return 100 * r.knn_top1, 100 * (r.linear_top1 or 0.0)


def onnx_ms(run: Path, args: argparse.Namespace) -> float:
    """p50 ms at batch 1 of the run's ONNX export on ONNX Runtime (CPU), as ``compress bench`` times it."""
    from compressor.export.bencher import bench
    from compressor.export.options import BenchOptions

    path = compressor.export(run, "onnx")
    opts = BenchOptions(backends=("ort-cpu",), batches=(1,), threads=args.threads, seconds=1.0 if args.quick else 5.0)
    return bench(path, opts).results[0].p50_ms



# --- the table -----------------------------------------------------------------------------------------------------

def table(results: dict[str, dict], rows: dict[str, list[Row]], reference: dict, args: argparse.Namespace) -> str:
    def cell(keys: list[str], field_name: str, fmt: str = "{:.2f}") -> str:
        vals = [results[k][field_name] for k in keys if results.get(k, {}).get(field_name) is not None]
        if not vals:
            return "—"
        return summarise(vals) if fmt == "{:.2f}" else fmt.format(statistics.median(vals))

    lines = [f"Student `{STUDENT}` (timm's stem) at {args.image_size} px, teacher `{OUR_TEACHER}` / `{LT_TEACHER}` "
             f"(one file), {args.epochs} epochs, batch {args.batch_size}, {args.workers} loader worker(s), "
             f"{args.threads} threads, seeds {args.seeds}; our scorer on both students (kNN k=20 T=0.07, linear "
             "probe; bank = the training images, queries = the held-apart ones). ± = half the spread over seeds; "
             "timings and RSS are medians over seeds (a shared machine's load moves them); wall = the training "
             "call; RSS = the training process's peak (VmHWM).", "",
             "| data | row | tool | settings | kNN top-1 | linear top-1 | wall s | img/s | peak RSS MB | ONNX ms |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for data, data_rows in rows.items():
        for name, ref in reference.get(data, {}).items():
            lines.append(f"| {data} | {name} | | | {ref[0]:.2f} | {ref[1]:.2f} | | | | |")
        for row in data_rows:
            keys = [f"{data}/{row.name}-s{s}" for s in args.seeds]
            lines.append(f"| {data} | {row.label} | {row.tool} | {row.settings} | {cell(keys, 'knn')} | "
                         f"{cell(keys, 'linear')} | {cell(keys, 'train_s', '{:.0f}')} | "
                         f"{cell(keys, 'img_s', '{:.1f}')} | {cell(keys, 'rss_mb', '{:.0f}')} | "
                         f"{cell(keys, 'onnx_ms', '{:.2f}')} |")
    return "\n".join(lines) + "\n"


def ratios(results: dict[str, dict], rows: dict[str, list[Row]], args: argparse.Namespace) -> list[str]:
    """Same-run ratios: our best kNN against lightly-train's best, and images/s at matched settings."""
    def mean(data: str, name: str, key: str) -> float | None:
        """kNN: the mean over seeds; timings: the median (a shared machine's load moves them)."""
        vals = [results[f"{data}/{name}-s{s}"].get(key) for s in args.seeds if f"{data}/{name}-s{s}" in results]
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        return statistics.mean(vals) if key == "knn" else statistics.median(vals)

    out = []
    for data, data_rows in rows.items():
        best = {}
        for tool in ("compressor", "lightly-train"):
            scored = [(mean(data, r.name, "knn"), r) for r in data_rows if r.tool == tool and not r.cache]
            scored = [(v, r) for v, r in scored if v is not None]
            if scored:
                best[tool] = max(scored, key=lambda p: p[0])
        if len(best) == 2:
            (ours, r_ours), (lt, r_lt) = best["compressor"], best["lightly-train"]
            out.append(f"{data}: best kNN ours {ours:.2f} ({r_ours.label}) vs lightly-train {lt:.2f} ({r_lt.label}): "
                       f"{ours - lt:+.2f}")
        pairs = [("feature-kd", "lt-distillation-our-settings"), ("feature-kd", "lt-distillation"),
                 ("mvmr-cache", "mvmr"), ("mvmr-cache", "lt-distillation")]
        for a, b in pairs:
            ia, ib = mean(data, a, "img_s"), mean(data, b, "img_s")
            if ia and ib:
                out.append(f"{data}: img/s of the training call {a} / {b} = {ia / ib:.2f}x")
    return out


# --- main ----------------------------------------------------------------------------------------------------------

def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/vs-lt")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one seed, three rows: the plumbing (CI)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--image-size", type=int, default=42, help="a multiple of 14 (the teacher's patch)")
    p.add_argument("--images", type=int, default=640, help="training images of each data set (the same for both)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=1, help="loader processes (lightly-train's 'auto' on 2 cores: 1)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--teacher-images", type=int, default=3200, help="Fashion-MNIST images the teacher learns from")
    p.add_argument("--teacher-epochs", type=int, default=2)
    p.add_argument("--teacher-batch", type=int, default=64)
    p.add_argument("--eval-bank", type=int, default=None, help="bank images (default: the whole training folder)")
    p.add_argument("--eval-queries", type=int, default=500, help="held-apart Fashion-MNIST images")
    p.add_argument("--datasets", nargs="+", default=None, help="only these (fashion-mnist, digits)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--no-train", action="store_true", help="only tabulate the runs results.json already holds")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.image_size % PATCH:
        raise SystemExit(f"--image-size {args.image_size}: use a multiple of {PATCH}, the teacher's patch size")
    if args.quick:
        args.image_size, args.images, args.epochs, args.batch_size, args.seeds = 28, 64, 1, 16, args.seeds[:1]
        args.teacher_images, args.teacher_batch, args.eval_queries, args.workers = 256, 32, 40, 0
    return args


def speed_pass(folder: Path, rows: list[Row], out: Path, args: argparse.Namespace, paths: dict[str, Path],
               env: dict[str, str], results: dict[str, dict]) -> None:
    """Steady-state images/s measured the same way for both tools: each speed row trained twice back to back
    (seed 0), for --epochs and for SPEED_FACTOR times as many; the extra images over the extra wall time of the
    training call. Set-up, teacher loading, checkpoints at the end and export cancel out; epoch boundaries and
    data loading stay in, as they are in a longer run."""
    for row in rows:
        if row.name not in SPEED_ROWS:
            continue
        for epochs in (args.epochs, SPEED_FACTOR * args.epochs):
            key, run = f"{folder.name}/speed/{row.name}-e{epochs}", out / "runs" / folder.name / "speed"
            if key in results:
                continue
            run = run / f"{row.name}-e{epochs}"
            shutil.rmtree(run, ignore_errors=True)
            job = job_for(row, args.seeds[0], folder, run, argparse.Namespace(**{**vars(args), "epochs": epochs}),
                          paths)
            results[key] = {"train_s": run_child(job, env)[1], "epochs": epochs,
                            "images": len(build_dataset(str(folder), "train")) * epochs}
            (out / "results.json").write_text(json.dumps(results, indent=1))


def speed_table(results: dict[str, dict], args: argparse.Namespace) -> str:
    lines = ["", f"Steady-state training images/s (fashion-mnist, seed {args.seeds[0]}): each row trained for "
             f"{args.epochs} and {SPEED_FACTOR * args.epochs} epochs back to back; extra images / extra wall time.",
             "", "| row | short run s | long run s | img/s (marginal) |", "|---|---|---|---|"]
    rates = {}
    for name in SPEED_ROWS:
        short = results.get(f"fashion-mnist/speed/{name}-e{args.epochs}")
        long = results.get(f"fashion-mnist/speed/{name}-e{SPEED_FACTOR * args.epochs}")
        if short and long:
            rates[name] = (long["images"] - short["images"]) / max(1e-9, long["train_s"] - short["train_s"])
            lines.append(f"| {name} | {short['train_s']:.1f} | {long['train_s']:.1f} | {rates[name]:.1f} |")
    pairs = (("feature-kd", "lt-distillation-our-settings"), ("feature-kd", "lt-distillation"),
             ("mvmr-cache", "mvmr"), ("mvmr-cache", "lt-distillation"))
    ratio_lines = [f"- marginal img/s {a} / {b} = {rates[a] / rates[b]:.2f}x" for a, b in pairs
                   if a in rates and b in rates]
    return "\n".join([*lines, "", *ratio_lines]) + "\n" if rates else ""


def build_cache(folder: Path, paths: dict[str, Path], args: argparse.Namespace, env: dict[str, str]) -> float:
    """Fill our teacher cache of ``folder`` ahead with ``compress cache build``; its wall time in s."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "compressor", "cache", "build", str(paths["cache"] / folder.name),
                    "--teacher", OUR_TEACHER, "--teacher-weights", str(paths["file"]), "--teacher-image-size",
                    str(args.image_size), "--data", str(folder), "--workers", str(args.workers)], env=env, check=True)
    return time.perf_counter() - started


def train_and_score(row: Row, seed: int, folder: Path, out: Path, args: argparse.Namespace,
                    paths: dict[str, Path], env: dict[str, str]) -> Result:
    run = out / "runs" / folder.name / f"{row.name}-s{seed}"
    shutil.rmtree(run, ignore_errors=True)  # a run cut short before it was scored starts again
    wall, train_s, rss = run_child(job_for(row, seed, folder, run, args, paths), env)
    enc = lt_student(run, args.image_size) if row.tool == "lightly-train" else compressor.load(run)
    knn, linear = score(enc, folder, args)
    n_img = len(build_dataset(str(folder), "train")) * args.epochs
    res = Result(wall, train_s, n_img / train_s, rss, knn, linear)
    if row.tool == "compressor" and not row.cache and seed == args.seeds[0]:  # one file per recipe
        res.onnx_ms = onnx_ms(run, args)
    print(f"{folder.name}/{row.name}-s{seed}: kNN {knn:.2f} linear {linear:.2f}, training {train_s:.0f} s "
          f"({res.img_s:.1f} img/s), process {wall:.0f} s, peak RSS {rss:.0f} MB", flush=True)
    return res


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.child:
        return child(json.loads(args.child))
    started = time.perf_counter()
    out = Path(args.out).resolve()
    paths = {"file": out / "lightly-train-cache" / "models" / TEACHER_FILE, "cache": out / "teacher-cache"}
    env = {**os.environ, "LIGHTLY_TRAIN_CACHE_DIR": str(out / "lightly-train-cache"),
           "LIGHTLY_TRAIN_EVENTS_DISABLED": "1", "OMP_NUM_THREADS": str(args.threads)}
    os.environ.update(env)  # this process reads the teacher through lightly-train too (the check)
    torch.set_num_threads(args.threads)
    folders = build_data(out, args)
    if args.datasets:
        folders = {k: v for k, v in folders.items() if k in args.datasets}
    teacher = train_teacher(out, args)
    if not paths["file"].exists():
        write_official(teacher, paths["file"], args.image_size // PATCH)
    check = check_teacher(teacher, paths["file"], next(iter(folders.values())), args.image_size)
    results_file = out / "results.json"
    results: dict[str, dict] = json.loads(results_file.read_text()) if results_file.exists() else {}
    rows = {data: rows_for(data, args.quick) for data in folders}
    reference = {data: {"teacher (ViT-S/14, supervised)": score(compressor.load(teacher), folder, args),
                        f"{STUDENT} at initialisation (timm's, seed 0)": score(init_student(args), folder, args)}
                 for data, folder in folders.items()}
    for seed in [] if args.no_train else args.seeds:  # seed by seed: a comparison cut short has every row
        for data, folder in folders.items():
            if any(r.cache for r in rows[data]) and f"{data}/cache-build" not in results:
                results[f"{data}/cache-build"] = {"wall_s": build_cache(folder, paths, args, env)}
            for row in rows[data]:
                if f"{data}/{row.name}-s{seed}" not in results:
                    results[f"{data}/{row.name}-s{seed}"] = asdict(train_and_score(row, seed, folder, out, args,
                                                                                   paths, env))
                    results_file.write_text(json.dumps(results, indent=1))
    if not args.quick and not args.no_train and "fashion-mnist" in folders:
        speed_pass(folders["fashion-mnist"], rows["fashion-mnist"], out, args, paths, env, results)
    text = table(results, rows, reference, args) + speed_table(results, args)
    summary = ratios(results, rows, args)
    (out / "vs_lightly_train.md").write_text(text + "\n" + "\n".join(f"- {s}" for s in summary) + "\n")
    (out / "vs_lightly_train.json").write_text(json.dumps({"results": results, "teacher_check": check,
                                                           "reference": reference, "ratios": summary}, indent=1))
    print(text + "\n".join(summary))
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
