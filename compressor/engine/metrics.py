"""Run metrics: ``metrics.jsonl`` (one JSON object per logged step) and TensorBoard events."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from compressor.rundir import RunDir
from compressor.utils.extras import available, missing_message

log = logging.getLogger("compressor")


class MetricsLog:
    """Appends to ``metrics.jsonl``; on resume, rows after the resumed step are dropped first."""

    def __init__(self, run_dir: Path, resume_step: int = 0, tensorboard: bool = True) -> None:
        self.path = RunDir(run_dir).metrics_path
        if resume_step and self.path.exists():
            rows = [ln for ln in self.path.read_text().splitlines() if ln.strip()]
            kept = [ln for ln in rows if _step_of(ln) <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif not resume_step:
            self.path.write_text("")
        self.writer = None
        if tensorboard and not available("tensorboard"):  # an extra: metrics.jsonl holds every value anyway
            log.info("no TensorBoard files: %s; metrics.jsonl has every value",
                     missing_message("tensorboard", "TensorBoard logging"))
        elif tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(RunDir(run_dir).tensorboard_dir), purge_step=resume_step or None)

    def log(self, step: int, values: dict[str, float]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                self.writer.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 60
