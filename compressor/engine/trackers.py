"""Experiment trackers beside ``metrics.jsonl``: TensorBoard, Weights & Biases and MLflow (``--logger``).

``metrics.jsonl`` stays the record of every value; a tracker shows the same rows in the tool the user already has
open. Each tracker is one small class in its own module behind one protocol (:mod:`compressor.engine.tracker_base`:
``tracker_tensorboard``, ``tracker_wandb``, ``tracker_mlflow``), found by name in :data:`TRACKERS` and imported on
first use, so ``--logger tensorboard,wandb,mlflow`` is a list of names::

    start(session) → log(step, values) … → log_summary(values) → close()

The session's parameters are the run's ``config.yaml`` with ``run.json`` under ``run`` (the resolved configuration
and what the trainer recorded: teachers, device, precision, versions).

Offline first, as everything here: W&B runs with ``mode="offline"`` unless the user set ``WANDB_MODE`` (``wandb
sync RUN/wandb/offline-run-*`` uploads it later); MLflow writes its file store ``RUN/mlruns`` unless
``MLFLOW_TRACKING_URI`` is set. ``RUN/trackers.json`` keeps their run ids, so a resumed training and ``compress
run``'s later stages (eval, export, bench figures) log into the same tracker runs.

Resume: ``metrics.jsonl`` drops the rows after the resumed step, and the loop writes them again. TensorBoard purges
its events from that step (``rewinds``); W&B and MLflow cannot delete a logged point, so they skip the steps they
already hold, and each step is in each tracker once. Training resumes bit-exactly, so the skipped rows held the
same losses (only the throughput ``ips`` of those steps is the first attempt's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from compressor.engine.tracker_base import Session, Tracker
from compressor.errors import CompressorError
from compressor.rundir import RunDir
from compressor.utils.extras import available, missing_message

log = logging.getLogger("compressor")

DEFAULT = "tensorboard"
NONE = "none"


def _tensorboard() -> type:
    from compressor.engine.tracker_tensorboard import TensorBoardTracker

    return TensorBoardTracker


def _wandb() -> type:
    from compressor.engine.tracker_wandb import WandbTracker

    return WandbTracker


def _mlflow() -> type:
    from compressor.engine.tracker_mlflow import MlflowTracker

    return MlflowTracker


# name → (the tracker's class, loaded on first use; its module, an extra; what needs it, for the missing-extra line)
TRACKERS: dict[str, tuple[Any, str, str]] = {
    "tensorboard": (_tensorboard, "tensorboard", "TensorBoard logging"),
    "wandb": (_wandb, "wandb", "--logger wandb"),
    "mlflow": (_mlflow, "mlflow", "--logger mlflow"),
}


def parse_loggers(text: str | None) -> list[str]:
    """``"tensorboard, wandb"`` → ``["tensorboard", "wandb"]``; ``none`` → ``[]``; an unknown name is one line."""
    from compressor.registry import did_you_mean

    names: list[str] = []
    for part in str(text if text is not None else DEFAULT).split(","):
        name = part.strip().lower()
        if not name or name in names:
            continue
        if name != NONE and name not in TRACKERS:
            raise CompressorError(f"unknown --logger {name!r}{did_you_mean(name, [*TRACKERS, NONE])} (choose from "
                                  f"{', '.join(TRACKERS)}, comma-separated, or {NONE})")
        names.append(name)
    if NONE in names and len(names) > 1:
        raise CompressorError(f"--logger {NONE} means no tracker; it cannot be combined with "
                              f"{', '.join(n for n in names if n != NONE)}")
    return [n for n in names if n != NONE]


def check_loggers(text: str | None) -> str:
    """The canonical ``--logger`` value; W&B or MLflow not installed is one line naming the extra.

    TensorBoard, the default, is not required: without it training says so once and goes on (metrics.jsonl has
    every value), so a plain ``pip install compressor`` trains.
    """
    names = parse_loggers(text)
    for name in names:
        _, module, purpose = TRACKERS[name]
        if name != "tensorboard" and not available(module):
            raise CompressorError(missing_message(module, purpose))
    return ",".join(names) or NONE


def open_trackers(run: RunDir, logger: str | None, *, resume_step: int | None,
                  last_step: int = 0) -> list[Tracker]:
    """Start the trackers ``logger`` names for ``run`` (see :class:`Session`); a tracker that cannot start is one
    line naming it (the others already started are closed first)."""
    names = parse_loggers(logger)
    if not names:
        return []
    session = Session(run, run_params(run), resume_step, last_step)
    started: list[Tracker] = []
    for name in names:
        factory, module, purpose = TRACKERS[name]
        if not available(module):
            if name == "tensorboard":  # the default: an extra a plain install lacks; metrics.jsonl has every value
                log.info("no TensorBoard files: %s; metrics.jsonl has every value", missing_message(module, purpose))
                continue
            close_all(started)
            raise CompressorError(missing_message(module, purpose))
        tracker = factory()()
        try:
            tracker.start(session)
        except CompressorError:
            close_all(started)
            raise
        except Exception as err:  # a tracker's own failure (a bad WANDB_MODE, an unreachable tracking server)
            close_all(started)
            detail = " ".join(str(err).split())[:300] or type(err).__name__
            raise CompressorError(f"--logger {name} could not start: {type(err).__name__}: {detail}; fix that "
                                  f"or leave {name} out of --logger") from err
        started.append(tracker)
    return started


def close_all(trackers: list[Tracker]) -> None:
    for t in trackers:
        try:
            t.close()
        except Exception as err:  # closing one must not keep the others open
            log.warning("closing the %s run failed: %s", t.name, err)


def log_figures(run_dir: str | RunDir, logger: str | None, values: dict[str, float]) -> None:
    """Add figures measured after training (``compress run``'s eval, export and bench) to the run's trackers.

    They become summary values (W&B's run summary; MLflow and TensorBoard points at the last training step).
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if not values or not parse_loggers(logger):
        return
    trackers = open_trackers(run, logger, resume_step=None, last_step=last_logged_step(run))
    try:
        for t in trackers:
            try:
                t.log_summary(values)
            except Exception as err:  # the figures are in their JSON files whatever a tracker does
                log.warning("%s: logging %d figures failed (%s: %s)", t.name, len(values), type(err).__name__, err)
    finally:
        close_all(trackers)


# -- the run's files ------------------------------------------------------------------------------------------
def run_params(run: RunDir) -> dict[str, Any]:
    """``config.yaml`` with ``run.json`` under ``run``: the parameters each tracker records for the run."""
    params: dict[str, Any] = dict(run.read_config()) if run.config_path.is_file() else {}
    if run.info_path.is_file():
        try:
            params["run"] = json.loads(run.info_path.read_text())
        except ValueError:
            log.warning("%s is not valid JSON; the trackers get config.yaml only", run.info_path)
    return params


def last_logged_step(run: RunDir) -> int:
    """The largest step in ``metrics.jsonl`` (0 when there is none)."""
    return max(_steps(run), default=0)


def _steps(run: RunDir) -> Iterator[int]:
    if not run.metrics_path.is_file():
        return
    for line in run.metrics_path.read_text().splitlines():
        try:
            step = json.loads(line).get("step") if line.strip() else None
        except (ValueError, AttributeError):
            continue
        if isinstance(step, int):
            yield step
