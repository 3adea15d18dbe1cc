"""User-facing errors: one line that names the fix, printed by the CLI without a traceback."""

from __future__ import annotations


class CompressorError(Exception):
    """An error caused by the user's input or environment, with a message that says how to fix it.

    The CLI prints ``str(err)`` on one line and exits with ``exit_code``; library callers can catch it.
    """

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(" ".join(message.split()))
        if exit_code is not None:
            self.exit_code = exit_code


class TrainingDiverged(CompressorError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 3
