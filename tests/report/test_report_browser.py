"""report.html in a real browser (Debian's chromium, headless, through Playwright), opened from disk: every
picture decodes and every inline diagram has a size, with no network to fetch anything from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser import MARKS, browser_page

pytestmark = MARKS


@pytest.fixture
def page():
    with browser_page(offline=True) as page:  # the report must need nothing from the network
        yield page


def test_every_picture_of_the_report_shows(page, trained_run: Path, tmp_path: Path):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((trained_run / "report.html").resolve().as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
    assert len(images) >= 10  # curves, confusion matrix, 8 worst images, maps
    broken = [alt for alt, complete, width in images if not (complete and width > 0)]
    assert not broken, broken
    sizes = page.evaluate("[...document.querySelectorAll('section svg')].map(s => { const r = "
                          "s.getBoundingClientRect(); return [r.width, r.height]; })")
    assert all(w > 0 and h > 0 for w, h in sizes), sizes
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert page.locator("section").count() == 6 and page.title() == f"classify/{trained_run.name}"
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
