"""What the benchmark scripts share: the quality protocol (options, runs, scorer) and the deployment stand-in.

The scripts in this folder run as ``python benchmarks/<name>.py`` (Python puts this folder first on the path, so
``from common import ...`` needs no ``sys.path`` edit) and use the library through its public API
(``compressor.distill``, ``compressor.export``) and documented modules (``compressor.eval``,
``compressor.models.saved``, ``compressor.data.datasets``); what more than one script needs lives here, once.

* The quality protocol (quality.py, preset_boundary.py, peers.py): :func:`parse_protocol`, :func:`train_run`,
  :func:`teacher_run`, :class:`Scorer` (weighted kNN and the linear probe on fixed bank/query subsets),
  :func:`summarise` (mean ± half the spread over seeds), :func:`budget_precision`, :func:`parse_sets`.
* The deployment stand-in (cpu_latency.py, deploy_latency.py, compression.py): :func:`build_run` (a timm network
  trained briefly with labels), :func:`int8_peak` (this CPU's INT8 ceiling) and plain ONNX Runtime timing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

import compressor
from compressor.data.datasets import build_dataset
from compressor.engine.cpu_bf16 import cpu_bf16_is_native
from compressor.eval.embed import embed_dataset
from compressor.eval.knn import knn_top1
from compressor.eval.linear import linear_probe, probe_settings
from compressor.models.encoder import InputSpec
from compressor.rundir import RunDir

EMBED_BATCH = 256  # embed_dataset's default: the same batches give bit-identical embeddings


def budget_precision(precision: str) -> str:
    """A CPU budget's ``bf16`` where this CPU has bf16 arithmetic; elsewhere bf16 is emulated, ~10x slower than fp32
    (docs/distill.md), and the run trains at ``auto`` (fp32 on a CPU, bf16 on CUDA)."""
    return "auto" if precision == "bf16" and not cpu_bf16_is_native() else precision


def parse_protocol(argv: list[str] | None = None, description: str | None = None) -> argparse.Namespace:
    """The quality protocol's options (quality.py's command line; preset_boundary.py passes its rest on)."""
    p = argparse.ArgumentParser(description=description)
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
    compressor.distill(**cfg)
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


class Score(NamedTuple):
    """A model's kNN and linear top-1 (percent) and the record of the linear probe (its chosen C)."""

    knn: float
    linear: float
    probe: dict[str, Any]


class Scorer:
    """kNN and linear top-1 on fixed bank/query subsets; ``probe``: the linear probe's protocol (for captions).

    The eval-transformed images are computed once per input spec and kept in memory (10k + 5k images
    at 32 px: 184 MB), so a model's scoring is its forward passes alone; the batches and the order are
    ``embed_dataset``'s, so the embeddings are the same as embedding the data sets directly.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.bank = build_dataset("fashion-mnist", "train", args.data_root)
        self.queries = build_dataset("fashion-mnist", "val", args.data_root)
        self.n_bank, self.n_queries = args.eval_bank, args.eval_queries
        self._images: dict[InputSpec, tuple[torch.Tensor, ...]] = {}
        self.probe = probe_settings()  # the papers' probe: L-BFGS logistic regression, C swept on a split of the bank

    def images(self, spec: InputSpec) -> tuple[torch.Tensor, ...]:
        """Bank images, bank labels, query images, query labels under ``spec``'s eval transform."""
        if spec not in self._images:
            pixels = torch.nn.Identity()
            self._images[spec] = (*embed_dataset(pixels, spec, self.bank, limit=self.n_bank),
                                  *embed_dataset(pixels, spec, self.queries, limit=self.n_queries))
        return self._images[spec]

    @torch.no_grad()
    def score(self, model: torch.nn.Module, spec: InputSpec) -> Score:
        """kNN and linear top-1 of ``model`` with the linear probe's record."""
        ib, yb, iq, yq = self.images(spec)
        model.eval()
        xb, xq = (torch.cat([model(x).float() for x in images.split(EMBED_BATCH)]) for images in (ib, iq))
        lin = linear_probe(xb, yb, xq, yq, kind=self.probe["kind"])
        return Score(100 * knn_top1(xb, yb, xq, yq, k=20, t=0.07), 100 * lin.top1, lin.record)

    def __call__(self, model: torch.nn.Module, spec: InputSpec) -> tuple[float, float]:
        """``(kNN top-1, linear top-1)`` in percent."""
        s = self.score(model, spec)
        return s.knn, s.linear


def summarise(values: list[float]) -> str:
    if not values:
        return "—"
    spread = max(values) - min(values)
    return f"{statistics.mean(values):.2f} ± {spread / 2:.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def build_run(run: Path, data: str, *, steps: int = 300, train_size: int = 64, batch: int = 32,
              arch: str = "resnet50") -> None:
    """``arch`` (ResNet-50 here; deploy_latency.py passes others) trained briefly on ``data``: supervised,
    ``steps`` SGD steps at ``train_size`` px.

    No pretrained weights can be downloaded here, and random weights are a poor stand-in for a trained
    student: a randomly initialised deep ResNet amplifies any perturbation layer after layer, so its INT8
    error says more about the random init than about quantisation. A few hundred steps give weights with
    a trained network's structure. BatchNorm statistics are then re-estimated at 224 px, the size that
    is exported and timed.
    """
    from compressor.export.images import load_images
    from compressor.models.encoder import InputSpec
    from compressor.models.saved import save_encoder
    from compressor.models.students import build_student

    torch.manual_seed(0)
    enc = build_student(arch, image_size=224)
    small = InputSpec(train_size, enc.spec.mean, enc.spec.std)
    train = load_images(data, small, steps * batch, split="train")
    x, y = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    head = torch.nn.Linear(enc.embed_dim, int(y.max()) + 1)
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-5)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps, pct_start=0.1)
    enc.train()
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,))
        xb = x[idx].flip(3) if step % 2 else x[idx]  # horizontal flip on every other batch
        loss = torch.nn.functional.cross_entropy(head(enc(xb)), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"  train step {step + 1}/{steps}: loss {loss.item():.3f}", flush=True)
    for m in enc.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
    images = load_images(data, enc.spec, 256, split="train").images
    with torch.no_grad():
        for i in range(0, len(images), 32):
            enc(torch.from_numpy(images[i:i + 32]))
    enc.eval()
    save_encoder(enc, run, trained=f"{steps} supervised steps on {data} at {train_size} px (benchmark stand-in)")
    RunDir(run).write_config({"data": data, "student": arch, "image_size": 224})


def plain_session(path: Path, threads: int, level: str = "all"):
    """A plain ``InferenceSession``: only the thread count and the optimisation level are set."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                   "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def p50_ms(sess, x: np.ndarray, iters: int, warmup: int = 5) -> float:
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def time_session(path: Path, x: np.ndarray, threads: int, iters: int, level: str = "all") -> float:
    """p50 ms of a plain session on ``x``."""
    return p50_ms(plain_session(path, threads, level), x, iters, warmup=10)


def int8_peak(threads: int, iters: int) -> float:
    """GMAC/s of one large uint8×int8 1×1 QLinearConv (56×56, 512→512): the INT8 ceiling of this CPU."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    size, cin, cout = 56, 512, 512
    rng = np.random.default_rng(0)
    consts = {"xs": np.array(0.05, np.float32), "xz": np.array(128, np.uint8),
              "w": rng.integers(-127, 128, (cout, cin, 1, 1)).astype(np.int8), "ws": np.full(cout, 0.01, np.float32),
              "wz": np.zeros(cout, np.int8), "ys": np.array(0.5, np.float32), "yz": np.array(128, np.uint8)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"])
    graph = helper.make_graph([node], "peak",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, cin, size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, cout, size, size])],
                              [numpy_helper.from_array(v, k) for k, v in consts.items()])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peak.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        x = rng.integers(0, 256, (1, cin, size, size)).astype(np.uint8)
        ms = time_session(path, x, threads, iters)
    return size * size * cin * cout / (ms * 1e-3) / 1e9
