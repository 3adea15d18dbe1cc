"""``--logger wandb``: the run's metrics and parameters in Weights & Biases, offline unless asked otherwise.

W&B writes under ``RUN/wandb/`` (``wandb.init(dir=RUN)``), in offline mode unless the user set ``WANDB_MODE``:
nothing here reaches the network, and ``wandb sync RUN/wandb/offline-run-*`` uploads the run later. The run id is
kept in ``RUN/trackers.json``; a resumed training and ``compress run``'s later stages continue the same run
(``resume="allow"``), each session in its own ``offline-run-<time>-<id>`` folder, which ``wandb sync`` joins into
the one run. ``WANDB_PROJECT`` and ``WANDB_ENTITY`` are W&B's own; the project defaults to ``compressor``.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any, ClassVar

from compressor.engine.tracker_base import Session, read_ids, write_id
from compressor.rundir import RunDir
from compressor.utils.extras import require

PROJECT = "compressor"


class WandbTracker:
    name: ClassVar[str] = "wandb"
    rewinds: ClassVar[bool] = False

    def __init__(self) -> None:
        self.run: Any = None

    def start(self, session: Session) -> None:
        wandb = require("wandb", "--logger wandb")
        previous = read_ids(session.run).get(self.name) or {}
        run_id = previous.get("id")  # None: W&B picks one, recorded below
        if run_id:
            _next_second(session.run, run_id)
        self.run = wandb.init(
            project=None if os.environ.get("WANDB_PROJECT") else PROJECT,
            name=session.run.path.name,
            id=run_id,
            resume="allow",
            dir=str(session.run.path.resolve()),
            mode=None if os.environ.get("WANDB_MODE") else "offline",
            # training records its configuration (a resumed one its own: a larger --max-steps, say); a later stage
            # leaves it as training recorded it
            config=session.params if session.resume_step is not None or not run_id else None,
            allow_val_change=True,
            settings=wandb.Settings(console="off", silent=True),  # our own log and progress bar stay ours
        )
        write_id(session.run, self.name, {"id": self.run.id, "project": self.run.project})

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def log_summary(self, values: dict[str, float]) -> None:
        self.run.summary.update(values)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None


def _next_second(run: RunDir, run_id: str) -> None:
    """Wait, if need be, until W&B's folder for a new session of ``run_id`` will not be an earlier session's.

    W&B names a session's folder ``offline-run-<YYYYmmdd_HHMMSS>-<id>``: two sessions of one run started within
    the same second (a stage right after training) would write into one folder.
    """
    pattern = re.compile(rf"run-(\d{{8}}_\d{{6}})-{re.escape(run_id)}$")
    stamps = {m.group(1) for p in (run.wandb_dir.iterdir() if run.wandb_dir.is_dir() else ())
              if (m := pattern.search(p.name))}
    for _ in range(20):
        now = {time.strftime("%Y%m%d_%H%M%S"), time.strftime("%Y%m%d_%H%M%S", time.gmtime())}
        if not now & stamps:
            return
        time.sleep(0.1)
