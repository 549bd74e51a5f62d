"""Headless Chromium (Debian's /usr/bin/chromium through playwright) for the UI tests, and where their
screenshots go (test-artifacts/screenshots/, gitignored)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support.paths import REPO

SHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium() -> Iterator[Any]:
    """A launched headless Chromium (playwright's Browser), closed afterwards."""
    from playwright.sync_api import sync_playwright  # only the tests that drive a browser need it

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()
