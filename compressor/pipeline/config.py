"""What ``compress run`` reads: a distill config (TrainConfig's fields) plus an optional ``pipeline:`` section.

```yaml
student: resnet18            # ... every `compress distill` field ...
pipeline:                    # the stages after training (all optional; defaults below)
  export: [onnx, onnx-int8]
  bench_batches: [1, 8]
```

Command-line overrides are the distill flags themselves, parsed against :class:`TrainConfig`'s fields
(so a new field is a new ``compress run`` flag with no edit here), plus ``--pipeline-set key=value``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compressor.engine.config import FIELDS, TrainConfig, parse_set_options
from compressor.errors import CompressorError
from compressor.registry import did_you_mean
from compressor.utils.coerce import coerce, field_hints, parse_yaml_value

_HINTS = field_hints(TrainConfig)


def check_type(name: str, value: Any, where: str) -> Any:
    """``value`` as the type of the distill field ``name`` (the one coercion path of utils/coerce.py)."""
    return coerce(value, _HINTS[name], f"{name} in {where}")



@dataclass
class PipelineConfig:
    """The stages after training. Defaults suit a CPU: ORT fp32 and INT8, batches 1 and 8."""

    export: list[str] = field(default_factory=lambda: ["onnx", "onnx-int8"])  # `compress export --format`
    eval_max_train: int | None = 5000  # kNN bank: the first N training images (None: all)
    eval_max_val: int | None = 2000  # kNN queries: the first N held-out images
    linear: bool = False  # also fit a linear probe (slower)
    teacher: bool = True  # evaluate and bench the teacher too (the headline's baseline)
    calib_size: int = 512  # INT8 calibration images
    check_size: int = 128  # held-out images of each export's parity check
    bench_backends: list[str] = field(default_factory=lambda: ["torch", "ort-cpu", "ort-cuda"])
    bench_batches: list[int] = field(default_factory=lambda: [1, 8])
    bench_seconds: float = 5.0  # time budget per measurement
    bench_iters: int = 50  # timed calls per measurement, at most
    bench_warmup: int = 5
    threads: int | None = None  # CPU threads for bench (default: every usable core)
    qad_steps: int | None = None  # INT8 formats by quantization-aware distillation (N steps) instead of PTQ
    prune_ratio: float | None = None  # a `prune` stage: remove this fraction of channels into RUN/pruned/
    prune_steps: int = 300  # the pruned student's recovery distillation, in steps

    def section(self, *names: str) -> dict[str, Any]:
        """The fields a stage depends on, for its hash."""
        d = dataclasses.asdict(self)
        return {k: d[k] for k in names}


PIPELINE_FIELDS = {f.name: f for f in dataclasses.fields(PipelineConfig)}

# `--quick`: the smallest sizes that still exercise every stage (smoke tests, trying a config out).
QUICK = {"eval_max_train": 64, "eval_max_val": 32, "calib_size": 16, "check_size": 16, "bench_batches": [1],
         "bench_seconds": 0.2, "bench_iters": 5, "bench_warmup": 1, "prune_steps": 2}


def _unknown(key: str, known, where: str) -> CompressorError:
    return CompressorError(f"unknown {where} {key!r}{did_you_mean(key, list(known))}")


def pipeline_config(values: dict[str, Any], where: str) -> PipelineConfig:
    """Check a ``pipeline:`` mapping against :class:`PipelineConfig` (unknown keys and wrong types are errors)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in PIPELINE_FIELDS:
            raise _unknown(name, PIPELINE_FIELDS, f"pipeline key in {where}:")
        out[name] = _check(name, value, where)
    if out.get("prune_ratio") is not None:
        from compressor.prune import check_ratio

        check_ratio(out["prune_ratio"])  # before any stage runs, not after the distillation
    return dataclasses.replace(PipelineConfig(), **out)


def _check(name: str, value: Any, where: str) -> Any:
    ann = str(PIPELINE_FIELDS[name].type)  # a string: annotations are postponed in this module
    if value is None and "None" in ann:
        return None
    base = ann.split("|")[0].strip()
    bad = CompressorError(f"pipeline key {name} in {where} must be {base}, got {value!r}")
    if base.startswith("list["):
        if isinstance(value, str):  # export=onnx,onnx-int8 on the command line
            value = [parse_yaml_value(v.strip()) for v in value.split(",") if v.strip()]
        item = int if base == "list[int]" else str
        if not isinstance(value, list) or not all(_is(v, item) for v in value):
            raise bad
        for v in value if item is int else []:
            _check_low(name, v, where)
        return value
    kind = {"bool": bool, "int": int, "float": float}[base]
    if not _is(value, kind):
        raise bad
    if kind is not bool:
        _check_low(name, value, where)
    return float(value) if kind is float else value


# The smallest accepted value of each numeric pipeline key (sizes, counts, seconds); 1 for the others.
PIPELINE_LOW: dict[str, float] = {"bench_warmup": 0, "bench_seconds": 1e-3, "prune_ratio": 1e-6}


def _check_low(name: str, value: float, where: str) -> None:
    """Finite and at least :data:`PIPELINE_LOW` (NaN fails every comparison, so it is named first)."""
    low = PIPELINE_LOW.get(name, 1)
    if not (math.isfinite(value) and value >= low):
        raise CompressorError(f"pipeline key {name} in {where} must be a finite number of at least {low:g}, "
                              f"got {value!r}")


def _is(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))
    if kind is str:
        return isinstance(value, str)
    return isinstance(value, kind)


def check_train_values(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """Distill fields of a config, checked as ``compress distill --config`` checks them (names and types)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS:
            raise _unknown(name, FIELDS, f"key in {where}:")
        out[name] = check_type(name, value, where)
    return out


def split_run_config(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the checked distill fields, the ``pipeline:`` mapping) of a ``compress run`` config."""
    raw = dict(raw)
    pipe = raw.pop("pipeline", None) or {}
    if not isinstance(pipe, dict):
        raise CompressorError(f"`pipeline:` in {where} must be a mapping such as {{export: [onnx, onnx-int8]}}")
    return check_train_values(raw, where), pipe


def read_run_config(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``compress run`` YAML file: see :func:`split_run_config`."""
    from compressor.utils.yamlfile import read_yaml_file  # size, alias, depth and UTF-8 limits

    path = Path(path)
    if not path.is_file():
        raise CompressorError(f"config file {str(path)!r} does not exist")
    raw = read_yaml_file(path) or {}
    if not isinstance(raw, dict):
        raise CompressorError(f"{path} must be a mapping of option: value (got {type(raw).__name__})")
    return split_run_config(raw, str(path))


def parse_distill_flags(args: list[str]) -> dict[str, Any]:
    """``--max-steps 2 --teacher-weights random --set lr=1e-3`` → TrainConfig values, checked per field.

    Every TrainConfig field is a flag (``batch_size`` ↔ ``--batch-size``); booleans take no value.
    """
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise CompressorError(f"unexpected argument {arg!r}; overrides look like --max-steps 2")
        name, has_value, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if key not in FIELDS and key != "set":
            raise _unknown("--" + name, ["--" + f.replace("_", "-") for f in FIELDS] + ["--set"], "option")
        is_bool = key != "set" and isinstance(getattr(_DEFAULTS, key, None), bool)
        if not has_value and not is_bool:
            if i + 1 >= len(args):
                raise CompressorError(f"--{name} needs a value")
            i += 1
            value = args[i]
        i += 1
        if key == "set":
            out.setdefault("recipe_config", {}).update(parse_set_options([value]))
        elif is_bool:
            out[key] = True if not has_value else bool(parse_yaml_value(value))
        else:
            out[key] = _typed(key, value)
    return out


def _typed(key: str, text: str) -> Any:
    """The flag's text as the field's type: kept a string where the field takes one, else parsed."""
    try:
        return check_type(key, text, "the command line")
    except CompressorError:
        return check_type(key, parse_yaml_value(text), "the command line")


_DEFAULTS = TrainConfig()
