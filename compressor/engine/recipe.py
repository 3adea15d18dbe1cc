"""The recipe contract: what a distillation method supplies to the training engine (part of the core).

Recipes themselves are plug-ins (the top-level ``recipes/`` folder, installed as ``compressor.recipes``,
or any package named by a ``compressor.plugins`` entry point): they import this module and register
themselves with :func:`register_recipe`; the core looks them up in :data:`RECIPES` by name and never
imports them: the registry loads them through entry points at its first lookup.

A recipe is an ``nn.Module`` holding the student (and teacher(s), peer, heads) with

* ``views()``: a callable turning one PIL image into the named tensors its ``step`` reads;
* ``step(batch) -> StepOutput``: the loss of one batch (the engine does backward, clipping, stepping);
* ``optimizers()``: one optimiser per independently trained model (peer recipes have two);
* ``on_step_end(step, total)``: EMA updates, queues, schedules owned by the recipe.

Its ``Config`` dataclass holds the paper's defaults; every field can be set from YAML
(``recipe_config:``) or ``--set key=value``. Frozen teachers are excluded from checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar, cast

import torch
from torch import nn

from compressor.errors import CompressorError
from compressor.models.encoder import Encoder
from compressor.registry import Registry
from compressor.utils.coerce import apply_overrides

KINDS = ("teacher→student", "peer", "supervised peer", "control")


@dataclass
class RecipeConfig:
    """Optimisation fields every recipe has; recipes subclass this with the paper's defaults."""

    optimizer: str = "adamw"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-6
    momentum: float = 0.9  # SGD only
    warmup_fraction: float = 0.05  # of the total steps, linear warm-up before the cosine decay
    min_lr_fraction: float = 0.0  # the cosine ends at lr × this
    clip_grad: float = 3.0  # max gradient norm per optimiser; 0 disables
    clip_per_parameter: bool = False  # clip each parameter's norm on its own (DINO) instead of the global one
    scale_lr_by_batch: bool = False  # lr × batch/256 (the papers' linear scaling rule)
    optimizer_preset: str = "auto"  # auto | paper | short: see resolve_optimizer_preset
    short_run_steps: int = 5000  # auto: a run of fewer optimiser steps gets the short-run optimiser
    # the fields that set a rate or an optimiser: one given by hand keeps the paper's optimiser (auto)
    rate_fields: ClassVar[tuple[str, ...]] = ("optimizer", "lr", "scale_lr_by_batch")
    # the recipe's own short-run values besides the optimiser (a loss weight, say), applied with it
    short_run_settings: ClassVar[dict[str, Any]] = {}


# The short-run optimiser: the control's (simclr) and feature-kd's own setting.
SHORT_RUN_OPTIMIZER: dict[str, Any] = {"optimizer": "adamw", "lr": 1e-3, "scale_lr_by_batch": False}
# The short-run crop, ``ShortRunCropConfig``'s ``short_run_settings`` (the control, every teacher→student
# recipe): the random resized crop keeps at least 80% of the image instead of the papers' 20%. Those crops teach an
# invariance that takes 10⁵ steps to learn; in a few hundred the student learns faster from views close
# to the whole images it is scored on (Fashion-MNIST, 156 steps, one seed, kNN: feature-kd 82.72 at
# 0.2, 83.56 at 0.5, 83.68 at 0.8; simclr 77.82 → 78.44; docs/benchmarks.md), and a frozen teacher is
# asked about images like those it was trained on. 0.8 is the supervised teacher's own setting in the
# quality benchmark and the demo.
SHORT_RUN_CROP: dict[str, Any] = {"crop_scale_min": 0.8}
PRESETS = ("auto", "paper", "short")


@dataclass
class ShortRunCropConfig(RecipeConfig):
    """The config of a recipe that takes the short-run crop: the control and every teacher→student recipe."""

    crop_scale_min: float = 0.2  # the random resized crop's smallest area fraction (MoCo v2's); short runs: 0.8
    short_run_settings: ClassVar[dict[str, Any]] = SHORT_RUN_CROP


def resolve_optimizer_preset(cfg: RecipeConfig, total_steps: int, overrides: dict[str, Any] | None = None
                             ) -> RecipeConfig:
    """Settle ``cfg.optimizer_preset`` to ``paper`` or ``short`` for a run of ``total_steps`` optimiser steps.

    The papers' optimisers are tuned for runs of 10⁵–10⁶ steps (SEED: SGD 0.03×B/256 for 200 ImageNet
    epochs; MV-MR: Adam 1e-4 for 200 epochs; DoGo: Adam 3e-4); in a run of a few hundred steps those
    rates leave the student under-trained (on Fashion-MNIST, 156 steps, kNN over the student alone:
    seed +1.2 → +4.6, mvmr −1.3 → +0.5 with AdamW 1e-3; docs/benchmarks.md). The rule, applied to every recipe alike:

    * ``short``: ``SHORT_RUN_OPTIMIZER`` (AdamW, lr 1e-3, not scaled by the batch) replaces the recipe's
      optimiser and rate, and the config's ``short_run_settings`` (``SHORT_RUN_CROP`` for the control
      and the teacher→student recipes; mvmr: its teacher term's weight too) its values, except a field
      given in ``overrides`` (so a resume from config.yaml, which records every field, keeps what it
      recorded, and ``--set lr=…`` on it is caught as a change); weight decay,
      warm-up, clipping and the recipe's own schedules stay;
    * ``paper``: the recipe's defaults as declared;
    * ``auto`` (default): ``short`` when the run has fewer than ``short_run_steps`` (5,000) steps and
      the user set none of the config's ``rate_fields`` (``optimizer``, ``lr``, ``scale_lr_by_batch``;
      mokd adds ``cnn_lr``, ``vit_lr``): a rate given by hand is kept,
      else ``paper``. 5,000 is a judgement: well below the papers' shortest schedules (≈ 78k steps for
      200 CIFAR epochs) and above the few-epoch runs of small data sets this preset is for; the
      boundary itself was not measured (a CPU cannot run the comparison near it).

    Returns ``cfg`` with the preset's values written into its fields and ``optimizer_preset`` set to
    the one applied, so config.yaml records what the run trained with.
    """
    if cfg.optimizer_preset not in PRESETS:
        raise CompressorError(f"optimizer_preset={cfg.optimizer_preset!r} is not one of {', '.join(PRESETS)}; "
                              "use --set optimizer_preset=paper for the recipe's own optimiser")
    preset = cfg.optimizer_preset
    given = {str(k).replace("-", "_") for k in (overrides or {})}
    if preset == "auto":
        preset = "short" if total_steps < cfg.short_run_steps and not given & set(cfg.rate_fields) else "paper"
    if preset == "short":
        for key, value in {**SHORT_RUN_OPTIMIZER, **cfg.short_run_settings}.items():
            if key not in given:  # a value given with the preset (or recorded in config.yaml) wins
                setattr(cfg, key, value)
    cfg.optimizer_preset = preset
    return cfg


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: Mapping[str, float | torch.Tensor] = field(default_factory=dict)  # device tensors: read at log steps


@dataclass
class DataInfo:
    num_classes: int
    batch_size: int
    num_images: int = 0  # size of the training set (for per-image caches)


C = TypeVar("C", bound=RecipeConfig)


class Recipe(nn.Module, Generic[C]):
    """Generic over its config: ``class MVMR(Recipe[MVMRConfig])`` makes ``self.cfg`` an ``MVMRConfig``."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type[RecipeConfig]] = RecipeConfig
    needs_teacher: ClassVar[bool] = False
    multi_teacher: ClassVar[bool] = False
    needs_peer: ClassVar[bool] = False
    needs_labels: ClassVar[bool] = False
    # Config overrides that switch the distillation off: a peer recipe's "each model alone" control.
    control_overrides: ClassVar[dict[str, Any]] = {}
    # The view of the teacher that depends on the image alone (``--teacher-cache`` can hold T of it), or None;
    # a recipe may set it per instance (feature-kd with ``teacher_view=clean``).
    teacher_cache_view: str | None = None
    teacher_disk_cache: Any = None  # set by compressor.data.teacher_cache.attach_cache

    cfg: C

    def __init__(self, cfg: C, student: Encoder, *, teachers: list[Encoder] | None = None,
                 peer: Encoder | None = None, data: DataInfo | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.student = student
        self.teachers = nn.ModuleList(teachers or [])
        self.peer = peer
        self.data = data or DataInfo(num_classes=0, batch_size=1)

    @property
    def teacher(self) -> Encoder:
        return cast(Encoder, self.teachers[0])  # ModuleList items are typed as Module

    # -- what subclasses implement -------------------------------------------------------------
    def views(self) -> Callable[[Any], dict[str, torch.Tensor]]:
        raise NotImplementedError

    def step(self, batch: dict[str, torch.Tensor]) -> StepOutput:
        raise NotImplementedError

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after the optimisers stepped (EMA updates, queues)."""

    def on_after_backward(self, step: int, total_steps: int) -> None:
        """Called between backward and the optimiser step (e.g. freezing a last layer early on)."""

    def param_groups(self) -> list[list[nn.Parameter]]:
        """Parameters of each independently optimised model (default: all trainable ones, one group)."""
        return [[p for p in self.parameters() if p.requires_grad]]

    def saved_models(self) -> dict[str, Encoder]:
        """The encoders written at the end of a run (``student`` is what eval/export/bench read)."""
        out = {"student": self.student}
        if self.peer is not None:
            out["peer"] = self.peer
        return out

    # -- shared machinery --------------------------------------------------------------------
    @torch.no_grad()
    def teacher_embedding(self, batch: dict[str, torch.Tensor], view: str) -> torch.Tensor:
        """``T(batch[view])``, or its rows from the on-disk cache when ``--teacher-cache`` is attached.

        With a complete cache the view is not even decoded (absent from ``batch``); a partial one computes
        the missing rows from the view and stores them.
        """
        images = batch.get(view)
        if self.teacher_disk_cache is None:
            return self.teacher(images)

        def missing(todo: torch.Tensor) -> torch.Tensor:  # rows not yet on disk (never with a complete cache)
            return self.teacher(images[todo] if images is not None else None)

        return self.teacher_disk_cache.fetch(batch["index"], missing).to(batch["index"].device)

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [build_optimizer(self.cfg, params, self.data.batch_size) for params in self.param_groups()]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict without frozen teachers (they are rebuilt from their weights on resume)."""
        frozen = [n + "." for n, m in self.named_modules(remove_duplicate=False)
                  if getattr(m, "_frozen", False) and n]
        return {k: v for k, v in self.state_dict().items() if not any(k.startswith(f) for f in frozen)}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        expected = set(self.trainable_state_dict())
        bad_missing = [k for k in missing if k in expected]
        if bad_missing or unexpected:
            raise CompressorError(f"checkpoint does not match the recipe (missing {bad_missing[:3]}, "
                                  f"unexpected {list(unexpected)[:3]}); resume with the same config")


def build_optimizer(cfg: RecipeConfig, params: list[nn.Parameter], batch_size: int) -> torch.optim.Optimizer:
    """The optimiser named by ``cfg.optimizer``; weight decay skips biases and norm parameters.

    On CUDA the fused kernels (one launch for all parameters, and no host read of Adam's step count,
    which the unfused CUDA path syncs on every step)."""
    lr = cfg.lr * batch_size / 256 if cfg.scale_lr_by_batch else cfg.lr
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    name = cfg.optimizer.lower()
    fused = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    if name == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, fused=fused or None)
    elif name == "adam":
        opt = torch.optim.Adam(groups, lr=lr, fused=fused or None)
    elif name == "adamw":
        opt = torch.optim.AdamW(groups, lr=lr, fused=fused or None)
    else:
        raise CompressorError(f"unknown optimizer {cfg.optimizer!r}; use adam, adamw or sgd")
    for g in opt.param_groups:
        g["base_lr"] = lr
    return opt


RECIPES: Registry[type[Recipe[Any]]] = Registry(
    "recipe", empty_hint="no recipes are installed: reinstall the package (`pip install -e .`), whose "
    "`compressor.plugins` entry points name the recipe packages", entry_point_group="compressor.plugins")

R = TypeVar("R", bound=type[Recipe[Any]])


def register_recipe(cls: R) -> R:
    """Class decorator: registers a recipe under ``cls.name`` (checks its kind and description)."""
    if cls.kind not in KINDS or not cls.description or not cls.name:
        raise ValueError(f"recipe {cls.__name__} needs a name, a one-line description and a kind in {KINDS}")
    RECIPES.add(cls.name, cls)
    return cls


def get_recipe(name: str) -> type[Recipe[Any]]:
    return RECIPES.get(name)


def list_recipes() -> list[type[Recipe[Any]]]:
    return [RECIPES.get(n) for n in RECIPES.names()]


def make_config(recipe: type[Recipe[Any]], overrides: dict[str, Any] | None = None) -> RecipeConfig:
    """``recipe.Config`` with ``overrides`` applied; unknown keys and wrong types are errors."""
    return apply_overrides(recipe.Config(), overrides or {}, f"{recipe.name}.", kind=f"{recipe.name} option")
