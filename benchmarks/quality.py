"""Does distillation work? Every recipe against the same student trained alone, at equal budget.

    python benchmarks/quality.py --out runs/quality            # the full table (CPU, ~1 h on 2 cores)
    python benchmarks/quality.py --out runs/quality-ci --quick  # a minute: checks the script end to end

Fashion-MNIST, one student architecture for every row, the same epochs, batch and training subset:

* the teacher (``--teacher RUN_DIR`` or one this script trains with labels: ``--teacher-arch``,
  ``supervised`` recipe, on the whole training split) and raw pixels (the floor);
* each architecture of the table at initialisation (random weights, seed 0): what a run adds to the
  network before any training (a randomly initialised CNN already scores well above chance);
* the student alone (``simclr``, the control) and the student distilled by every teacher→student
  recipe of the registry (mvmr, feature-kd, seed, moma, ...);
* peer recipes (dogo, mokd): the student and its peer trained together against the same recipe
  with its distillation switched off (``Recipe.control_overrides``: each model alone);
* supervised peer recipes (css): both networks against each trained alone with cross-entropy.

Each row is trained for ``--seeds`` seeds and scored by weighted kNN (k=20, T=0.07) and a linear
probe on the frozen embedding: bank = the first ``--eval-bank`` training images, queries = the
first ``--eval-queries`` test images. The table gives the mean and the spread (max − min) over
seeds, the gain over the control and the share of the teacher's kNN. Runs already present in
``--out`` are reused, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compressor.data.datasets import build_dataset
from compressor.engine.config import TrainConfig
from compressor.engine.cpu_bf16 import cpu_bf16_is_native
from compressor.engine.trainer import train
from compressor.eval.embed import embed_dataset
from compressor.eval.knn import knn_top1
from compressor.eval.linear import linear_probe_top1
from compressor.models.encoder import InputSpec
from compressor.models.saved import load_encoder
from compressor.models.students import build_student
from compressor.recipes import list_recipes
from compressor.rundir import RunDir

# Second model of the pair recipes: a larger peer (``--peer``); MOKD pairs the CNN with a ViT.
VIT_PEER = "vit_tiny_patch16_224"
EMBED_BATCH = 256  # embed_dataset's default: the same batches give bit-identical embeddings
# CPU budget only: MOKD's ImageNet head width (65,536 prototypes) and 8 local crops would take most of
# the hour; the table says so. Every other recipe runs with its defaults.
BUDGET_OVERRIDES: dict[str, dict[str, Any]] = {"mokd": {"out_dim": 4096, "n_local_crops": 2}}
# CPU budget only: MOKD's runs (and its controls) train under bf16 autocast, 1.3x faster on a CPU with bf16
# arithmetic (two networks' MLP heads and T-Heads are mostly matmuls); every other row trains in fp32 (bf16 gains
# ~1.1x on their convs). Where the CPU emulates bf16, fp32: budget_precision.
BUDGET_PRECISION: dict[str, str] = {"mokd": "bf16"}


def budget_precision(precision: str) -> str:
    """A CPU budget's ``bf16`` where this CPU has bf16 arithmetic; elsewhere bf16 is emulated, ~10x slower than fp32
    (docs/distill.md), and the run trains at ``auto`` (fp32 on a CPU, bf16 on CUDA)."""
    return "auto" if precision == "bf16" and not cpu_bf16_is_native() else precision


@dataclass
class Row:
    """One table row: a run (or a pair's model) scored on each seed, and the row it is compared with."""

    label: str
    group: str
    model: str = "student"  # which saved model of the run is scored (student | peer)
    control: str | None = None
    runs: list[Path] = field(default_factory=list)
    knn: list[float] = field(default_factory=list)
    linear: list[float] = field(default_factory=list)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/quality", help="where the runs and the table go")
    p.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, not the figures")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--student", default="resnet10t")
    p.add_argument("--peer", default="resnet18d",
                   help="the larger network of the CNN pair recipes (dogo, css); resnet18d, not resnet18: at 32 px "
                        "an untrained resnet18 sees only a corner of the image (docs/benchmarks.md)")
    p.add_argument("--stem", default="imagenet", help="the student's stem (auto | imagenet | small)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--images", type=int, default=10_000, help="training subset for the students")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--teacher", default=None, help="a run directory (or teacher name) to distil from")
    p.add_argument("--teacher-weights", default=None)
    p.add_argument("--teacher-arch", default="resnet18")
    p.add_argument("--teacher-epochs", type=int, default=2)
    p.add_argument("--eval-bank", type=int, default=10_000)
    p.add_argument("--eval-queries", type=int, default=5_000)
    p.add_argument("--recipes", nargs="*", default=None, help="only these recipes (default: all)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--set", dest="sets", nargs="*", default=[], metavar="RECIPE.KEY=VALUE",
                   help="override a recipe's config (e.g. seed.lr=0.1): its rows and a peer recipe's control; "
                        "the simclr and cross-entropy controls keep their defaults; one --out per setting")
    args = p.parse_args(argv)
    args.overrides = parse_sets(args.sets)
    if args.quick:
        args.images, args.epochs, args.teacher_epochs = 128, 1, 1
        args.eval_bank, args.eval_queries, args.seeds = 256, 128, args.seeds[:1]
    return args


def parse_sets(sets: list[str]) -> dict[str, dict[str, str]]:
    """``["seed.lr=0.1", "seed.optimizer=adamw"]`` → ``{"seed": {"lr": "0.1", "optimizer": "adamw"}}``."""
    out: dict[str, dict[str, str]] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        recipe, dot, field_name = key.partition(".")
        if not (sep and dot and recipe and field_name):
            raise SystemExit(f"--set {item!r}: write RECIPE.KEY=VALUE, e.g. seed.lr=0.1")
        out.setdefault(recipe, {})[field_name] = value
    return out


def train_run(args: argparse.Namespace, name: str, **kw: Any) -> Path:
    """Train (or reuse) ``<out>/<name>``; budgets, data and seed come from ``args`` unless given."""
    out = Path(args.out) / name
    if RunDir(out).is_finished():
        return out
    cfg = dict(data="fashion-mnist", data_root=args.data_root, max_images=args.images, epochs=args.epochs,
               batch_size=args.batch_size, image_size=args.image_size, stem=args.stem, out=str(out),
               checkpoint_every=10_000, resume=RunDir(out).checkpoints_dir.is_dir(), workers=0 if args.quick else 1)
    cfg.update(kw)
    if args.quick:
        cfg["max_steps"] = 2
    started = time.perf_counter()
    train(TrainConfig(**cfg), progress=False)
    print(f"  trained {name} in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def teacher_run(args: argparse.Namespace) -> str:
    if args.teacher:
        return args.teacher
    # A supervised ResNet-18 with timm's own stem (fast on CPU) on the whole training split; lighter
    # augmentation and no label smoothing converge faster in a couple of epochs.
    return str(train_run(args, "teacher", student=args.teacher_arch, recipe="supervised", max_images=None,
                         epochs=args.teacher_epochs, batch_size=256, stem="imagenet",
                         recipe_config={"lr": 4e-3, "crop_scale_min": 0.8, "label_smoothing": 0.0}))


def build_rows(args: argparse.Namespace, teacher: str) -> tuple[list[Row], dict[tuple[str, int], dict]]:
    """The rows and, per (row label, seed), the keyword arguments of its training run."""
    wanted = set(args.recipes) if args.recipes else None
    rows: list[Row] = [Row("student alone (simclr)", "teacher→student")]
    plans: dict[tuple[str, int], dict] = {}
    for seed in args.seeds:
        plans[(rows[0].label, seed)] = dict(name=f"alone-simclr-s{seed}", student=args.student, recipe="simclr")
    for r in list_recipes():
        if wanted is not None and r.name not in wanted:
            continue
        if r.kind == "teacher→student":
            row = Row(f"{r.name} from the teacher", r.kind, control=rows[0].label)
            rows.append(row)
            for seed in args.seeds:
                plans[(row.label, seed)] = dict(name=f"{r.name}-s{seed}", student=args.student, recipe=r.name,
                                                teacher=teacher, teacher_weights=args.teacher_weights,
                                                recipe_config=dict(args.overrides.get(r.name, {})))
        elif r.kind in ("peer", "supervised peer"):
            peer = VIT_PEER if r.name == "mokd" else args.peer
            pair: dict[str, Any] = {"student": args.student, "peer": peer, "recipe": r.name,
                                    "precision": budget_precision(BUDGET_PRECISION.get(r.name, "auto"))}
            budget = {**BUDGET_OVERRIDES.get(r.name, {}), **args.overrides.get(r.name, {})}
            for model, arch in (("student", args.student), ("peer", peer)):
                alone = Row(f"{arch} alone ({r.name} control)", r.kind, model=model)
                kd = Row(f"{arch} with {r.name}", r.kind, model=model, control=alone.label)
                rows += [alone, kd]
                for seed in args.seeds:
                    plans[(kd.label, seed)] = dict(name=f"{r.name}-s{seed}", **pair, recipe_config=dict(budget))
                    if r.kind == "peer":
                        plans[(alone.label, seed)] = dict(name=f"{r.name}-control-s{seed}", **pair,
                                                          recipe_config={**budget, **r.control_overrides})
                    else:  # each network alone with cross-entropy
                        plans[(alone.label, seed)] = dict(name=f"supervised-{model}-{arch}-s{seed}", student=arch,
                                                          recipe="supervised")
                        alone.model = "student"
    return rows, plans


def architectures(args: argparse.Namespace, plans: dict[tuple[str, int], dict]) -> list[str]:
    """The student and every peer architecture the planned runs train, in order of first use."""
    named = [args.student, *(plan[k] for plan in plans.values() for k in ("student", "peer") if plan.get(k))]
    return list(dict.fromkeys(named))


class Scorer:
    """kNN and linear top-1 on fixed bank/query subsets.

    The eval-transformed images are computed once per input spec and kept in memory (10k + 5k images
    at 32 px: 184 MB), so a model's scoring is its forward passes alone; the batches and the order are
    ``embed_dataset``'s, so the embeddings are the same as embedding the data sets directly.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.bank = build_dataset("fashion-mnist", "train", args.data_root)
        self.queries = build_dataset("fashion-mnist", "val", args.data_root)
        self.n_bank, self.n_queries = args.eval_bank, args.eval_queries
        self._images: dict[InputSpec, tuple[torch.Tensor, ...]] = {}

    def images(self, spec: InputSpec) -> tuple[torch.Tensor, ...]:
        """Bank images, bank labels, query images, query labels under ``spec``'s eval transform."""
        if spec not in self._images:
            pixels = torch.nn.Identity()
            self._images[spec] = (*embed_dataset(pixels, spec, self.bank, limit=self.n_bank),
                                  *embed_dataset(pixels, spec, self.queries, limit=self.n_queries))
        return self._images[spec]

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, spec: InputSpec) -> tuple[float, float]:
        ib, yb, iq, yq = self.images(spec)
        model.eval()
        xb, xq = (torch.cat([model(x).float() for x in images.split(EMBED_BATCH)]) for images in (ib, iq))
        return 100 * knn_top1(xb, yb, xq, yq, k=20, t=0.07), 100 * linear_probe_top1(xb, yb, xq, yq)


def summarise(values: list[float]) -> str:
    if not values:
        return "—"
    spread = max(values) - min(values)
    return f"{statistics.mean(values):.2f} ± {spread / 2:.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def table(rows: list[Row], reference: dict[str, float], args: argparse.Namespace) -> str:
    by_label = {r.label: r for r in rows}
    lines = [f"Fashion-MNIST, student `{args.student}` (stem {args.stem}) at {args.image_size} px, "
             f"{args.epochs} epochs of a {args.images}-image subset, batch {args.batch_size}, seeds {args.seeds}; "
             f"kNN (k=20, T=0.07) and linear probe, bank {args.eval_bank} train images, "
             f"{args.eval_queries} test queries. ± = half the spread over seeds.", "",
             "| row | kNN top-1 | linear top-1 | kNN vs control | % of teacher kNN |", "|---|---|---|---|---|"]
    for name, value in reference.items():
        lines.append(f"| {name} | {value['knn']:.2f} | {value['linear']:.2f} | | |")  # type: ignore[index]
    teacher_knn = reference["teacher"]["knn"]  # type: ignore[index]
    for name, over in args.overrides.items():
        lines.insert(1, f"({name} distilled rows with {over}.)")
    for name, over in BUDGET_OVERRIDES.items():
        if any(r.label.endswith(f"with {name}") for r in rows):
            used = budget_precision(BUDGET_PRECISION.get(name, "auto"))
            precision = f", {used} autocast (and its control)" if used != "auto" else ""
            lines.insert(1, f"({name} with {over}{precision} for the CPU budget.)")
    for r in rows:
        gain = ""
        if r.control and r.knn and by_label[r.control].knn:
            gain = f"{statistics.mean(r.knn) - statistics.mean(by_label[r.control].knn):+.2f}"
        share = f"{100 * statistics.mean(r.knn) / teacher_knn:.1f}%" if r.knn and r.group == "teacher→student" \
            else ""
        lines.append(f"| {r.label} | {summarise(r.knn)} | {summarise(r.linear)} | {gain} | {share} |")
    return "\n".join(lines) + "\n"


def write_results(out: Path, rows: list[Row], reference: dict[str, Any], args: argparse.Namespace,
                  started: float) -> None:
    text = table(rows, reference, args)
    minutes = (time.perf_counter() - started) / 60
    text += f"\nWall time {minutes:.1f} min (`python benchmarks/quality.py {' '.join(sys.argv[1:])}`).\n"
    (out / "quality.md").write_text(text)
    (out / "quality.json").write_text(json.dumps({
        "args": vars(args), "reference": reference, "minutes": minutes,
        "rows": [{"label": r.label, "group": r.group, "control": r.control, "knn": r.knn, "linear": r.linear,
                  "runs": [str(p) for p in r.runs]} for r in rows]}, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    teacher = teacher_run(args)
    rows, plans = build_rows(args, teacher)
    score = Scorer(args)
    reference: dict[str, Any] = {}
    t_enc = load_encoder(teacher) if Path(teacher).is_dir() else None
    if t_enc is not None:
        k, lin = score(t_enc, t_enc.spec)
        reference["teacher"] = {"knn": k, "linear": lin}
    k, lin = score(torch.nn.Flatten(), InputSpec(args.image_size, (0.5,) * 3, (0.5,) * 3))
    reference["raw pixels"] = {"knn": k, "linear": lin}
    for arch in architectures(args, plans):
        torch.manual_seed(0)
        enc = build_student(arch, args.image_size, stem=args.stem)
        k, lin = score(enc, enc.spec)
        reference[f"{arch} at initialisation"] = {"knn": k, "linear": lin}
    print(", ".join(f"{name} {value['knn']:.2f}" for name, value in reference.items()), flush=True)
    scored: dict[tuple[str, str], tuple[float, float]] = {}
    for i, r in enumerate(rows):
        for seed in args.seeds:
            plan = dict(plans[(r.label, seed)])
            run = train_run(args, plan.pop("name"), seed=seed, **plan)
            key = (str(run), r.model)
            if key not in scored:
                enc = load_encoder(run, r.model)
                scored[key] = score(enc, enc.spec)
            r.runs.append(run)
            r.knn.append(scored[key][0])
            r.linear.append(scored[key][1])
        print(f"{r.label}: kNN {summarise(r.knn)}, linear {summarise(r.linear)}", flush=True)
        write_results(out, rows[: i + 1], reference, args, started)  # a stopped benchmark keeps its rows
    print((out / "quality.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
