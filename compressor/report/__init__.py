"""``compress report``: report.md and a self-contained report.html from a run directory."""

from compressor.report.build import write_report

__all__ = ["write_report"]
