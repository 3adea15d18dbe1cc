"""Rich progress helpers (they fall back to plain iteration when stdout is not a terminal)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


def make_progress(*extra: str, disable: bool = False) -> Progress:
    """A progress bar with the given extra fields shown as ``{task.fields[name]}`` (``disable``: draw nothing)."""
    cols = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    cols += [TextColumn(f"{{task.fields[{f}]}}") for f in extra]
    cols += [TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    return Progress(*cols, transient=False, disable=disable)


def track(items: Iterable[T], *, description: str, total: int | None = None) -> Iterator[T]:
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
