"""From a :class:`TrainConfig` to the objects a run needs: device, data, models and the recipe."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from compressor.data.datasets import ImageDataset, build_dataset
from compressor.data.loader import batches_per_epoch
from compressor.data.subset import training_subset
from compressor.engine.config import TrainConfig
from compressor.engine.cpu_bf16 import cpu_bf16_is_native
from compressor.engine.preset import PresetChoice, resolve_preset
from compressor.engine.recipe import (
    DataInfo,
    Recipe,
    get_recipe,
    list_recipes,
    make_config,
)
from compressor.errors import CompressorError
from compressor.models.encoder import Encoder
from compressor.models.students import build_student

log = logging.getLogger("compressor")


def resolve_device(name: str) -> torch.device:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` → a device present here, else one line naming the fix.

    ``auto`` is CUDA when visible, else the CPU (MPS only when asked for: its kernels cover less of torch).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise CompressorError("--device mps was asked for but MPS (an Apple-silicon GPU with a torch built for "
                                  "it) is not available here; use --device cpu")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise CompressorError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if not torch.cuda.is_available():
        raise CompressorError(f"--device {name} was asked for but no CUDA device is visible; use --device cpu")
    count = torch.cuda.device_count()
    if match.group(1) is not None and int(match.group(1)) >= count:
        raise CompressorError(f"--device {name}: this machine shows {count} CUDA device(s), cuda:0 to "
                              f"cuda:{count - 1}; pick one of those (or set CUDA_VISIBLE_DEVICES)")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (``None`` = plain fp32): bf16 on CUDA by default, fp32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
    if name not in table:
        raise CompressorError(f"unknown precision {name!r}; use auto, bf16, fp16 or fp32")
    if table[name] is torch.float16 and device.type != "cuda":
        raise CompressorError("--precision fp16 needs CUDA; use fp32 (or bf16) on CPU")
    if table[name] is torch.bfloat16 and device.type == "cpu" and not cpu_bf16_is_native():
        log.warning("--precision bf16: oneDNN has no bf16 kernels for this CPU (they need AVX-512 or Arm "
                    "BF16), so bf16 runs about 10x slower than fp32 here; use --precision fp32 (or auto)")
    return table[name]


def build_teachers(cfg: TrainConfig) -> list[Encoder]:
    names = cfg.teachers()
    if not names:
        return []
    from compressor.models.teachers import build_teacher

    weights = [w.strip() for w in (cfg.teacher_weights or "").split(",")] if cfg.teacher_weights else []
    if len(weights) == 1:
        weights = weights * len(names)
    if weights and len(weights) != len(names):
        raise CompressorError(f"{len(names)} teachers but {len(weights)} --teacher-weights; give one per "
                              "teacher, comma-separated, or a single value for all")
    return [build_teacher(n, (weights[i] if weights else None), image_size=cfg.teacher_image_size,
                          trust_checkpoint=cfg.trust_checkpoint) for i, n in enumerate(names)]


def check_recipe_inputs(recipe_cls: type[Recipe[Any]], cfg: TrainConfig) -> None:
    """A recipe gets exactly the models it uses; anything else is a one-line error naming the flag."""
    n = len(cfg.teachers())
    name = recipe_cls.name
    if recipe_cls.needs_teacher and n == 0:
        raise CompressorError(f"recipe {name} distils from a teacher: pass --teacher NAME "
                              "(see `compress list teachers`)")
    if not recipe_cls.needs_teacher and n:
        raise CompressorError(f"recipe {name} uses no teacher; drop --teacher (or pick a teacher→student recipe)")
    if n > 1 and not recipe_cls.multi_teacher:
        several = ", ".join(r.name for r in list_recipes() if r.multi_teacher) or "none"
        raise CompressorError(f"recipe {name} takes one teacher, got {n}; recipes that take several: {several}")
    if recipe_cls.needs_peer and not cfg.peer:
        raise CompressorError(f"recipe {name} trains a pair: pass --peer NAME (any timm model)")
    if cfg.peer_weights and not cfg.peer:
        raise CompressorError("--peer-weights starts the peer of a pair recipe: pass --peer NAME too, or drop it")
    if not recipe_cls.needs_peer and cfg.peer:
        pairs = ", ".join(r.name for r in list_recipes() if r.needs_peer) or "none"
        raise CompressorError(f"recipe {name} trains one model; drop --peer (recipes that take one: {pairs})")


def load_peer_weights(peer: Encoder, weights: str, *, trust: bool = False) -> dict[str, Any]:
    """Load ``weights`` into ``peer``: a run directory (its saved student, same architecture, size and stem)
    or a file in any format ``--student-weights`` reads. Returns what run.json records."""
    from pathlib import Path

    from compressor.rundir import RunDir

    if Path(weights).is_dir():
        from compressor.models.saved import load_encoder

        run = RunDir(weights)
        saved = load_encoder(run.path)
        mine = (peer.arch, peer.spec.image_size, getattr(peer, "stem", "imagenet"))
        theirs = (saved.arch, saved.spec.image_size, getattr(saved, "stem", "imagenet"))
        if mine != theirs:
            raise CompressorError(f"--peer-weights {weights}: that run saved {theirs[0]} at {theirs[1]} px "
                                  f"(stem {theirs[2]}), the peer is {mine[0]} at {mine[1]} px (stem {mine[2]}); "
                                  "pass a run of the same --peer, --peer-image-size and --stem")
        peer.backbone.load_state_dict(saved.backbone.state_dict())
        log.info("peer %s starts from the run %s", peer.arch, run.path)
        return {"weights": f"run:{run.path}"}
    from compressor.models.student_weights import load_student_weights

    return load_student_weights(peer, weights, trust=trust)


def _cache_source(cfg: TrainConfig) -> dict[str, Any] | None:
    """Where the one teacher's weights come from, for ``--teacher-cache`` (``teacher_source``); else ``None``."""
    if not cfg.teacher_cache or len(cfg.teachers()) != 1:
        return None
    from compressor.data.teacher_cache import teacher_source

    return teacher_source(cfg.teachers()[0], cfg.teacher_weights, cfg.teacher_image_size)


def _cache_stand_in(cfg: TrainConfig, dataset: ImageDataset, source: dict[str, Any] | None) -> list[Any]:
    """With a complete ``--teacher-cache`` built from the same teacher weights, the teacher is not built at all."""
    if source is None or not cfg.teacher_cache:
        return []
    from compressor.data.teacher_cache import cached_teacher

    stand_in = cached_teacher(cfg.teacher_cache, dataset, source)
    if stand_in is None:
        return []
    log.info("teacher cache %s is complete: the teacher is not built and its view is not decoded", cfg.teacher_cache)
    return [stand_in]


@dataclass
class Components:
    device: torch.device
    autocast_dtype: torch.dtype | None
    dataset: ImageDataset
    recipe: Recipe[Any]
    batch_size: int  # cfg.batch_size clamped once to the dataset's size; the recipe's lr scaling sees the same
    steps_per_epoch: int
    total_steps: int  # the schedule's length: epochs × steps per epoch, capped by --max-steps
    teacher_source: dict[str, Any] | None = None  # recorded in a --teacher-cache (teacher_cache.teacher_source)
    preset: PresetChoice | None = None  # the short-run preset applied (logged here, recorded in run.json)


def _with_student_weights(cfg: TrainConfig, student: Encoder) -> Encoder:
    """``student`` started from ``--student-weights``, with the stem those weights were made for.

    Pretrained weights (timm, torchvision, the hub) are made for the ImageNet stem, so ``--stem auto``
    keeps it with them even below 96 px (and says so) rather than failing on the stem's shapes; a file
    that only fits the small stem (a student of an earlier small-input run) gets the small one. An
    explicit ``--stem small`` with ImageNet-stem weights is refused naming ``--stem imagenet``.
    """
    from compressor.models.student_weights import load_student_weights

    def build_and_load(stem: str) -> Encoder:
        torch.set_rng_state(rng)  # the same initial weights for the heads, whichever stem was tried first
        enc = build_student(cfg.student, cfg.image_size, stem=stem) if stem != student.stem else student
        loaded = load_student_weights(enc, cfg.student_weights or "", trust=cfg.trust_checkpoint)
        object.__setattr__(enc, "weights_info", loaded)  # for run.json (nn.Module's setter is typed for tensors)
        return enc

    rng = torch.get_rng_state()
    if student.stem != "small":
        return build_and_load(student.stem)
    first = "imagenet" if cfg.stem == "auto" else "small"
    try:
        loaded = build_and_load(first)
    except CompressorError as err:
        try:
            loaded = build_and_load("small" if first == "imagenet" else "imagenet")
        except CompressorError:
            raise err from None
        if first == "small":  # the weights fit the ImageNet stem only
            raise CompressorError(f"--student-weights {cfg.student_weights} were made for the ImageNet stem of "
                                  f"{cfg.student}, and --stem small replaces it; pass --stem imagenet (or --stem "
                                  "auto) to start from them, or drop --student-weights") from None
        log.info("student %s: --stem auto picks the small stem that --student-weights %s were made for",
                 cfg.student, cfg.student_weights)
        return loaded
    if first == "imagenet":
        log.info("student %s: --stem auto keeps the ImageNet stem that --student-weights were made for (below 96 "
                 "px it would pick the small stem, which these weights do not fit)", cfg.student)
    return loaded


def build_components(cfg: TrainConfig) -> Components:
    device = resolve_device(cfg.device)
    autocast_dtype = resolve_precision(cfg.precision, device)
    recipe_cls = get_recipe(cfg.recipe)
    check_recipe_inputs(recipe_cls, cfg)
    rcfg = make_config(recipe_cls, cfg.recipe_config)
    dataset = training_subset(build_dataset(cfg.data, "train", cfg.data_root), cfg.max_images, cfg.seed)
    if recipe_cls.needs_labels and not dataset.has_labels:
        raise CompressorError(f"recipe {recipe_cls.name} is supervised and {cfg.data!r} has no labels; "
                              "put the images in one sub-folder per class")
    torch.manual_seed(cfg.seed)  # the same initial weights for the same seed
    student = build_student(cfg.student, cfg.image_size, stem=cfg.stem)
    if cfg.student_weights:
        student = _with_student_weights(cfg, student)
    peer = build_student(cfg.peer, cfg.peer_image_size or cfg.image_size, stem=cfg.stem) if cfg.peer else None
    if peer is not None and cfg.peer_weights:
        loaded_peer = load_peer_weights(peer, cfg.peer_weights, trust=cfg.trust_checkpoint)
        object.__setattr__(peer, "weights_info", loaded_peer)  # for run.json (nn.Module's setter is typed for tensors)
    source = _cache_source(cfg)
    with torch.random.fork_rng(devices=[]):  # the heads' initial weights do not depend on how the teacher came
        teachers = _cache_stand_in(cfg, dataset, source) or build_teachers(cfg)  # (built, random, or a complete cache)
    batch_size = min(cfg.batch_size, len(dataset))
    steps_per_epoch = batches_per_epoch(len(dataset), batch_size)
    # resolve_config sets epochs when max_steps is absent, so one of the two is always given
    total = cfg.epochs * steps_per_epoch if cfg.epochs else (cfg.max_steps or steps_per_epoch)
    total_steps = min(total, cfg.max_steps) if cfg.max_steps else total
    preset = resolve_preset(rcfg, total_steps, cfg.recipe_config)
    log.info("%s", preset.line())
    info = DataInfo(num_classes=len(dataset.classes), batch_size=batch_size, num_images=len(dataset))
    recipe = recipe_cls(rcfg, student, teachers=teachers, peer=peer, data=info)
    return Components(device, autocast_dtype, dataset, recipe, batch_size, steps_per_epoch, total_steps, source,
                      preset)


def load_trained(run_dir: str | Path) -> tuple[Components, dict[str, Any], Path]:
    """A run's components rebuilt from its ``config.yaml``, the recipe holding its newest checkpoint's trainable
    weights (teachers, heads, queues: what ``student.safetensors`` leaves out), in eval mode.

    For tools that read a recipe's state after training (benchmarks/peers.py's CSS ensemble, dino_heads.py);
    returns the components, the checkpoint's state and its path.
    """
    from compressor.engine.checkpoint import load_latest_checkpoint
    from compressor.engine.config import read_yaml_config, resolve_config
    from compressor.rundir import RunDir

    parts = build_components(resolve_config(read_yaml_config(RunDir(run_dir).config_path)))
    state, path = load_latest_checkpoint(run_dir)
    parts.recipe.load_trainable_state_dict(state["recipe"])
    parts.recipe.eval()
    return parts, state, path
