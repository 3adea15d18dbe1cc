"""Where should the short-run preset stop? A teacher→student recipe and its control under both presets.

    python benchmarks/preset_boundary.py --out runs/boundary                       # 1,000 and 3,000 steps
    python benchmarks/preset_boundary.py --out runs/b --steps 1000 3000 --seeds 0 1 --recipe seed
    python benchmarks/preset_boundary.py --out /tmp/b --quick                      # checks the script (CI)

Runs under ``short_run_steps`` (5,000) train with the short-run preset (docs/distill.md, "Short runs"),
longer ones with the papers' settings: a cliff at 5,000 steps that no measurement placed. This script
trains ``--recipe`` (feature-kd) and its control, the student alone with simclr, for each ``--steps``
count under ``preset=short`` and ``preset=paper`` with each seed, on the protocol of
``benchmarks/quality.py`` (its teacher, data subset, student, batch and scorer, imported from it; every
quality.py option not named here, e.g. ``--teacher RUN``, ``--images``, ``--student``, is passed on to it).
It writes ``boundary.md`` and ``boundary.json``: per length and preset, kNN and linear top-1 of both, and
the recipe's gain over the control (per seed, then mean ± half the spread over the seeds). Where the short
preset's gain stops exceeding the paper's is where the boundary belongs. Runs in ``--out`` are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from common import Scorer, parse_protocol, summarise, teacher_run, train_run

from compressor.eval.linear import describe_probe, probe_settings
from compressor.models.saved import load_encoder
from compressor.recipes import get_recipe, list_recipes

PRESETS = ("short", "paper")


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, argparse.Namespace]:
    """This script's options, and quality.py's (the protocol) parsed from the rest of ``argv``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/preset-boundary", help="where the runs and the table go")
    p.add_argument("--steps", type=int, nargs="+", default=[1000, 3000], help="run lengths (optimiser steps)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--recipe", default="feature-kd", help="the teacher→student recipe measured")
    p.add_argument("--quick", action="store_true", help="tiny budgets: checks the script, not the figures")
    args, rest = p.parse_known_args(argv)
    protocol = parse_protocol(["--out", args.out, "--seeds", *map(str, args.seeds), *rest,
                                   *(["--quick"] if args.quick else [])])
    if args.quick:
        args.seeds = protocol.seeds
    if get_recipe(args.recipe).kind != "teacher→student":
        raise SystemExit(f"--recipe {args.recipe} is not a teacher→student recipe; pick one of "
                         + ", ".join(r.name for r in list_recipes() if r.kind == "teacher→student"))
    return args, protocol


def spread(values: list[float]) -> dict[str, float]:
    """Mean and half the spread (max − min) over the seeds."""
    return {"mean": statistics.mean(values), "half_spread": (max(values) - min(values)) / 2}


def measure(args: argparse.Namespace, protocol: argparse.Namespace) -> dict[str, Any]:
    """Train (or reuse) and score every run; the results keyed by length, then preset."""
    teacher = teacher_run(protocol)
    score = Scorer(protocol)
    results: dict[str, Any] = {}
    for steps in args.steps:
        for preset in PRESETS:
            scores: dict[str, list[tuple[float, float]]] = {"control": [], "recipe": []}
            for seed in args.seeds:
                for role, recipe, extra in (("control", "simclr", {}),
                                            ("recipe", args.recipe, {"teacher": teacher,
                                                                     "teacher_weights": protocol.teacher_weights})):
                    config = {**protocol.overrides.get(recipe, {}), "preset": preset}
                    run = train_run(protocol, f"{recipe}-{steps}steps-{preset}-s{seed}", seed=seed,
                                            student=protocol.student, recipe=recipe, epochs=None, max_steps=steps,
                                            recipe_config=config, **extra)
                    enc = load_encoder(run)
                    scores[role].append(score(enc, enc.spec))
            gains = [r[0] - c[0] for r, c in zip(scores["recipe"], scores["control"], strict=True)]
            linear_gains = [r[1] - c[1] for r, c in zip(scores["recipe"], scores["control"], strict=True)]
            results.setdefault(str(steps), {})[preset] = {
                "control_knn": [c[0] for c in scores["control"]], "recipe_knn": [r[0] for r in scores["recipe"]],
                "control_linear": [c[1] for c in scores["control"]], "recipe_linear": [r[1] for r in scores["recipe"]],
                "knn_gain": spread(gains), "linear_gain": spread(linear_gains)}
            print(f"{steps} steps, preset {preset}: kNN gain {gains}", flush=True)
    return results


def table(args: argparse.Namespace, protocol: argparse.Namespace, results: dict[str, Any]) -> str:
    lines = [f"{args.recipe} against the student alone (simclr), `{protocol.student}` at {protocol.image_size} px, "
             f"a {protocol.images}-image Fashion-MNIST subset, batch {protocol.batch_size}, seeds {args.seeds}; "
             "the gain is per seed, then mean ± half the spread.", f"Linear: {describe_probe(probe_settings())}.", "",
             "| steps | preset | control kNN | recipe kNN | kNN gain | control linear | recipe linear | linear gain |",
             "|---|---|---|---|---|---|---|---|"]
    for steps, by_preset in results.items():
        for preset, r in by_preset.items():
            k, lin = r["knn_gain"], r["linear_gain"]
            cells = [summarise(r[key]) for key in ("control_knn", "recipe_knn", "control_linear",
                                                            "recipe_linear")]
            lines.append(f"| {steps} | {preset} | {cells[0]} | {cells[1]} | "
                         f"**{k['mean']:+.2f} ± {k['half_spread']:.2f}** | {cells[2]} | {cells[3]} | "
                         f"{lin['mean']:+.2f} ± {lin['half_spread']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args, protocol = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = measure(args, protocol)
    minutes = (time.perf_counter() - started) / 60
    text = table(args, protocol, results) + (f"\nWall time {minutes:.1f} min "
                                             f"(`python benchmarks/preset_boundary.py {' '.join(sys.argv[1:])}`).\n")
    (out / "boundary.md").write_text(text)
    (out / "boundary.json").write_text(json.dumps({"recipe": args.recipe, "steps": args.steps, "seeds": args.seeds,
                                                   "quick": args.quick, "minutes": minutes, "probe": probe_settings(),
                                                   "results": results},
                                                  indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
