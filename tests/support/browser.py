"""One way to start the real browser the page tests drive: Debian's chromium through Playwright's sync API."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from isa.web.browser import CHROMIUM_ARGS

CHROMIUM = "/usr/bin/chromium"
ARGS = CHROMIUM_ARGS  # the flags the product's own browser pool starts chromium with


def artifacts_dir() -> Path:
    """Where page tests leave screenshots: $ISA_ARTIFACTS_DIR, else a folder under the system temp dir."""
    path = Path(os.environ.get("ISA_ARTIFACTS_DIR") or Path(tempfile.gettempdir()) / "isa-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def chromium(timeout_ms: int = 30_000) -> Iterator[Any]:
    """A headless chromium, closed on exit; `expect(...)` waits at most `timeout_ms` for each assertion."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=timeout_ms)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
