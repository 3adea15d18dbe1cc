"""How an official checkpoint's keys map onto our module (data only: the zoo declares one per teacher)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """How an official checkpoint maps onto our module.

    ``prefix``: keys of the encoder we keep, e.g. ``base_encoder.`` (after ``module.`` is stripped; a
    file whose keys lack the prefix altogether, such as an already-converted backbone, is taken as is).
    ``drop``: ``(group label, fnmatch patterns)`` matched on the key after ``module.`` is stripped.
    """

    prefix: str = ""
    drop: tuple[tuple[str, tuple[str, ...]], ...] = ()
