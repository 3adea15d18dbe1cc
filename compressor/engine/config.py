"""The resolved configuration of a training run: defaults ← ``--config`` YAML ← command-line flags.

:class:`TrainConfig` is the one declaration of each field: its default, its type (which YAML values
and flags are coerced to, :mod:`compressor.utils.coerce`) and its help text (``compress distill``
builds its flags from these fields, so a new field is a new flag with nothing else to edit).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.errors import CompressorError
from compressor.utils.coerce import apply_overrides, coerce, field_hints, parse_yaml_value

# The sections of `compress distill --help` (Typer's rich help panels). Each TrainConfig field names its panel
# once, beside its default and help; the help shows them in the order their first fields are declared (PANELS).
MODEL, RECIPE, DATA, OPTIMISATION, RUN, LOGGING = "Model", "Recipe", "Data", "Optimisation", "Run and output", "Logging"
PANELS = (MODEL, RECIPE, DATA, OPTIMISATION, RUN, LOGGING)


def option(default: Any, help: str, *, panel: str | None = None, **meta: Any) -> Any:
    """A config field with its ``--flag`` help text and its ``--help`` section ``panel`` (``meta``: ``flag`` for
    another name, ``hidden``)."""
    return field(default=default, metadata={"help": help, **({"panel": panel} if panel else {}), **meta})


@dataclass
class TrainConfig:
    """Every field is a ``compress distill`` flag: ``batch_size`` ↔ ``--batch-size``, ``recipe_config`` ↔ ``--set``."""

    student: str = option("", "Student architecture: any timm model (e.g. resnet18).", panel=MODEL)
    teacher: str | None = option(None, "Teacher name (see `compress list teachers`), timm:<name>, "
                                       "open_clip:<arch>:<tag> or a run directory; comma-separated for several.",
                                 panel=MODEL)
    teacher_weights: str | None = option(None, "Local teacher checkpoint in its official format, or `random` "
                                               "(no pretrained weights); comma-separated per teacher. Needed offline.",
                                         panel=MODEL)
    teacher_image_size: int | None = option(None, "Teacher input size (default: its own).", panel=MODEL)
    student_weights: str | None = option(None, "Start the student from a local timm/HF/torchvision weights file, "
                                               "or `pretrained` (timm's weights from the hub cache or the hub); "
                                               "the classifier is dropped, every other key must fit.", panel=MODEL)
    peer: str | None = option(None, "Second trainable model for peer recipes (see `compress list recipes`).",
                              panel=MODEL)
    peer_weights: str | None = option(None, "Start the peer from a run directory of the same architecture "
                                            "(its student.safetensors) or a weights file (as --student-weights); "
                                            "recorded in run.json. Default: random init, as the papers.", panel=MODEL)
    recipe: str = option("feature-kd", "Recipe (see `compress list recipes`). Default feature-kd: the best "
                         "teacher→student recipe at short budgets (docs/benchmarks.md, the quality table); name a "
                         "paper's recipe (mvmr, seed, moma, dogo, mokd, css) for its method.", panel=RECIPE)
    data: str = option("", "A folder of images (class sub-folders give labels), `fashion-mnist` or `synthetic`.",
                       panel=DATA)
    data_root: str | None = option(None, "Where to look for fashion-mnist first.", panel=DATA)
    max_images: int | None = option(None, "Train on a fixed, class-stratified random subset of N images "
                                                 "(compressor/data/subset.py; the same for the same --seed).",
                                    panel=DATA)
    epochs: int | None = option(None, "Epochs to train (default 1 when --max-steps is absent).", panel=OPTIMISATION)
    max_steps: int | None = option(None, "Stop after N optimisation steps.", panel=OPTIMISATION)
    batch_size: int = option(64, "Images per step (at most the number of training images).", panel=OPTIMISATION)
    image_size: int | None = option(None, "Student input size (default: the model's own).", panel=MODEL)
    stem: str = option("auto", "CNN stem: auto (the authors' 3x3 stride-1 stem without max-pool below 96 px), "
                               "imagenet or small (compressor/models/stems.py).", panel=MODEL)
    peer_image_size: int | None = option(None, "Peer input size (default: --image-size).", panel=MODEL)
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N or mps.", panel=OPTIMISATION)
    precision: str = option("auto", "auto (bf16 on CUDA, fp32 on CPU), bf16, fp16 or fp32.", panel=OPTIMISATION)
    out: str | None = option(None, "Run directory (default runs/<recipe>-<student>-<time>).", panel=RUN)
    resume: bool = option(False, "Continue the run in --out from its last checkpoint.", panel=RUN)
    auto_resume: bool = option(False, "Continue the run in --out when it holds a checkpoint, else start it: "
                                      "one job script for the first submission and every requeue after a "
                                      "preemption.", panel=RUN)
    seed: int = option(0, "Random seed.", panel=OPTIMISATION)
    checkpoint_every: int = option(500, "Write a checkpoint every N steps.", panel=RUN)
    keep_checkpoints: int | None = option(None, "Checkpoints to keep (default: the newest 2 while training, "
                                                "the last one once the run has finished).", panel=RUN)
    workers: int = option(0, "Data-loading worker processes.", panel=DATA)
    log_every: int = option(10, "Write metrics every N steps; the host reads the loss and the finite checks "
                                "only then (a divergence is caught within N steps, named by its first step).",
                            panel=LOGGING)
    logger: str = option("tensorboard", "Experiment trackers beside metrics.jsonl, comma-separated: tensorboard, "
                                        "wandb, mlflow, or none. W&B runs offline in RUN/wandb unless WANDB_MODE "
                                        "is set; MLflow writes the file store RUN/mlruns unless "
                                        "MLFLOW_TRACKING_URI is set (docs/distill.md).", panel=LOGGING)
    compile: bool = option(False, "torch.compile the recipe's step (worth it on CUDA for long runs; the first "
                                  "steps are slow while it compiles).", panel=OPTIMISATION)
    eval_every: int = option(0, "Log kNN top-1 on a small held-out subset every N steps into metrics.jsonl "
                                "(0: never).", panel=LOGGING)
    teacher_cache: str | None = option(None, "Folder of an on-disk cache of the teacher's embeddings of its "
                                             "deterministic view (mvmr; feature-kd and moma with --set "
                                             "teacher_view=clean); filled on the fly or ahead with "
                                             "`compress cache build`.", panel=DATA)
    trust_checkpoint: bool = option(False, "Allow TorchScript teacher files (OpenAI CLIP .pt). "
                                           "Only for files you trust.", panel=MODEL)
    recipe_config: dict[str, Any] = field(default_factory=dict, metadata={
        "flag": "--set", "panel": RECIPE,
        "help": "Recipe option key=value (repeatable), e.g. --set lr=3e-4 --set projector_dims=[512,512]."})

    def teachers(self) -> list[str]:
        return [t.strip() for t in (self.teacher or "").split(",") if t.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = field_hints(TrainConfig)


def read_yaml(path: str | Path) -> Any:
    """Safe YAML from ``path``; a missing or invalid file is a one-line error with the line and column."""
    from compressor.utils.yamlfile import read_yaml_file  # size, alias and UTF-8 limits

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise CompressorError(f"config file {str(path)!r} does not exist")
    return read_yaml_file(path)


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` file (safe YAML); unknown keys and wrong types are errors naming the key."""
    raw = read_yaml(path) or {}
    if not isinstance(raw, dict):
        raise CompressorError(f"{path} must be a mapping of option: value (got {type(raw).__name__})")
    from compressor.registry import did_you_mean

    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS:
            raise CompressorError(f"unknown key {key!r} in {path}{did_you_mean(name, list(FIELDS))}")
        out[name] = coerce(value, FIELDS[name], f"{name} in {path}")
    return out


def resolve_config(flags: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then every flag the user gave (``None`` means not given)."""
    values: dict[str, Any] = read_yaml_config(config_file) if config_file else {}
    for key, value in flags.items():
        if value is None:
            continue
        if key == "recipe_config":
            values["recipe_config"] = {**values.get("recipe_config", {}), **value}
        else:
            values[key] = coerce(value, FIELDS[key], f"--{key.replace('_', '-')}")
    cfg = TrainConfig(**values)
    if not cfg.student:
        raise CompressorError("no student given: pass --student NAME (any timm model, e.g. resnet18)")
    if not cfg.data:
        raise CompressorError("no data given: pass --data FOLDER, --data fashion-mnist or --data synthetic")
    if cfg.epochs is None and cfg.max_steps is None:
        cfg.epochs = 1
    from compressor.engine.ranges import check_train_config

    check_train_config(cfg)  # every numeric field against its range (engine/ranges.py)
    from compressor.engine.trackers import check_loggers

    cfg.logger = check_loggers(cfg.logger)  # an unknown name or a missing extra fails before any model is built
    return cfg


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """``--set key=value`` pairs into a dict (values read as YAML; their types are fixed by the recipe's config)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CompressorError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_yaml_value(value, f"--set {key.strip()}")
    return out


__all__ = ["FIELDS", "TrainConfig", "apply_overrides", "parse_set_options", "read_yaml_config", "resolve_config"]
