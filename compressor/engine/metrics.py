"""Run metrics: ``metrics.jsonl`` (one JSON object per logged step), fanned out to the run's experiment trackers.

``metrics.jsonl`` is written first and holds every value; the trackers ``--logger`` names (TensorBoard by default,
W&B, MLflow: :mod:`compressor.engine.trackers`) get the same rows, each value under ``train/<name>``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from compressor.engine.tracker_base import Tracker
from compressor.engine.trackers import close_all, open_trackers
from compressor.rundir import RunDir

log = logging.getLogger("compressor")

UNREADABLE = 1 << 60  # the step of a row that does not parse (a torn last line): dropped on resume
PREFIX = "train/"  # the trackers' name of a metrics.jsonl value: train/loss, train/lr, train/knn_top1


class MetricsLog:
    """Appends to ``metrics.jsonl``; on resume, rows after the resumed step are dropped first.

    Args:
        run_dir: the run directory; its ``config.yaml`` and ``run.json`` (written before) are the trackers'
            parameters.
        resume_step: the step training continues from (0: a new run).
        logger: the trackers, as ``--logger`` spells them; ``None``: the ``logger`` of the run's ``config.yaml``.
    """

    def __init__(self, run_dir: Path, resume_step: int = 0, logger: str | None = None) -> None:
        run = RunDir(run_dir)
        self.path = run.metrics_path
        self.skip_through = 0  # the last step an earlier attempt logged: trackers that cannot rewind hold it already
        if resume_step and self.path.exists():
            rows = [(ln, _step_of(ln)) for ln in self.path.read_text().splitlines() if ln.strip()]
            self.skip_through = max((step for _, step in rows if step < UNREADABLE), default=0)
            kept = [ln for ln, step in rows if step <= resume_step]
            self.path.write_text("".join(ln + "\n" for ln in kept))
        elif not resume_step:
            self.path.write_text("")
        if logger is None:
            logger = str(run.read_config().get("logger") or "tensorboard") if run.config_path.is_file() \
                else "tensorboard"
        self.trackers: list[Tracker] = open_trackers(run, logger, resume_step=resume_step,
                                                     last_step=resume_step)

    def log(self, step: int, values: dict[str, float]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps({"step": step, **values}) + "\n")
        named = {PREFIX + k: v for k, v in values.items()}
        for t in list(self.trackers):
            if not t.rewinds and step <= self.skip_through:
                continue  # logged by the attempt this run resumed from (see compressor.engine.trackers)
            try:
                t.log(step, named)
            except OSError:
                raise  # a full disk: the trainer names it
            except Exception as err:  # a tracker's own failure must not stop training: metrics.jsonl has the row
                log.warning("%s logging failed at step %d (%s: %s); training goes on without it, metrics.jsonl "
                            "has every value", t.name, step, type(err).__name__, err)
                self.trackers.remove(t)
                close_all([t])

    def close(self) -> None:
        close_all(self.trackers)
        self.trackers = []


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return UNREADABLE
