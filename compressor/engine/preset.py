"""The short-run preset: which runs train with other settings than the papers', and a record of each change.

The papers' optimisers, crops and loss weights are tuned for runs of 10⁵–10⁶ steps; a run of a few
hundred steps trains better with others (``RecipeConfig.short_run_settings``). :func:`resolve_preset` is the
one place that applies them; it says which fields it changed (paper value → value used), which the run's
start log line, ``run.json`` and the report show. The measurements behind each value, and which of them
chose a default rather than only check one, are in docs/benchmarks.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compressor.engine.recipe import OLD_PRESET_KEY, PRESETS, RecipeConfig, upgrade_preset_key
from compressor.errors import CompressorError

log = logging.getLogger("compressor")


@dataclass
class PresetChoice:
    """The preset a run trains with, why, and every field it changed: ``{field: (paper value, value used)}``."""

    name: str  # paper | short
    reason: str
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def line(self) -> str:
        """The run's start log line (and the report's): ``short-run preset (156 steps < 5000): lr 0.03 → 0.001, …``."""
        return describe_preset(self.to_json())

    def to_json(self) -> dict[str, Any]:
        """What ``run.json`` records under ``preset``."""
        return {"name": self.name, "reason": self.reason,
                "changes": {k: {"paper": p, "used": u} for k, (p, u) in self.changes.items()}}


def _show(value: Any) -> str:
    return str(value) if isinstance(value, bool) or not isinstance(value, float) else f"{value:g}"


def describe_preset(recorded: Mapping[str, Any]) -> str:
    """One line from ``run.json``'s ``preset`` record (``PresetChoice.to_json``); the log and the report use it."""
    changes = recorded.get("changes") or {}
    listed = ", ".join(f"{k} {_show(v['paper'])} → {_show(v['used'])}" for k, v in changes.items())
    if recorded.get("name") == "short":
        return f"short-run preset ({recorded.get('reason')}): {listed or 'nothing changed'}"
    return f"paper preset ({recorded.get('reason')}): no short-run change"


def resolve_preset(cfg: RecipeConfig, total_steps: int, overrides: Mapping[str, Any] | None = None
                   ) -> PresetChoice:
    """Settle ``cfg.preset`` to ``paper`` or ``short`` for a run of ``total_steps`` optimiser steps; apply it.

    The one place that applies the short-run preset. The papers' settings are tuned for runs of 10⁵–10⁶
    steps; in a run of a few hundred they leave the student under-trained (the measurements, and which
    of them chose a default: docs/benchmarks.md). The rule, applied to every recipe alike:

    * ``short``: the config's ``short_run_settings`` replace its values (every recipe: the short-run
      optimiser ``SHORT_RUN_OPTIMIZER``, AdamW lr 1e-3 not scaled by the batch; the control and the
      teacher→student recipes: ``SHORT_RUN_CROP``; a recipe's own, e.g. mvmr's teacher weight, moma's
      CNN mask ratio, mokd's per-model rates), except a field given in ``overrides`` (so a resume from
      config.yaml, which records every field, keeps what it recorded, and ``--set lr=…`` on it is caught
      as a change); weight decay, warm-up, clipping and the recipe's own schedules stay;
    * ``paper``: the recipe's defaults as declared;
    * ``auto`` (default): ``short`` when the run has fewer than ``short_run_steps`` (5,000) steps and
      the user set none of the config's ``rate_fields`` (``optimizer``, ``lr``, ``scale_lr_by_batch``;
      mokd adds its per-model ones): a rate given by hand is kept, else ``paper``. The boundary is a
      judgement, far below the papers' shortest schedules; ``benchmarks/preset_boundary.py`` measures it.

    ``cfg`` gets the preset's values and ``preset`` set to the one applied, so config.yaml records what
    the run trained with; the old key ``optimizer_preset`` in ``overrides`` is read as ``preset``.
    Returns the choice, with every field whose value used differs from the declared (paper) default.
    """
    if cfg.preset not in PRESETS:
        raise CompressorError(f"preset={cfg.preset!r} is not one of {', '.join(PRESETS)}; "
                              "use --set preset=paper for the recipe's own settings")
    if overrides and {OLD_PRESET_KEY, OLD_PRESET_KEY.replace("_", "-")} & set(overrides):
        log.warning("recipe option %s is deprecated and read as preset (write --set preset=…)", OLD_PRESET_KEY)
    given = {str(k).replace("-", "_") for k in upgrade_preset_key(overrides)}
    preset = cfg.preset
    if preset == "auto":
        rates = sorted(given & set(cfg.rate_fields))
        if total_steps >= cfg.short_run_steps:
            preset, reason = "paper", f"{total_steps} steps ≥ {cfg.short_run_steps}"
        elif rates:
            preset, reason = "paper", f"{total_steps} steps < {cfg.short_run_steps}, but {', '.join(rates)} given"
        else:
            preset, reason = "short", f"{total_steps} steps < {cfg.short_run_steps}"
    else:
        reason = f"preset={preset}"
    paper = type(cfg)()
    changes: dict[str, tuple[Any, Any]] = {}
    if preset == "short":
        for key, value in cfg.short_run_settings.items():
            if key not in given:  # a value given with the preset (or recorded in config.yaml) wins
                setattr(cfg, key, value)
            if getattr(cfg, key) != getattr(paper, key):
                changes[key] = (getattr(paper, key), getattr(cfg, key))
    cfg.preset = preset
    return PresetChoice(preset, reason, changes)
