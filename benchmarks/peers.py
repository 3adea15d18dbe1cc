"""Do the peer methods do what their papers claim? Each peer recipe against its own control, at equal budget.

    python benchmarks/peers.py --out runs/peers                  # the table (CPU: see docs/benchmarks.md)
    python benchmarks/peers.py --out runs/peers --seeds 3 4 5    # any seeds
    python benchmarks/peers.py --out runs/peers-ci --quick       # a minute: checks the script end to end
    python benchmarks/peers.py --out runs/probe --gpu --device cuda --probe 30   # what the table would cost here

Each recipe runs in a set-up where its paper's premise holds (``SETUPS``; docs/benchmarks.md gives the
evidence for each choice) and is scored with the figures its paper uses:

* **dogo** (self-supervised peers): the smaller network and its larger peer trained together against the
  same pair with the distillation switched off (``w_1 = w_2 = 0``: two SimCLR runs). DoGo's premise is a
  clearly stronger peer that the smaller one can follow; a CPU budget cannot train one from scratch, so the
  peer starts from a trained checkpoint (``--peer-weights``, in both arms): a ResNet-18 this script trains
  with labels on the same images for the same epochs (or ``--dogo-peer RUN``). kNN (k=20, T=0.07) and the
  linear probe of the frozen embeddings.
* **css** (supervised peers): top-1 test accuracy of each network (its own branches' ensemble, the paper's
  inference) and of the two networks' ensemble, against each network trained alone with cross-entropy on
  the same images, epochs, optimiser and crop; beside them, the ensemble of two networks trained alone (what
  online KD can hope to pass between them: where it is no better than one network, there is nothing to pass).
  Both networks are trained to fit their training images
  (a small labelled subset, many epochs) with the small-input stem, so css's corner masks cover 2×2 of
  the 8×8 trunk map (one pixel of a 4×4 map with timm's stem at 32 px).
* **mokd** (self-supervised peers, a CNN and a ViT with DINO heads): kNN and linear of each network against
  the pair trained with λ = 0, at sizes where no T-Head sees a 1×1 map and no local crop is one token; the
  entropy of each EMA teacher's sharpened, centred target is reported against ln K (the heads' uniform
  state is ln K: nothing is distilled until they leave it).

Each row: mean ± half the spread (max − min) over ``--seeds`` (default three), the gain over its control and
the wall time. ``peers.json`` holds ``{recipe: {"gain": …, "spread": …, …}}`` for the smaller network (dogo,
mokd) or the weaker of the two networks' gains (css); ``spread`` is the larger half-spread of the two rows
compared, so a gain counts when ``gain > spread``. Runs already in ``--out`` are reused.

``--probe N`` trains every run of the table for N steps only (one seed, in ``<out>/probe/``) and writes
``probe.md`` / ``probe.json`` instead of the table: each run's images/s and the table's projected training
minutes for ``--seeds`` — how to size a GPU lease before spending it on the table.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import re
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from common import Scorer, budget_precision, parse_sets

import compressor
from compressor.engine import setup
from compressor.eval.linear import describe_probe, probe_settings
from compressor.models.saved import load_encoder
from compressor.recipes import get_recipe
from compressor.report.collect import read_metrics
from compressor.rundir import RunDir

PEER_RECIPES = ("css", "dogo", "mokd")
ALONE_ENSEMBLE = "ensemble of the two networks trained alone, cross-entropy"
ALONE_SEED_OFFSET = 1000  # css: the second network of a same-architecture pair trained alone starts from seed + this


@dataclass(frozen=True)
class Setup:
    """One recipe's set-up: the pair, the images, the budget and the recipe's own settings."""

    student: str
    peer: str
    image_size: int
    stem: str
    images: int
    epochs: int
    batch_size: int
    recipe_config: dict[str, Any] = field(default_factory=dict)
    peer_image_size: int | None = None
    precision: str = "auto"
    peer_from_teacher: bool = False  # dogo: the peer starts from a trained checkpoint (both arms)
    why: str = ""


# CPU set-ups (2 cores, the whole script within about an hour); docs/benchmarks.md has the evidence behind each.
SETUPS: dict[str, Setup] = {
    "dogo": Setup(student="resnet10t", peer="resnet18", image_size=32, stem="imagenet", images=10_000, epochs=2,
                  batch_size=128, peer_from_teacher=True, recipe_config={"crop_scale_min": 0.8},
                  why="the peer resnet18 starts from a supervised checkpoint of the same images and epochs (a CPU "
                      "budget cannot train a clearly stronger self-supervised peer); both arms start it there; "
                      "crops of 80-100% in both arms, the short-run crop of the other recipes (seed 0: +1.88 "
                      "kNN against +1.39 at the default 20-100%)"),
    "css": Setup(student="resnet10t", peer="resnet10t", image_size=16, stem="small", images=500, epochs=30,
                 batch_size=64, recipe_config={"optimizer": "adamw", "lr": 3e-3, "crop_scale_min": 0.8},
                 why="500 labelled images for 30 epochs at AdamW 3e-3 with crops of 80-100% (train accuracy "
                     "0.94 at the end, was 0.86 at 1e-3 and 50-100%), small stem at 16 px: "
                     "an 8x8 trunk map, 2x2 corner masks"),
    "mokd": Setup(student="resnet10t", peer="vit_tiny_patch16_224", image_size=32, stem="small", images=10_000,
                  epochs=2, batch_size=128, precision="bf16",
                  recipe_config={"out_dim": 4096, "n_local_crops": 2},
                  why="small stem (4x4 last map at 32 px, 2x2 on 16 px local crops) and 4 px ViT patches "
                      "(64 tokens, 16 on a local crop); K = 4096 and 2 local crops for the CPU budget"),
}
# The same, at a budget for one GPU (docs/benchmarks.md, "Peer methods on a GPU"): the papers' sizes where
# a GPU hour allows them.
GPU_SETUPS: dict[str, Setup] = {
    "dogo": replace(SETUPS["dogo"], stem="small", images=60_000, epochs=100, batch_size=256,
                    peer_from_teacher=False, why="both from scratch, 100 epochs of all 60k images"),
    "css": replace(SETUPS["css"], peer="resnet18", image_size=32, images=60_000, epochs=100, batch_size=128,
                   why="all 60k images, 100 epochs, 32 px small stem"),
    "mokd": replace(SETUPS["mokd"], images=60_000, epochs=20, batch_size=256, precision="auto",
                    recipe_config={"out_dim": 65536, "n_local_crops": 8},
                    why="the paper's heads (K = 65536) and 8 local crops, 20 epochs of all 60k images"),
}


@dataclass
class Row:
    label: str
    model: str  # which saved model of the run: student | peer | ensemble
    control: str | None = None
    values: list[float] = field(default_factory=list)
    linear: list[float] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/peers", help="where the runs and the table go")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--recipes", nargs="+", default=None, choices=PEER_RECIPES,
                   help="default: css and dogo on a CPU (mokd's set-up costs hours per run there: "
                        "docs/benchmarks.md), all three with --gpu or --quick")
    p.add_argument("--jobs", type=int, default=1,
                   help="train the recipes in N processes at once, one thread each (2 on a 2-core machine)")
    p.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, not the figures")
    p.add_argument("--probe", type=int, default=0, metavar="STEPS",
                   help="train each run for STEPS steps only and project the table's training time from its "
                        "images/s (probe.md, probe.json); no figures")
    p.add_argument("--workers", type=int, default=None,
                   help="data-loading processes per run (default: 1, with --gpu up to 8: one process "
                        "cannot feed a GPU the augmented views)")
    p.add_argument("--gpu", action="store_true", help="the GPU set-ups (GPU_SETUPS): the papers' sizes")
    p.add_argument("--device", default="auto")
    p.add_argument("--dogo-peer", default=None,
                   help="a run directory of dogo's peer architecture to start the peer from (default: a resnet18 "
                        "this script trains with labels on the same images and epochs)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--eval-bank", type=int, default=10_000)
    p.add_argument("--eval-queries", type=int, default=10_000, help="test images scored (kNN, linear, top-1)")
    p.add_argument("--peer", default=None, metavar="ARCH",
                   help="the peer architecture instead of the set-up's (both arms; the table says so)")
    p.add_argument("--images", type=int, default=None, help="train on N images instead of the set-up's (both arms)")
    p.add_argument("--epochs", type=int, default=None, help="train N epochs instead of the set-up's (both arms)")
    p.add_argument("--set", dest="sets", nargs="*", default=[], metavar="RECIPE.KEY=VALUE",
                   help="override a recipe's config in both arms (e.g. dogo.w_1=10); one --out per setting")
    args = p.parse_args(argv)
    args.overrides = parse_sets(args.sets)
    if args.recipes is None:
        args.recipes = list(PEER_RECIPES) if args.gpu or args.quick else [r for r in PEER_RECIPES if r != "mokd"]
    if args.workers is None:
        args.workers = 0 if args.quick else min(8, os.cpu_count() or 1) if args.gpu else 1
    args.table_seeds = list(args.seeds)  # what a probe projects for
    if args.quick or args.probe:
        args.eval_bank, args.eval_queries, args.seeds = 256, 128, args.seeds[:1]
    return args


def setup_for(args: argparse.Namespace, recipe: str) -> Setup:
    s = (GPU_SETUPS if args.gpu else SETUPS)[recipe]
    s = replace(s, recipe_config={**s.recipe_config, **args.overrides.get(recipe, {})})
    precision = budget_precision(s.precision)
    if precision != s.precision:  # a CPU without oneDNN bf16 kernels: bf16 ~10x slower than fp32
        s = replace(s, precision=precision,
                    why=f"{s.why} [precision auto (fp32 on CPU): oneDNN has no bf16 kernels for this CPU]")
    if args.peer is not None:
        s = replace(s, peer=args.peer, why=f"{s.why} [peer {args.peer} from --peer; the set-up's is {s.peer}]")
    if args.images is not None or args.epochs is not None:  # the table says which budget was the set-up's
        s = replace(s, images=args.images or s.images, epochs=args.epochs or s.epochs,
                    why=f"{s.why} [budget from --images/--epochs; the set-up's is {s.images} × {s.epochs}]")
    if args.quick:  # small images and short runs: the script's path, not its figures
        s = replace(s, images=128, epochs=1, batch_size=32)
    return s


def train_run(args: argparse.Namespace, name: str, **kw: Any) -> Path:
    """Train (or reuse) ``<out>/<name>``; with ``--probe N``, ``<out>/probe/<name>`` for N steps, its rate recorded."""
    out = RunDir(Path(args.out) / "probe" / name if args.probe else Path(args.out) / name)
    cfg: dict[str, Any] = dict(data="fashion-mnist", data_root=args.data_root, out=str(out.path), device=args.device,
                               checkpoint_every=100_000, resume=out.checkpoints_dir.is_dir(), workers=args.workers)
    cfg.update(kw)
    if args.quick:
        cfg["max_steps"] = 2
    if args.probe:
        cfg["max_steps"], cfg["log_every"] = args.probe, max(1, args.probe // 6)
    if not out.is_finished():
        started = time.perf_counter()
        compressor.distill(**cfg)
        print(f"  trained {name} in {time.perf_counter() - started:.0f} s", flush=True)
    if args.probe and name not in {e["run"] for e in args.probed}:  # a pair of one architecture shares its control
        args.probed.append(probe_entry(name, out, images=cfg["max_images"] * cfg["epochs"]))
    return out.path


def probe_entry(name: str, run: RunDir, images: int) -> dict[str, Any]:
    """A probed run's rate (the median images/s of its log windows after the first, which holds the warm-up) and
    the minutes its full budget (``images`` = images × epochs) would take at that rate."""
    windows = [m["ips"] for m in read_metrics(run.metrics_path) if "ips" in m]
    ips = statistics.median(windows[1:] or windows)
    return {"run": name, "ips": ips, "images": images, "minutes": images / ips / 60,
            "per_seed": re.search(r"-s\d+$", name) is not None}


def pair_kwargs(s: Setup, recipe: str, seed: int, peer_weights: str | None) -> dict[str, Any]:
    return dict(student=s.student, peer=s.peer, recipe=recipe, image_size=s.image_size, stem=s.stem,
                peer_image_size=s.peer_image_size, max_images=s.images, epochs=s.epochs, batch_size=s.batch_size,
                precision=s.precision, seed=seed, peer_weights=peer_weights)


def load_trained(run: Path) -> Any:
    """A finished run's components, the recipe with its last checkpoint's weights (compressor.engine.setup)."""
    return setup.load_trained(run)[0]


@torch.no_grad()
def css_top1(run: Path, score: Scorer) -> dict[str, float]:
    """Top-1 of each css network (its branches' ensemble, css's inference) and of the two networks together."""
    from compressor.recipes.css import ensemble_logits

    recipe = load_trained(run).recipe
    _, _, xq, yq = score.images(recipe.student.spec)
    _, _, pq, _ = score.images(recipe.peer.spec)
    probs: dict[str, list[torch.Tensor]] = {"student": [], "peer": []}
    for x, p in zip(xq.split(256), pq.split(256), strict=True):
        probs["student"].append(F.softmax(ensemble_logits(recipe.net_a(x)).float(), 1))
        probs["peer"].append(F.softmax(ensemble_logits(recipe.net_b(p)).float(), 1))
    a, b = torch.cat(probs["student"]), torch.cat(probs["peer"])
    return {"student": _acc(a, yq), "peer": _acc(b, yq), "ensemble": _acc(a + b, yq)}


@torch.no_grad()
def supervised_probs(run: Path, score: Scorer) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities of a ``supervised`` run's classifier on the scored test images, and their labels."""
    recipe = load_trained(run).recipe
    _, _, xq, yq = score.images(recipe.student.spec)
    logits = torch.cat([recipe.classifier(recipe.student(x)).float() for x in xq.split(256)])
    return F.softmax(logits, 1), yq


def supervised_top1(run: Path, score: Scorer) -> float:
    """Top-1 of a ``supervised`` run's classifier on the scored test images."""
    return _acc(*supervised_probs(run, score))


def _acc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    return 100 * float((scores.argmax(1) == labels).float().mean())


@torch.no_grad()
def mokd_target_entropy(run: Path, batch: int = 128) -> dict[str, float]:
    """Entropy (nats) of each EMA teacher's centred, sharpened MLP-head target on the run's own global crops."""
    from compressor.data.loader import ViewDataset, collate_views

    parts = load_trained(run)
    recipe = parts.recipe.train()  # as in training: the teachers see batch statistics
    views = ViewDataset(parts.dataset, recipe.views(), seed=0)
    b = collate_views([views[i] for i in range(min(batch, len(views)))])
    glob = torch.cat([b["g0"], b["g1"]])
    out: dict[str, float] = {"ln_K": math.log(recipe.cfg.out_dim)}
    for key in ("student", "peer"):
        x = glob if key == "student" else glob * recipe.peer_scale + recipe.peer_shift
        logits = recipe.ema_net(key)(x).mlp
        p = F.softmax((logits - recipe.losses[key]["mlp"].center) / float(recipe.teacher_temp), dim=1)
        out[key] = float(-(p * p.clamp_min(1e-30).log()).sum(1).mean())
    return out


def mean_spread(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), (max(values) - min(values)) / 2


def fmt(values: list[float]) -> str:
    if not values:
        return "—"
    m, s = mean_spread(values)
    return f"{m:.2f} ± {s:.2f}" if len(values) > 1 else f"{m:.2f}"


def peer_start(args: argparse.Namespace, s: Setup) -> str:
    """The checkpoint a peer starts from (dogo): ``--dogo-peer``, or the peer architecture trained with labels on
    the same images for the same epochs (the quality benchmark's teacher recipe), clearly stronger than either
    network alone."""
    return args.dogo_peer or str(train_run(
        args, "dogo-peer-start", student=s.peer, recipe="supervised", image_size=s.image_size, stem=s.stem,
        max_images=s.images, epochs=s.epochs, batch_size=s.batch_size, seed=0,
        recipe_config={"lr": 4e-3, "crop_scale_min": 0.8, "label_smoothing": 0.0}))


def run_recipe(args: argparse.Namespace, recipe: str, score: Scorer | None = None) -> dict[str, Any]:
    """Train and score one recipe's rows over the seeds; returns its rows, gains and wall time."""
    started = time.perf_counter()
    args.probed = []  # --probe: the rate of each run this recipe trains (train_run appends; per process)
    score = score or Scorer(args)
    s = setup_for(args, recipe)
    cls = get_recipe(recipe)
    peer_weights = peer_start(args, s) if s.peer_from_teacher else None
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    if recipe == "css":
        for model, arch in (("student", s.student), ("peer", s.peer)):
            alone = Row(f"{arch} ({model}) alone, cross-entropy", model)
            rows += [alone, Row(f"{arch} ({model}) with css", model, control=alone.label)]
        rows.append(Row("css ensemble of both networks", "ensemble"))
        # what online KD can hope to pass between the networks: two networks trained alone, their probabilities
        # averaged (a same-architecture pair: the second one from another seed)
        rows.append(Row(ALONE_ENSEMBLE, "ensemble"))
        by = {r.label: r for r in rows}
        for seed in args.seeds:
            run = train_run(args, f"css-s{seed}", **pair_kwargs(s, "css", seed, None),
                            recipe_config=dict(s.recipe_config))
            top1 = css_top1(run, score)
            # each network alone: the same images, epochs, batch, optimiser, weight decay and crop as css
            css_cfg = RunDir(run).read_config()["recipe_config"]
            ce_config = {k: css_cfg[k] for k in ("optimizer", "lr", "weight_decay", "crop_scale_min",
                                                 "warmup_fraction", "clip_grad")} | {"label_smoothing": 0.0}
            ce_probs: dict[Path, tuple[torch.Tensor, torch.Tensor]] = {}  # a run scored once (a pair of one
            ce_runs: list[Path] = []                                       # architecture shares its control)
            for model, arch in (("student", s.student), ("peer", s.peer)):
                ce = train_run(args, f"ce-{arch}-s{seed}", student=arch, recipe="supervised", image_size=s.image_size,
                               stem=s.stem, max_images=s.images, epochs=s.epochs, batch_size=s.batch_size, seed=seed,
                               recipe_config=ce_config)
                if ce not in ce_probs:
                    ce_probs[ce] = supervised_probs(ce, score)
                ce_runs.append(ce)
                by[f"{arch} ({model}) alone, cross-entropy"].values.append(_acc(*ce_probs[ce]))
                by[f"{arch} ({model}) alone, cross-entropy"].runs.append(str(ce))
                by[f"{arch} ({model}) with css"].values.append(top1[model])
                by[f"{arch} ({model}) with css"].runs.append(str(run))
            rows[-2].values.append(top1["ensemble"])
            rows[-2].runs.append(str(run))
            if ce_runs[0] == ce_runs[1]:  # a same-architecture pair: its second network alone from another seed
                other = seed + ALONE_SEED_OFFSET
                ce_runs[1] = train_run(args, f"ce-{s.peer}-s{other}", student=s.peer, recipe="supervised",
                                       image_size=s.image_size, stem=s.stem, max_images=s.images, epochs=s.epochs,
                                       batch_size=s.batch_size, seed=other, recipe_config=ce_config)
                ce_probs[ce_runs[1]] = supervised_probs(ce_runs[1], score)
            (pa, yq), (pb, _) = (ce_probs[r] for r in ce_runs)
            rows[-1].values.append(_acc(pa + pb, yq))
            rows[-1].runs += [str(r) for r in ce_runs]
    else:
        for model, arch in (("student", s.student), ("peer", s.peer)):
            alone = Row(f"{arch} ({model}) alone ({recipe} control)", model)
            rows += [alone, Row(f"{arch} ({model}) with {recipe}", model, control=alone.label)]
        entropies: list[dict[str, float]] = []
        for seed in args.seeds:
            kw = pair_kwargs(s, recipe, seed, peer_weights)
            runs = {"control": train_run(args, f"{recipe}-control-s{seed}", **kw,
                                         recipe_config={**s.recipe_config, **cls.control_overrides}),
                    "kd": train_run(args, f"{recipe}-s{seed}", **kw, recipe_config=dict(s.recipe_config))}
            for r in rows:
                run = runs["kd" if r.control else "control"]
                enc = load_encoder(run, r.model)
                knn, lin = score(enc, enc.spec)
                r.values.append(knn)
                r.linear.append(lin)
                r.runs.append(str(run))
            if recipe == "mokd":
                entropies.append({arm: mokd_target_entropy(run) for arm, run in runs.items()})
        if entropies:
            extra["target_entropy"] = entropies
    minutes = (time.perf_counter() - started) / 60
    by = {r.label: r for r in rows}
    gains: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.control and r.values and by[r.control].values:
            ctrl = by[r.control]
            gains[r.model] = {"gain": statistics.mean(r.values) - statistics.mean(ctrl.values),
                              "spread": max(mean_spread(r.values)[1], mean_spread(ctrl.values)[1]),
                              "paired": [a - b for a, b in zip(r.values, ctrl.values, strict=True)]}
    judged = gains["student"] if recipe != "css" else min(gains.values(), key=lambda g: g["gain"])
    if args.probe:
        extra["probe"] = list(args.probed)
    return {"setup": s, "rows": rows, "gains": gains, "judged": judged, "minutes": minutes, **extra}


def projected_minutes(probed: list[dict[str, Any]], seeds: int) -> float:
    """Training minutes of the whole table: each per-seed run × ``seeds``, a shared run (dogo's peer start) once."""
    return sum(e["minutes"] * (seeds if e["per_seed"] else 1) for e in probed)


def render_probe(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    n = len(args.table_seeds)
    lines = [f"Probe: each run of the table trained for {args.probe} steps (seed {args.seeds[0]}); its images/s is the "
             f"median of its log windows after the first. Projected: training only, for {n} seed(s), scoring not "
             "included.", "", "| recipe | run | images/s | images of the full run | projected minutes |",
             "|---|---|---|---|---|"]
    total = 0.0
    for recipe, res in results.items():
        for e in res["probe"]:
            lines.append(f"| {recipe} | {e['run']} | {e['ips']:.0f} | {e['images']:,} | {e['minutes']:.1f}"
                         + (f" × {n} seeds |" if e["per_seed"] and n > 1 else " |"))
        minutes = projected_minutes(res["probe"], n)
        total += minutes
        lines.append(f"| {recipe} | **the table's runs** | | | **{minutes:.1f}** |")
    lines += ["", f"All recipes: **{total:.1f} min** of training "
                  f"(`python benchmarks/peers.py {' '.join(sys.argv[1:])}`)."]
    return "\n".join(lines) + "\n"


def write_probe(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> Path:
    out = Path(args.out)
    n = len(args.table_seeds)
    (out / "probe.md").write_text(render_probe(results, args))
    (out / "probe.json").write_text(json.dumps(
        {r: {"runs": res["probe"], "projected_minutes": projected_minutes(res["probe"], n), "seeds": n}
         for r, res in results.items()}, indent=2) + "\n")
    return out / "probe.md"


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"Fashion-MNIST, seeds {args.seeds}; ± = half the spread over seeds; gain = row − its control "
             f"(mean), counted when larger than the larger half-spread of the two.",
             f"Linear top-1: {describe_probe(probe_settings())}.", ""]
    for recipe, res in results.items():
        s: Setup = res["setup"]
        lines += [f"### {recipe} ({res['minutes']:.1f} min)", "",
                  f"{s.student} + {s.peer}, {s.image_size} px, stem {s.stem}, {s.images} images × {s.epochs} "
                  f"epochs, batch {s.batch_size}, precision {s.precision}"
                  + (f", recipe {s.recipe_config}" if s.recipe_config else "") + f". {s.why}.", ""]
        metric = "top-1" if recipe == "css" else "kNN top-1"
        lines += [f"| row | {metric} | linear top-1 | gain over its control |", "|---|---|---|---|"]
        for r in res["rows"]:
            g = res["gains"].get(r.model) if r.control else None
            gain = f"{g['gain']:+.2f} (spread {g['spread']:.2f})" if g else ""
            lines.append(f"| {r.label} | {fmt(r.values)} | {fmt(r.linear)} | {gain} |")
        for i, e in enumerate(res.get("target_entropy", [])):
            lines.append("")
            lines.append(f"seed {args.seeds[i]}: EMA teachers' MLP-head target entropy (ln K = "
                         f"{e['kd']['ln_K']:.2f}): " + "; ".join(
                             f"{arm}: {e[arm]['student']:.2f} (CNN), {e[arm]['peer']:.2f} (ViT)" for arm in e))
        j = res["judged"]
        met = j["gain"] >= 1.5 and j["gain"] > j["spread"]
        lines += ["", f"Judged gain {j['gain']:+.2f} (spread {j['spread']:.2f}): target +1.5 beyond the spread "
                      f"{'met' if met else 'missed'}.", ""]
    return "\n".join(lines)


def write_tables(results: dict[str, dict[str, Any]], args: argparse.Namespace, started: float) -> Path:
    out = Path(args.out)
    text = render(results, args) + f"\nWall time {(time.perf_counter() - started) / 60:.1f} min " \
                                   f"(`python benchmarks/peers.py {' '.join(sys.argv[1:])}`).\n"
    (out / "peers.md").write_text(text)
    (out / "peers.json").write_text(json.dumps(
        {r: {**res["judged"], "minutes": res["minutes"], "networks": res["gains"],
             **({"target_entropy": res["target_entropy"]} if "target_entropy" in res else {})}
         for r, res in results.items()}, indent=2) + "\n")
    return out / "peers.md"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def write(results: dict[str, dict[str, Any]]) -> Path:
        return write_probe(results, args) if args.probe else write_tables(results, args, started)

    results: dict[str, dict[str, Any]] = {}
    if args.jobs > 1:  # one process per recipe, one thread each (on two cores: css and dogo side by side)
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=torch.set_num_threads, initargs=(1,)) as pool:
            futures = {r: pool.submit(run_recipe, args, r) for r in args.recipes}
            results = {r: f.result() for r, f in futures.items()}
        table = write(results)
    else:
        score = Scorer(args)
        for recipe in args.recipes:  # the table so far, after each recipe (a probe stopped by a timeout keeps it)
            results[recipe] = run_recipe(args, recipe, score)
            table = write(results)
    print(table.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
