"""The web page in a real browser: Debian's chromium, headless, driven by Playwright over loopback."""

from __future__ import annotations

import pytest
from PIL import Image

from cnnkit.api import load
from cnnkit.data.synthetic import make_scene
from tests.browser import MARKS, browser_page
from tests.export.helpers import write_checkpoint
from tests.serve.conftest import running

pytestmark = MARKS


@pytest.fixture
def page():
    with browser_page() as page:
        yield page


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


def test_the_explain_switch_shows_heatmaps(page, tmp_path):
    model = load(write_checkpoint(tmp_path, "classify"), device="cpu")
    image = tmp_path / "scene.png"
    Image.fromarray(make_scene(2, seed=5, size=64).image).save(image)
    with running(model) as url:
        page.goto(url + "/")
        page.wait_for_selector("#explainbox:not([hidden])")  # a checkpoint: the switch is offered
        page.check("#explain")
        page.select_option("#explain-method", "gradcam")
        page.set_input_files("#file", str(image))
        page.wait_for_selector("body[data-explained='1']", timeout=30_000)
        page.wait_for_function("[...document.querySelectorAll('#explanations img')].every("
                               "(img) => img.complete && img.naturalWidth === 64)")
        assert page.locator("#explanations figcaption").count() >= 1 and "gradcam" in page.text_content(
            "#explain-status")
        assert page.is_visible("#overlay")  # the prediction is shown too
        page.screenshot(path=str(tmp_path / "explain.png"))
