"""The report's headless-browser check is a test helper and a command (scripts/), not part of the installed package."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import compressor.report

ROOT = Path(__file__).resolve().parents[2]


def test_browser_check_ships_outside_the_package() -> None:
    assert importlib.util.find_spec("compressor.report.browser_check") is None
    package = Path(compressor.report.__file__).parent
    assert not any("chromium" in p.read_text() for p in package.glob("*.py"))  # nothing in it drives a browser
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_report_html.py"), "--help"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0 and "headless browser" in proc.stdout
