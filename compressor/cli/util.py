"""Shared CLI helpers: logging through rich."""

from __future__ import annotations

import logging

from rich.logging import RichHandler


def setup_logging(level: int = logging.INFO) -> None:
    logger = logging.getLogger("compressor")
    if not logger.handlers:
        handler = RichHandler(show_path=False, show_time=False, markup=False)
        logger.addHandler(handler)
    logger.setLevel(level)
