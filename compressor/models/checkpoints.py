"""Reading official checkpoint files safely and mapping them strictly onto our modules.

Three steps, each one place: :func:`read_state_dict` (file → flat ``{key: tensor}``, never
``weights_only=False``), :func:`remap` (drop ``module.``, keep the encoder under a prefix, drop
projectors/momentum encoders/queues by named group) and :func:`load_strict` (every key must land:
the guard against the timm non-strict trap described in ``shared/CHECKPOINTS.md``).
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import logging
import pickle
import re
import struct
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from compressor.errors import CompressorError
from compressor.models.layout import Layout
from compressor.utils.io import check_regular_file

log = logging.getLogger("compressor")

#: Wrappers around the state dict in training checkpoints, in the order they are preferred.
WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema")
#: Classes every weights-only read allows: MAE/DINO/timm training saves carry an ``args`` Namespace.
SAFE_CLASSES: list[Any] = [argparse.Namespace]
_TRUST_HINT = "pass --trust-checkpoint only if you trust where the file came from (it can run code)"


def _is_safetensors(path: Path) -> bool:
    if path.suffix == ".safetensors":
        return True
    with path.open("rb") as f:  # 8-byte little-endian header length, then a JSON header
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and struct.unpack("<Q", head[:8])[0] < 100_000_000


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())


def _import_global(name: str) -> Any:
    module, _, attr = name.rpartition(".")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _torch_load(path: Path, trust: bool) -> Any:
    """``torch.load(weights_only=True)``; with ``trust``, also allow exactly the globals the file names."""
    allowed = list(SAFE_CLASSES)
    for _ in range(20):  # one refused global per round
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            names = re.findall(r"GLOBAL ([\w.]+)", str(err))
            if "Weights only load failed" not in str(err) or not names:
                raise CompressorError(
                    f"cannot read {path}: the file is truncated or corrupt ({_first(err)})") from err
            if not trust:
                raise CompressorError(
                    f"{path} holds pickled Python objects that a safe (weights-only) load refuses "
                    f"({', '.join(names)}); {_TRUST_HINT}, or re-save its state dict as a plain dict of "
                    "tensors / safetensors") from err
            log.warning("--trust-checkpoint: allowing %s while reading %s", ", ".join(names), path)
            try:
                allowed += [_import_global(n) for n in names]
            except (ImportError, AttributeError) as e:
                raise CompressorError(f"{path} needs {', '.join(names)}, which is not importable here") from e
    raise CompressorError(f"cannot read {path}: too many pickled classes; re-save its state dict")


def _first(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def read_checkpoint(path: str | Path, *, trust: bool = False) -> Any:
    """The object stored in ``path`` (safetensors, torch zip or legacy pickle, or TorchScript if trusted)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CompressorError(f"teacher weights file {str(path)!r} does not exist; check --teacher-weights")
    if path.is_dir():
        raise CompressorError(f"{path} is a directory; --teacher-weights takes a checkpoint file")
    check_regular_file(path, "--teacher-weights file")  # a FIFO would block forever, /dev/zero never end
    try:
        if _is_safetensors(path):
            return load_file(str(path))
        if _is_torchscript(path):
            if not trust:
                raise CompressorError(
                    f"{path} is a TorchScript archive (like OpenAI's CLIP .pt), which a safe load cannot "
                    f"read; {_TRUST_HINT}, or use the library's state-dict release of the same weights")
            with warnings.catch_warnings():  # torch.jit is deprecated; OpenAI's CLIP files need it
                warnings.simplefilter("ignore", FutureWarning)
                return torch.jit.load(str(path), map_location="cpu").state_dict()
        return _torch_load(path, trust)
    except CompressorError:
        raise
    except PermissionError as err:
        raise CompressorError(f"cannot read {path}: permission denied") from err
    except Exception as err:  # zip, pickle, safetensors and EOF errors all mean a damaged file
        raise CompressorError(
            f"cannot read {path}: the file is truncated or corrupt ({_first(err)})") from err


def unwrap(obj: Any, source: str = "checkpoint") -> dict[str, Tensor]:
    """Descend through ``state_dict``/``model``/``state_dict_ema`` wrappers to a flat dict of tensors."""
    while isinstance(obj, Mapping) and not all(isinstance(v, Tensor) for v in obj.values()):
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CompressorError(f"{source} holds a {type(obj).__name__}, not a state dict")
    state = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        keys = ", ".join(map(str, list(obj)[:8]))
        raise CompressorError(f"{source} holds no tensors under {WRAPPER_KEYS} (top-level keys: {keys})")
    return state


def read_state_dict(path: str | Path, *, trust: bool = False) -> dict[str, Tensor]:
    """Read ``path`` and unwrap it to ``{key: tensor}`` (see :func:`read_checkpoint`, :func:`unwrap`)."""
    return unwrap(read_checkpoint(path, trust=trust), str(path))


def remap(state: Mapping[str, Tensor], layout: Layout) -> tuple[dict[str, Tensor], dict[str, list[str]]]:
    """Apply ``layout``: returns the encoder's state dict and ``{group label: dropped original keys}``.

    Keys outside ``layout.prefix`` that no drop group claims are kept unchanged, so that a strict
    load reports them as unexpected instead of silently ignoring them.
    """
    bare = {(k[len("module."):] if k.startswith("module.") else k): k for k in state}
    if layout.prefix and not any(k.startswith(layout.prefix) for k in bare):
        bare = {layout.prefix + k: orig for k, orig in bare.items()}
    out: dict[str, Tensor] = {}
    dropped: dict[str, list[str]] = {}
    for key, orig in bare.items():
        group = next((label for label, pats in layout.drop
                      if any(fnmatch.fnmatchcase(key, p) for p in pats)), None)
        if group is not None:
            dropped.setdefault(group, []).append(orig)
        elif layout.prefix and key.startswith(layout.prefix):
            out[key[len(layout.prefix):]] = state[orig]
        else:
            out[key] = state[orig]
    return out, dropped


def describe_dropped(dropped: Mapping[str, list[str]]) -> str:
    """``projector (8 keys: a, b, ...), queue (2 keys: ...)`` for the log line."""
    parts = [f"{g} ({len(ks)} keys: {', '.join(ks[:2])}{', ...' if len(ks) > 2 else ''})"
             for g, ks in dropped.items()]
    return "; ".join(parts)


def _names(keys: list[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_strict(module: nn.Module, state: Mapping[str, Tensor], *, source: str, what: str,
                fix: str = "pick the teacher that matches it") -> None:
    """``module.load_state_dict(state, strict=True)`` with a one-line error naming what does not fit (and ``fix``)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {list(state[k].shape)} vs {list(v.shape)}" for k, v in own.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_names(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches (file vs model): {_names(shapes, 2)}")
        raise CompressorError(
            f"{source} does not fit {what} ({'; '.join(parts)}); the file is probably for "
            f"another architecture: {fix}")
    module.load_state_dict(dict(state), strict=True)
