"""``RUN/pipeline.json``: per stage, the key (a hash of its configuration and the contents of its inputs).

A stage is current when its recorded key equals the key it would have now and it finished; then
``compress run`` skips it. Keys hash file *contents*, not times, so a re-trained student (even with the
same configuration) makes eval, export and bench stale, and touching a file does not.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from compressor.rundir import RunDir
from compressor.utils.io import atomic_write_text


def file_digest(path: Path) -> str | None:
    """SHA-256 of a file's bytes (``None`` when absent), read in 1 MiB blocks."""
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stage_key(**parts: Any) -> str:
    """A stable hash of JSON-able parts (configuration values and file digests)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class PipelineState:
    """Reads and atomically rewrites ``pipeline.json``; one record per stage."""

    def __init__(self, run_dir: Path) -> None:
        self.path = RunDir(run_dir).pipeline_path
        try:
            self.records: dict[str, dict[str, Any]] = json.loads(self.path.read_text()) if self.path.is_file() \
                else {}
        except json.JSONDecodeError:
            self.records = {}  # a damaged record only costs re-running stages

    def current(self, stage: str, key: str) -> bool:
        rec = self.records.get(stage) or {}
        return bool(rec.get("done")) and rec.get("key") == key

    def started_with(self, stage: str) -> str | None:
        return (self.records.get(stage) or {}).get("key")

    def start(self, stage: str, key: str) -> None:
        # Other fields (export's per-format keys) stay: they let an interrupted stage skip finished work.
        self.records[stage] = {**self.records.get(stage, {}), "key": key, "done": False,
                               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self.save()

    def finish(self, stage: str, key: str, seconds: float, **extra: Any) -> None:
        self.records[stage] = {**self.records.get(stage, {}), "key": key, "done": True,
                               "seconds": round(seconds, 1), **extra}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.records, indent=2) + "\n")
