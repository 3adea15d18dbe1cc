"""A tiny name → object registry with close-match suggestions (the shape of timm's ``register_model``)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from compressor.errors import CompressorError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; lookups of unknown names fail with the closest registered names."""

    def __init__(self, kind: str, empty_hint: str = "", entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.empty_hint = empty_hint  # said instead of "known: ..." when nothing is registered yet
        self._items: dict[str, T] = {}
        # Plug-ins register themselves when imported; the modules to import are found through this
        # entry-point group at the first lookup, so the core never names a plug-in package.
        self._group = entry_point_group

    def _load_entry_points(self) -> None:
        group, self._group = self._group, None  # once, and not again from inside a plug-in's import
        if group:
            from importlib.metadata import entry_points

            for ep in entry_points(group=group):
                ep.load()

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that stores its argument under ``name`` (names are unique)."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self.register(name)(obj)

    def get(self, name: str) -> T:
        self._load_entry_points()
        if name not in self._items:
            if not self._items and self.empty_hint:
                raise CompressorError(f"unknown {self.kind} {name!r}: {self.empty_hint}")
            raise CompressorError(unknown_name_message(self.kind, name, self.names()))
        return self._items[name]

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def did_you_mean(name: str, known: list[str], n: int = 1) -> str:
    """``"; did you mean 'lr'?"`` for the closest of ``known`` (or ``""``): the one suggestion helper."""
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.5 if n > 1 else 0.6)
    if not close:
        return ""
    return f"; did you mean {', '.join(close) if n > 1 else repr(close[0])}?"


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """``unknown teacher 'clip-vit-b15'; did you mean clip-vit-b16? (known: ...)``."""
    hint = did_you_mean(name, known, n=3)
    shown = ", ".join(known[:30]) + (", ..." if len(known) > 30 else "")
    return f"unknown {kind} {name!r}{hint} (known: {shown})"
