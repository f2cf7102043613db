"""Headless chromium for the browser tests (Debian's package, driven by Playwright): the marks that skip
a test without it, and a page fixture's body."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("CNNKIT_CHROMIUM", "/usr/bin/chromium"))

MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no browser at {CHROMIUM} (apt-get install chromium)"),
]


@contextmanager
def browser_page(offline: bool = False) -> Iterator[Any]:
    """A new page of a headless chromium; ``offline``: every request to the network fails."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser.new_context(offline=offline).new_page()
        finally:
            browser.close()
