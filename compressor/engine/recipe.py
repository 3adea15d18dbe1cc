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


# The short-run optimiser: the control's (simclr) and feature-kd's own setting.
SHORT_RUN_OPTIMIZER: dict[str, Any] = {"optimizer": "adamw", "lr": 1e-3, "scale_lr_by_batch": False}
# The short-run crop, part of ``ShortRunCropConfig``'s ``short_run_settings`` (the control, every teacher→student
# recipe): the random resized crop keeps at least 80% of the image instead of the papers' 20%. Those crops teach
# an invariance that takes 10⁵ steps to learn; in a few hundred the student learns faster from views close to
# the whole images it is scored on, and a frozen teacher is asked about images like those it was trained on
# (the measurements: docs/benchmarks.md, "The short-run crop"). 0.8 is the supervised teacher's own setting in
# the quality benchmark and the demo.
SHORT_RUN_CROP: dict[str, Any] = {"crop_scale_min": 0.8}
PRESETS = ("auto", "paper", "short")
OLD_PRESET_KEY = "optimizer_preset"  # the field's name before 2026-12: read from old config.yaml / --set, renamed


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
    preset: str = "auto"  # auto | paper | short: the short-run preset, see resolve_preset
    short_run_steps: int = 5000  # auto: a run of fewer optimiser steps gets the short-run preset
    # the fields that set a rate or an optimiser: one given by hand keeps the paper's settings (auto)
    rate_fields: ClassVar[tuple[str, ...]] = ("optimizer", "lr", "scale_lr_by_batch")
    # every value the short-run preset writes into the config (the optimiser, and a recipe's own: a crop, a
    # loss weight); ``resolve_preset`` is the one place that applies them
    short_run_settings: ClassVar[dict[str, Any]] = SHORT_RUN_OPTIMIZER


@dataclass
class ShortRunCropConfig(RecipeConfig):
    """The config of a recipe that takes the short-run crop: the control and every teacher→student recipe."""

    crop_scale_min: float = 0.2  # the random resized crop's smallest area fraction (MoCo v2's); short runs: 0.8
    short_run_settings: ClassVar[dict[str, Any]] = {**SHORT_RUN_OPTIMIZER, **SHORT_RUN_CROP}


def upgrade_preset_key(overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """``overrides`` with the old ``optimizer_preset`` key renamed ``preset`` (an old config.yaml still resumes)."""
    out = dict(overrides or {})
    for old in (OLD_PRESET_KEY, OLD_PRESET_KEY.replace("_", "-")):
        if old in out:
            out.setdefault("preset", out.pop(old))  # the new key wins where both are given
    return out


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
    return apply_overrides(recipe.Config(), upgrade_preset_key(overrides), f"{recipe.name}.",
                           kind=f"{recipe.name} option")
