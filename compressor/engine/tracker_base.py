"""What every experiment tracker shares (:mod:`compressor.engine.trackers`): the session it opens, the protocol
it follows, and ``RUN/trackers.json``, where W&B's and MLflow's run ids are kept so a resume continues them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from compressor.rundir import RunDir
from compressor.utils.io import atomic_write_text


@dataclass(frozen=True)
class Session:
    """What a tracker needs to open (or continue) the run of ``run``."""

    run: RunDir
    params: dict[str, Any]  # config.yaml, with run.json under "run"
    resume_step: int | None  # training: the step it starts from (0: a new run); None: a stage adding figures
    last_step: int = 0  # the last step in metrics.jsonl: where figures logged after training are placed


class Tracker(Protocol):
    """One experiment tracker. ``rewinds``: it drops its own points after the resumed step (else they are skipped)."""

    name: ClassVar[str]
    rewinds: ClassVar[bool]

    def start(self, session: Session) -> None: ...

    def log(self, step: int, values: dict[str, float]) -> None: ...

    def log_summary(self, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def flatten(values: dict[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested mappings as one level of ``a.b.c`` keys (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def read_ids(run: RunDir) -> dict[str, Any]:
    """``trackers.json``: each tracker's run id for this run directory (``{}`` when there is none)."""
    try:
        data = json.loads(run.trackers_path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_id(run: RunDir, name: str, record: dict[str, Any]) -> None:
    """Record tracker ``name``'s run (its id and where it lives) in ``trackers.json``, atomically."""
    data = read_ids(run)
    data[name] = record
    atomic_write_text(run.trackers_path, json.dumps(data, indent=2) + "\n")
