"""``--logger tensorboard`` (the default): ``RUN/tb`` event files, the ``tensorboard`` extra."""

from __future__ import annotations

from typing import Any, ClassVar

from compressor.engine.tracker_base import Session


class TensorBoardTracker:
    """``RUN/tb`` event files (the ``tensorboard`` extra; without it ``metrics.jsonl`` still has every value)."""

    name: ClassVar[str] = "tensorboard"
    rewinds: ClassVar[bool] = True  # purge_step drops the events of an interrupted attempt past the resumed step

    def __init__(self) -> None:
        self.writer: Any = None
        self.last_step = 0

    def start(self, session: Session) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.last_step = session.last_step
        purge = session.resume_step or None  # None for a new run and for figures added after training
        self.writer = SummaryWriter(str(session.run.tensorboard_dir), purge_step=purge)

    def log(self, step: int, values: dict[str, float]) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def log_summary(self, values: dict[str, float]) -> None:
        self.log(self.last_step, values)  # one point at the end of the curves

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
