"""The resolved configuration of a training run: defaults ← ``--config`` YAML ← command-line flags."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compressor.errors import CompressorError


@dataclass
class TrainConfig:
    """Every field is also a ``compress distill`` flag (``batch_size`` ↔ ``--batch-size``)."""

    student: str = ""
    teacher: str | None = None  # comma-separated for several teachers (moma)
    teacher_weights: str | None = None  # a path, `random`, or comma-separated per teacher
    teacher_image_size: int | None = None
    peer: str | None = None
    recipe: str = "mvmr"
    data: str = ""
    data_root: str | None = None
    max_images: int | None = None  # train on a fixed random subset of this many images
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 64
    image_size: int | None = None
    peer_image_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    out: str | None = None
    resume: bool = False
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    workers: int = 0
    log_every: int = 10
    trust_checkpoint: bool = False
    recipe_config: dict[str, Any] = field(default_factory=dict)

    def teachers(self) -> list[str]:
        return [t.strip() for t in (self.teacher or "").split(",") if t.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _field_types(cls: type) -> dict[str, tuple[type, ...]]:
    """The accepted runtime types of each field, read off the annotations (``int | None`` → ``(int,)``)."""
    out: dict[str, tuple[type, ...]] = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        out[name] = tuple(typing.get_origin(a) or a for a in args if a is not type(None))
    return out


_TYPES = _field_types(TrainConfig)


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a ``--config`` file (safe YAML); unknown keys and wrong types are errors naming the key."""
    from compressor.utils.yamlfile import read_yaml_file

    path = Path(path)
    if not path.exists():
        raise CompressorError(f"config file {str(path)!r} does not exist")
    raw = read_yaml_file(path) or {}
    if not isinstance(raw, dict):
        raise CompressorError(f"{path} must be a mapping of option: value (got {type(raw).__name__})")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS:
            import difflib

            close = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise CompressorError(f"unknown key {key!r} in {path}{hint}")
        out[name] = check_type(name, value, str(path))
    return out


def check_type(name: str, value: Any, where: str) -> Any:
    if value is None:
        return None
    accepted = _TYPES[name]
    if isinstance(value, int) and not isinstance(value, bool) and float in accepted:
        return float(value)
    ok = isinstance(value, accepted) and not (isinstance(value, bool) and bool not in accepted)
    if not ok:
        shown = repr(value) if len(repr(value)) <= 60 else f"a {type(value).__name__}"  # never a huge value
        raise CompressorError(f"{name} in {where} must be {accepted[0].__name__}, got {shown}")
    return value


def resolve_config(flags: dict[str, Any], config_file: str | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then every flag the user gave (``None`` means not given)."""
    values: dict[str, Any] = read_yaml_config(config_file) if config_file else {}
    for key, value in flags.items():
        if value is None:
            continue
        if key == "recipe_config":
            values["recipe_config"] = {**values.get("recipe_config", {}), **value}
        else:
            values[key] = value
    cfg = TrainConfig(**values)
    if not cfg.student:
        raise CompressorError("no student given: pass --student NAME (any timm model, e.g. resnet18)")
    if not cfg.data:
        raise CompressorError("no data given: pass --data FOLDER, --data fashion-mnist or --data synthetic")
    if cfg.epochs is None and cfg.max_steps is None:
        cfg.epochs = 1
    from compressor.engine.ranges import check_train_config

    check_train_config(cfg)  # every numeric field against its range (engine/ranges.py)
    return cfg


def parse_set_options(items: list[str] | None) -> dict[str, Any]:
    """``--set key=value`` pairs (values parsed as YAML scalars/lists) into a dict."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CompressorError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_scalar(value)
    return out


def parse_scalar(text: str):
    """A YAML value, with ``3e-4`` read as a float (YAML 1.1 would keep it a string)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
