"""The studio end to end in a real browser: headless Chromium driven by Playwright.

It starts the app on a free loopback port with the demo model, uploads the bundled rocket photo,
paints a stroke with mouse events, adds an exemplar, runs, waits for the result, downloads the result
and its map, checks that every pixel outside the stroke equals the source and that the stroke
changed, drops the result PNG back on the page to restore its settings, then undoes and checks that
the source is back bit for bit.

Needs Playwright for Python and a Chromium binary (PIXELS_CHROMIUM, default /usr/bin/chromium; no
`playwright install` download is used). Without them the test is skipped, unless
PIXELS_REQUIRE_BROWSER=1 (as CI sets it), which makes it fail instead. Screenshots go to the test's
temporary folder, and also into PIXELS_APP_SCREENSHOTS=DIR when that is set.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixels.demo import asset

CHROMIUM = os.environ.get("PIXELS_CHROMIUM", "/usr/bin/chromium")
REQUIRED = os.environ.get("PIXELS_REQUIRE_BROWSER") == "1"
BUDGET_S = 180  # the whole test, model loading and the edit included
ASSETS = Path(__file__).resolve().parents[1] / "src" / "pixels" / "demo" / "photos"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def unavailable(reason: str) -> None:
    """Skip, or fail where CI requires the browser test to run."""
    if REQUIRED:
        pytest.fail(f"PIXELS_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


class Deadline:
    """Every wait of the test draws on one time budget, so the whole test is bounded."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def ms(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            pytest.fail(f"the browser test ran past its {BUDGET_S} s budget")
        return left * 1000


@pytest.fixture
def shots(tmp_path):
    """save(page, name): a full-page screenshot into tmp_path and PIXELS_APP_SCREENSHOTS (if set)."""
    folder = tmp_path / "screenshots"
    folder.mkdir()
    extra = os.environ.get("PIXELS_APP_SCREENSHOTS")

    def save(page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return save


def browser_driver():
    """Playwright's `sync_playwright`, once Playwright, Gradio and the Chromium binary are known to be there."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install playwright)")
    try:
        import gradio  # noqa: F401
    except ImportError:
        unavailable("Gradio is not installed (pip install -e '.[app]')")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PIXELS_CHROMIUM)")
    return sync_playwright


def open_page(page, running, deadline: Deadline) -> None:
    """Load the studio in `page` and wait until the server has opened the page's session."""
    page.goto(running.url, wait_until="domcontentloaded", timeout=deadline.ms())
    page.wait_for_selector("#pixels-run", timeout=deadline.ms())
    while not len(running.context.sessions) and deadline.ms() > 0:
        time.sleep(0.05)


def test_paint_add_an_exemplar_run_download_and_undo_in_chromium(tmp_path, shots):
    sync_playwright = browser_driver()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from pixels.app.server import start

    deadline = Deadline(BUDGET_S)
    source = np.asarray(asset("rocket.png"))
    running = start("demo", port=None, device="cpu")
    root = running.context.root
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1400, "height": 1000}, accept_downloads=True,
            )
            try:
                page = browser.new_page()
                open_page(page, running, deadline)

                def status_shows(text: str) -> None:
                    """Until the status line says `text`; an error message shown instead fails at once."""
                    page.wait_for_function(
                        "t => document.querySelector('#pixels-status').innerText.includes(t)"
                        " || document.querySelector('.toast-body.error')", arg=text, timeout=deadline.ms(),
                    )
                    errors = page.locator(".toast-body.error")
                    assert not errors.count(), f"the page shows an error: {errors.first.inner_text()}"

                def download(selector: str, name: str) -> Path:
                    with page.expect_download(timeout=deadline.ms()) as event:
                        page.click(selector, timeout=deadline.ms())
                    path = tmp_path / name
                    event.value.save_as(path)
                    return path

                # 1. The photo
                page.locator("#pixels-source input[type=file]").set_input_files(str(ASSETS / "rocket.png"))
                status_shows("192x128")

                # 2. A stroke across the upper right of the photo, with the default white brush
                box = page.locator("#pixels-canvas canvas").first.bounding_box()
                scale = min(box["width"] / 192, box["height"] / 128)  # the photo is fitted into the canvas
                left = box["x"] + (box["width"] - 192 * scale) / 2
                top = box["y"] + (box["height"] - 128 * scale) / 2
                start_xy, end_xy = (120, 30), (165, 30)  # photo pixels

                def screen(x: float, y: float) -> tuple[float, float]:
                    return left + x * scale, top + y * scale

                def stroke() -> None:
                    page.mouse.move(*screen(*start_xy))
                    page.mouse.down()
                    for k in range(1, 10):
                        page.mouse.move(*screen(start_xy[0] + (end_xy[0] - start_xy[0]) * k / 9, start_xy[1]))
                    page.mouse.up()

                # The server has the stroke when the map summary reports an edited area. The editor loads a
                # new photo asynchronously and that load clears the canvas: a stroke drawn in the same instant
                # is lost, so it is drawn again (at most three times).
                painted_js = ("() => { const m = document.querySelector('#pixels-map-summary').innerText"
                              ".match(/Map: ([0-9.]+) %/); return m !== null && parseFloat(m[1]) > 0; }")
                for _ in range(3):
                    stroke()
                    try:
                        page.wait_for_function(painted_js, timeout=min(10_000, deadline.ms()))
                        break
                    except PlaywrightTimeout:
                        continue
                else:
                    pytest.fail("three strokes painted on the canvas never reached the server")

                # 3. An exemplar: the moon photo, fitted into the painted area and grafted where it is white
                page.locator("#pixels-exemplar-1 input[type=file]").set_input_files(str(ASSETS / "moon.png"))
                page.wait_for_selector("#pixels-exemplar-1 img", timeout=deadline.ms())  # uploaded
                page.locator("#pixels-seed input, #pixels-seed textarea").first.fill("5")
                shots(page, "1-painted")

                # 4. Run (three quick clicks start one edit: Run is disabled at the first) and wait for the result
                page.click("#pixels-run")
                for _ in range(2):
                    page.click("#pixels-run", force=True, timeout=deadline.ms())  # lands on the disabled button
                status_shows("Done in")
                page.wait_for_function("() => !document.querySelector('#pixels-run').disabled", timeout=deadline.ms())
                assert running.context.engine.runs == 1, "more than one edit ran"
                shots(page, "2-result")

                # 5. Download the result and its map; outside the stroke every pixel is the source's
                result_png = download("#pixels-download-result", "result.png")
                map_png = download("#pixels-download-map", "map.png")
                result = np.asarray(Image.open(result_png).convert("RGB"))
                strength = np.asarray(Image.open(map_png))
                kept = strength == 0
                assert result.shape == source.shape
                np.testing.assert_array_equal(result[kept], source[kept])
                painted = ~kept
                assert painted.any() and (result[painted] != source[painted]).any()
                ys, xs = np.nonzero(painted)  # the map is where the stroke was drawn
                assert xs.min() <= start_xy[0] + 2 and xs.max() >= end_xy[0] - 2
                assert ys.min() <= start_xy[1] <= ys.max() and ys.max() < 100  # nothing near the bottom
                metadata = json.loads(Image.open(result_png).info["pixels"])
                defaults = running.context.engine.defaults  # the model's recommended settings, as the page shows
                assert metadata["seed"] == 5 and metadata["num_inference_steps"] == defaults["steps"] == 100
                assert metadata["strength"] == defaults["strength"] and len(metadata["exemplars"]) == 1

                # 6. Dropping that PNG on the page restores its settings (the seed among them)
                seed_field = page.locator("#pixels-seed input, #pixels-seed textarea").first
                seed_field.fill("")
                page.locator("#pixels-png-settings input[type=file]").set_input_files(str(result_png))
                page.wait_for_function(
                    "() => [...document.querySelectorAll('#pixels-seed input, #pixels-seed textarea')]"
                    ".some(e => e.value === '5')", timeout=deadline.ms(),
                )

                # 7. Undo: the source is back, bit for bit
                page.click("#pixels-undo")
                status_shows("back to the source")
                shots(page, "3-undone")
                current = np.asarray(Image.open(download("#pixels-download-current", "current.png")).convert("RGB"))
                np.testing.assert_array_equal(current, source)

                # 8. Redo brings the result back; a second Redo has nothing to redo: the page says so in words and
                # the result stays on screen (an instant event's error, shown like a queued one's)
                page.click("#pixels-redo")
                status_shows("Redone step 1")
                page.click("#pixels-redo")
                page.wait_for_selector(".toast-body.error", timeout=deadline.ms())
                assert "redo: nothing to redo" in page.locator(".toast-body.error").first.inner_text()
                assert page.locator("#pixels-slider img").count() > 0  # the result panel is not blanked

                # 9. Closing the tab ends the session: its temporary folder goes at once
                sessions = running.context.sessions
                folders = list((root / "sessions").iterdir())
                assert len(sessions) == 1 and len(folders) == 1
                page.close()
                while len(sessions) and deadline.ms() > 0:  # Gradio notices the closed tab by its heartbeat
                    time.sleep(0.1)
                assert not folders[0].exists()
            finally:
                browser.close()
    finally:
        running.close()
    assert not root.exists()  # every temporary file of the app is gone


def test_refused_uploads_say_why_and_change_nothing_in_chromium(tmp_path, shots):
    """A file that is not an image, and a photo over the limit: each is refused with a message naming the file
    and the limit, its box is cleared, and the photo being edited stays (no error badge over the page)."""
    sync_playwright = browser_driver()
    from pixels.app.server import start

    deadline = Deadline(BUDGET_S)
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"these are notes, not a picture")
    too_large = tmp_path / "poster.png"
    Image.fromarray(np.zeros((1100, 1000, 3), np.uint8)).save(too_large)
    running = start("demo", port=None, device="cpu", max_megapixels=1.0)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                open_page(page, running, deadline)
                page.locator("#pixels-source input[type=file]").set_input_files(str(ASSETS / "rocket.png"))
                page.wait_for_function("() => document.querySelector('#pixels-status').innerText.includes('192x128')",
                                       timeout=deadline.ms())
                for path, message in ((not_an_image, "source: notes.png is not an image in a format pixels reads"),
                                      (too_large, "source: 1000x1100 is 1,100,000 pixels, more than the limit of"
                                                  " 1,000,000")):
                    page.locator("#pixels-source input[type=file]").set_input_files(str(path))
                    page.wait_for_function("m => [...document.querySelectorAll('.toast-body.error')]"
                                           ".some(e => e.innerText.includes(m))", arg=message, timeout=deadline.ms())
                    page.wait_for_function("() => !document.querySelector('#pixels-source img')", timeout=deadline.ms())
                    status = page.locator("#pixels-status").inner_text()
                    assert status.startswith("Photo rocket.png, 192x128"), status  # the edited photo is still the rocket
                sessions = list(running.context.sessions._open.values())
                assert [s.history.source.image.size for s in sessions] == [(192, 128)]
                shown_whole = "() => { const i = document.querySelector('#pixels-sample input');" \
                              " return i.value.startsWith('rocket') && i.scrollWidth <= i.clientWidth; }"
                assert page.evaluate(shown_whole), "the sample's name is cut off"
                page.locator("#pixels-exemplar-1 input[type=file]").set_input_files(str(not_an_image))
                page.wait_for_function("() => [...document.querySelectorAll('.toast-body.error')]"
                                       ".some(e => e.innerText.includes('exemplar 1: notes.png is not an image'))",
                                       timeout=deadline.ms())
                page.wait_for_function("() => !document.querySelector('#pixels-exemplar-1 img')", timeout=deadline.ms())
                shots(page, "4-refused")
            finally:
                browser.close()
    finally:
        running.close()
