"""One coercion path for every configuration value, read off the dataclass field's type annotation.

YAML files, ``--set key=value`` and ``recipe_config:`` mappings all come through :func:`coerce`, so
``3e-4`` (a string under YAML 1.1), ``[512, 512]`` for a tuple field or ``1`` for a float field are
handled once, and a wrong type is a one-line error naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import yaml

from compressor.errors import CompressorError


def field_hints(cls: type) -> dict[str, Any]:
    """The resolved annotation of each dataclass field of ``cls`` (``ClassVar`` s left out)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def parse_yaml_value(text: str, where: str = "a command-line value") -> Any:
    """A command-line value read as YAML (``8`` → 8, ``[8,8]`` → [8, 8]); types are fixed by :func:`coerce`.

    The size and depth limits of configuration files apply (:mod:`compressor.utils.yamlfile`).
    """
    from compressor.utils.yamlfile import safe_yaml

    try:
        return safe_yaml(text, where)
    except yaml.YAMLError:
        return text


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is None:
        return getattr(hint, "__name__", str(hint))
    return getattr(origin, "__name__", str(origin))


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` converted to the annotation ``hint`` (``int | None``, ``tuple[int, ...]``...).

    A value that does not fit is a one-line error naming ``where`` (the key and the file or flag).
    """
    origin = typing.get_origin(hint)
    if origin is typing.Union or isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(hint)):
            return None
        for arg in args:
            try:
                return coerce(value, arg, where)
            except CompressorError:
                continue
        raise CompressorError(f"{where} must be {' or '.join(_type_name(a) for a in args)}, got {_shown(value)}")
    if hint is Any:
        return value
    if isinstance(value, str) and hint is not str:
        value = parse_yaml_value(value)
    try:
        return _coerce(value, hint, origin, where)
    except TypeError:
        raise CompressorError(f"{where} must be {_type_name(hint)}, got {_shown(value)}") from None


def _coerce(value: Any, hint: Any, origin: Any, where: str) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError
        return value
    if hint is float:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads `3e-4` as a string
            except ValueError:
                raise TypeError from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], where) for v in value)
        if args and len(args) != len(value):
            raise TypeError
        return tuple(coerce(v, a, where) for v, a in zip(value, args, strict=True)) if args else tuple(value)
    if origin is list or hint is list:
        if not isinstance(value, (list, tuple)):
            raise TypeError
        args = typing.get_args(hint)
        return [coerce(v, args[0], where) for v in value] if args else list(value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise TypeError
        return dict(value)
    if isinstance(hint, type) and not isinstance(value, hint):
        raise TypeError
    return value


def apply_overrides(obj: Any, overrides: dict[str, Any], where: str, *, kind: str) -> Any:
    """Set each ``key: value`` of ``overrides`` on the dataclass ``obj``, coerced; unknown keys suggest a close one."""
    from compressor.registry import did_you_mean

    hints = field_hints(type(obj))
    for key, value in overrides.items():
        name = str(key).replace("-", "_")
        if name not in hints:
            raise CompressorError(f"unknown {kind} {key!r}{did_you_mean(name, list(hints))} "
                                  f"(options: {', '.join(hints)})")
        setattr(obj, name, coerce(value, hints[name], f"{where}{name}"))
    return obj


def _shown(value: Any) -> str:
    """A value for an error message: never a huge (e.g. alias-expanded) one."""
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def unknown_fields(kind: str, given: dict[str, Any], cls: type) -> None:
    """One line naming the first keyword that ``cls`` (a config dataclass) does not have, with a suggestion."""
    from compressor.registry import did_you_mean

    known = [f.name for f in dataclasses.fields(cls)]
    for name in given:
        if name not in known:
            raise CompressorError(f"{kind}() got an unknown option {name!r}{did_you_mean(name, known)} "
                                  f"(known: {', '.join(known)})")
