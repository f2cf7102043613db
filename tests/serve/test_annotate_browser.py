"""cnnkit annotate's page in a real browser (Debian's chromium, headless, offline but for loopback): a click
draws the mask, accept writes the mask file, a reload shows the object again. The store is cnnkit's; the
clicker a fake (disks around the clicks: fast and exact)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from cnnkit.annotate import AnnotationStore
from cnnkit.serve.annotate import create_annotate_app
from tests.browser import MARKS, browser_page
from tests.serve.annotate_fakes import FakeClicker, scenes
from tests.serve.conftest import serving

pytestmark = MARKS


@contextmanager
def local_page(url: str) -> Iterator[tuple]:
    """A chromium page that reaches ``url``'s server only (anything else is aborted and listed), and the
    list of the page's script errors and outside requests."""
    with browser_page() as page:
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(f"script error: {e}"))

        def only_local(route):
            if route.request.url.startswith(url):
                route.continue_()
            else:
                problems.append(f"outside request: {route.request.url}")
                route.abort()

        page.route("**/*", only_local)
        yield page, problems


def store_of(tmp_path, classes):
    return AnnotationStore(scenes(tmp_path / "photos", n=2, size=96), tmp_path / "out", classes)


def click_canvas(page, x: float, y: float, button: str = "left") -> None:
    """Click the canvas at image pixel (x, y), whatever its size on the screen."""
    box = page.locator("#canvas").bounding_box()
    width, height = page.evaluate("[document.getElementById('canvas').width, document.getElementById('canvas').height]")
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height,
                     button=button)


def canvas_pixel(page, x: int, y: int) -> list[int]:
    return page.evaluate(f"Array.from(document.getElementById('canvas').getContext('2d')"
                         f".getImageData({x}, {y}, 1, 1).data)")


def test_click_accept_and_reload(tmp_path):
    store = store_of(tmp_path, ["cell", "debris"])
    app = create_annotate_app(store, FakeClicker(radius=10), ["cell", "debris"])
    with serving(app) as url, local_page(url) as (page, problems):
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert "image 1/2" in page.text_content("#status") and "clicker: fake" in page.text_content("#status")
        before = canvas_pixel(page, 40, 50)
        click_canvas(page, 40, 50)
        page.wait_for_selector("body[data-ready='1'][data-clicks='1']")
        assert int(page.get_attribute("body", "data-area")) > 0
        assert canvas_pixel(page, 40, 50) != before  # the mask is drawn over the image
        click_canvas(page, 55, 50, button="right")  # a negative click: the context menu stays shut
        page.wait_for_selector("body[data-ready='1'][data-clicks='2']")
        assert store.draft(0)[1].positive is False
        page.select_option("#class", "debris")
        page.keyboard.press("Enter")  # accept
        page.wait_for_selector("body[data-objects='1'][data-clicks='0']")
        assert "debris" in page.text_content("#objects")
        saved = np.asarray(Image.open(tmp_path / "out" / "masks" / "scene0.png"))
        assert saved[50, 40] == 2 and saved[50, 48] == 0  # debris is class 2; the negative click cut
        page.reload()
        page.wait_for_selector("body[data-ready='1'][data-objects='1']")
        assert "debris" in page.text_content("#objects")
        page.keyboard.press("n")  # the next image, then back with the arrow
        page.wait_for_selector("body[data-index='1'][data-ready='1']")
        page.keyboard.press("ArrowLeft")
        page.wait_for_selector("body[data-index='0'][data-objects='1']")
        page.keyboard.press("Control+z")  # no clicks: the object goes
        page.wait_for_selector("body[data-objects='0']")
        assert not problems, problems


def test_keys_undo_a_click_and_done_moves_on(tmp_path):
    store = store_of(tmp_path, ["object"])
    with serving(create_annotate_app(store, FakeClicker())) as url, local_page(url) as (page, problems):
        page.goto(url + "/#0")
        page.wait_for_selector("body[data-ready='1']")
        click_canvas(page, 30, 30)
        page.wait_for_selector("body[data-clicks='1'][data-ready='1']")
        page.keyboard.press("Backspace")
        page.wait_for_selector("body[data-clicks='0']")
        assert page.get_attribute("body", "data-area") == "0" and store.draft(0) == []
        page.keyboard.press("Enter")  # nothing to accept: said, nothing saved
        page.wait_for_function("document.getElementById('message').textContent.includes('click on an object')")
        page.keyboard.press("d")
        page.wait_for_selector("body[data-index='1'][data-ready='1']")
        assert "1/2 done" in page.text_content("#status") and store.status()[0]["done"]
        assert not problems, problems


def test_an_unreadable_image_does_not_stop_n_and_p(tmp_path):
    # regression: with a corrupt image first, N tried image 2 forever and the images after it were out of reach
    folder = scenes(tmp_path / "photos", n=3)
    (folder / "scene1.png").write_bytes(b"not a picture")
    store = AnnotationStore(folder, tmp_path / "out", ["cell"])
    with serving(create_annotate_app(store, FakeClicker(), ["cell"])) as url, local_page(url) as (page, problems):
        page.goto(url + "/")
        page.wait_for_selector("body[data-index='0'][data-ready='1']")
        page.keyboard.press("n")
        page.wait_for_selector("body[data-index='1']")
        page.wait_for_selector("#message.error")
        message = page.text_content("#message")
        assert "scene1.png" in message and "--skip-bad" not in message
        page.keyboard.press("n")
        page.wait_for_selector("body[data-index='2'][data-ready='1']")
        page.keyboard.press("p")
        page.wait_for_selector("body[data-index='1']")
        page.keyboard.press("p")
        page.wait_for_selector("body[data-index='0'][data-ready='1']")
