"""Are a MOKD run's DINO heads still in the uniform state? Read from its last checkpoint.

    python benchmarks/dino_heads.py runs/quality5/mokd-control-s0 [--batch 128]

DINO's cross-entropy ``H(softmax((t − c)/τ_t), softmax(s/τ_s))`` has a fixed point where every image
gets nearly the same logits: the centre ``c`` then removes what they share, the sharpened target is
uniform and the gradient ``softmax(s/τ_s) − target`` vanishes, so the loss sits at ln K. This prints,
for each model's student and EMA teacher and each head (the MLP head and the T-Head), on one batch of
the run's own global crops (two per image): the spread of the logits across the crops (std over the
batch, averaged over the K outputs; the logits of a weight-normalised last layer on a normalised
bottleneck lie in [−1, 1]), the entropy of the distribution that side brings to the loss (an EMA
teacher: the centred target sharpened by the run's final τ_t; a student: ``softmax(s/τ_s)``), and how
many of the K prototypes win a crop. Entropies near ln K and a spread far below the logits' range
mean the head still outputs one distribution for every image.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from compressor.data.loader import ViewDataset, collate_views
from compressor.engine.setup import load_trained
from compressor.errors import CompressorError


def entropy(p: torch.Tensor) -> float:
    """Mean entropy (nats) of the rows of ``p``."""
    return float(-(p * p.clamp_min(1e-30).log()).sum(1).mean())


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="a mokd run directory (config.yaml and a checkpoint)")
    ap.add_argument("--batch", type=int, default=128, help="images in the batch (default 128)")
    args = ap.parse_args(argv)
    parts, state, path = load_trained(args.run)
    recipe = parts.recipe
    if recipe.name != "mokd":
        raise SystemExit(f"{args.run} is a {recipe.name} run; this reads mokd's DINO heads")
    data = ViewDataset(parts.dataset, recipe.views(), seed=0)
    batch = collate_views([data[i] for i in range(min(args.batch, len(parts.dataset)))])
    glob = torch.cat([batch["g0"], batch["g1"]])
    k = recipe.cfg.out_dim
    tau_t = float(recipe.teacher_temp)
    print(f"{path} (step {state['step']}): K = {k}, ln K = {math.log(k):.3f}, τ_t = {tau_t:.3f}")
    print(f"{'model':8s} {'net':8s} {'head':6s} {'logit spread':>12s} {'mean |logit|':>12s} "
          f"{'entropy':>9s} {'winners':>7s}")
    recipe.train()  # the teachers run in train mode during training (batch statistics)
    for key in ("student", "peer"):
        x = glob if key == "student" else glob * recipe.peer_scale + recipe.peer_shift
        for which, net in (("student", recipe.net(key)), ("teacher", recipe.ema_net(key))):
            out = net(x)
            for head in ("mlp", "thead"):
                logits = getattr(out, head)
                p = F.softmax((logits - recipe.losses[key][head].center) / tau_t, dim=1) if which == "teacher" \
                    else F.softmax(logits / recipe.cfg.student_temp, dim=1)
                print(f"{key:8s} {which:8s} {head:6s} {float(logits.std(0).mean()):12.4f} "
                      f"{float(logits.abs().mean()):12.4f} {entropy(p):9.3f} {len(set(p.argmax(1).tolist())):7d}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CompressorError as err:  # e.g. a checkpoint of another config: one line, no traceback
        sys.exit(f"error: {err}")
