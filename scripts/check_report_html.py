"""Check a report.html in a real headless browser (Debian's ``chromium``), offline.

Three checks: (1) no external reference in the HTML text (``src``/``href``/``url()``/``@import``
pointing at ``http(s)://`` or ``//``); (2) loaded by Chromium with networking off (a new network
namespace via ``unshare -n`` where allowed, and every host name unresolvable and every request sent to
a dead proxy in any case), every ``<img>`` decodes and the page fetched no resource, as recorded by
the report's own probe script on ``<body>``; (3) a screenshot that is not blank.

    python scripts/check_report_html.py runs/demo/report.html [--screenshot shot.png]

A test helper and a command, not part of the package: tests/report/test_report.py loads it by path.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_EXTERNAL = re.compile(r"""(?:\b(?:src|href|action|poster|srcset)\s*=\s*["']?\s*|url\(\s*["']?|@import\s+["']?)"""
                       r"""(?:https?:)?//""", re.IGNORECASE)


def find_chromium() -> str | None:
    return next((p for b in BROWSERS if (p := shutil.which(b))), None)


def external_references(html: str) -> list[str]:
    """Every place in ``html`` that would make the browser fetch from a network location."""
    return [html[m.start():m.end() + 40] for m in _EXTERNAL.finditer(html)]


def _offline_prefix() -> list[str]:
    """``unshare -n`` (no network interface but loopback) when this process may create namespaces."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


@dataclass
class BrowserCheck:
    browser: str
    offline: str  # how networking was turned off
    images_total: int
    images_ok: int
    resources: int  # resources the page fetched (data: URIs are not fetched)
    external_refs: list[str] = field(default_factory=list)
    screenshot_distinct_colours: int = 0

    @property
    def ok(self) -> bool:
        return (not self.external_refs and self.images_total > 0 and self.images_ok == self.images_total
                and self.resources == 0 and self.screenshot_distinct_colours > 10)


def _chromium(browser: str, prefix: list[str], url: str, *extra: str, timeout: float = 120) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        cmd = [*prefix, browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-extensions", "--disable-background-networking", "--disable-sync",
               f"--user-data-dir={profile}", "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=5000", *extra, url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{browser} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc.stdout


def check_html(path: str | Path, *, screenshot: str | Path | None = None, browser: str | None = None) -> BrowserCheck:
    """Load ``path`` in headless Chromium with networking off; see the module docstring for the checks."""
    from PIL import Image

    path = Path(path).resolve()
    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium found (Debian: apt-get install chromium)")
    prefix = _offline_prefix()
    offline = ("unshare -n + " if prefix else "") + "dead proxy + unresolvable hosts"
    dom = _chromium(browser, prefix, path.as_uri(), "--dump-dom")
    body = re.search(r"<body([^>]*)>", dom)
    attrs = dict(re.findall(r'data-([a-z-]+)="(\d+)"', body.group(1))) if body else {}
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(screenshot) if screenshot else Path(tmp) / "shot.png"
        _chromium(browser, prefix, path.as_uri(), f"--screenshot={shot}", "--window-size=1200,3000",
                  "--hide-scrollbars")
        colours = len(Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20) or [])
    return BrowserCheck(browser=browser, offline=offline, images_total=int(attrs.get("images-total", 0)),
                        images_ok=int(attrs.get("images-ok", 0)), resources=int(attrs.get("resources", -1)),
                        external_refs=external_references(path.read_text()), screenshot_distinct_colours=colours)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html")
    p.add_argument("--screenshot")
    a = p.parse_args(argv)
    res = check_html(a.html, screenshot=a.screenshot)
    print(res)
    print("OK" if res.ok else "FAILED")
    return 0 if res.ok else 1


if __name__ == "__main__":
    sys.exit(main())
