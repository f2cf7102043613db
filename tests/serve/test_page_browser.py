"""The web page in a real browser: Debian's chromium, headless, driven by Playwright over loopback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from cnnkit.api import load
from cnnkit.data.synthetic import make_scene
from tests.export.helpers import write_checkpoint
from tests.serve.conftest import running

CHROMIUM = Path(os.environ.get("CNNKIT_CHROMIUM", "/usr/bin/chromium"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no browser at {CHROMIUM} (apt-get install chromium)"),
]


@pytest.fixture
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.parametrize("task, shown", [("classify", "#bars .bar"), ("segment", "#legend .legend-row"),
                                         ("instance", "#instances table")])
def test_upload_on_the_page_shows_the_prediction(page, tmp_path, task, shown):
    model = load(write_checkpoint(tmp_path, task), device="cpu")
    image = tmp_path / "scene.png"
    Image.fromarray(make_scene(1, seed=5, size=96).image).save(image)
    with running(model) as url:
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('model').textContent.includes('classes')")
        assert task in page.text_content("#model")
        if task == "instance":
            page.fill("#score", "0.05")  # an untrained detector scores low: show what it finds
        page.set_input_files("#file", str(image))
        page.wait_for_selector("body[data-done='1']", timeout=30_000)
        assert page.is_visible("#overlay") and page.locator(shown).count() >= 1
        assert "done in" in page.text_content("#status")
        page.screenshot(path=str(tmp_path / f"{task}.png"))
