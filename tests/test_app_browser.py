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

import io
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

    def save(page, name: str, full_page: bool = True) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
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


READY = "() => document.querySelector('#pixels-canvas .pxb').dataset.ready === '1'"  # the canvas has the photo


def photo_page(page, running, deadline: Deadline):
    """`open_page`, then the bundled rocket photo uploaded and on the canvas; returns the page's server session."""
    open_page(page, running, deadline)
    st = next(iter(running.context.sessions._open.values()))
    page.locator("#pixels-source input[type=file]").set_input_files(str(ASSETS / "rocket.png"))
    page.wait_for_function(READY, timeout=deadline.ms())
    return st


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
                shots(page, "studio", full_page=False)  # the first screen, as docs/app.png shows it

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

                # 6b. The history's thumbnails are clickable: the source, then the result, in the result panel
                thumbs = page.locator("#pixels-history button.thumbnail-item, #pixels-history .thumbnail-item")
                page.wait_for_function("() => document.querySelectorAll('#pixels-history .thumbnail-item').length"
                                       " >= 2", timeout=deadline.ms())
                thumbs.nth(0).click()
                status_shows("The source photo")
                thumbs.nth(1).click()
                status_shows("Showing step 1 (seed 5)")

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

                # 8b. Four variations in one run (one model job), shown as a grid; the third one picked
                for close in page.locator(".toast-close").all():  # the message above, read
                    close.click()
                page.wait_for_function("() => !document.querySelector('.toast-body.error')", timeout=deadline.ms())
                page.locator("#pixels-variations input").first.fill("4")
                page.click("#pixels-run")
                status_shows("4 variations (seeds 5, 6, 7, 8)")
                assert running.context.engine.runs == 2  # the four seeds ran as one job
                cells = page.locator("#pixels-variations-grid .thumbnail-item")
                page.wait_for_function("() => document.querySelectorAll('#pixels-variations-grid .thumbnail-item')"
                                       ".length === 4", timeout=deadline.ms())
                cells.nth(2).click()
                status_shows("Variation 3 (seed 7) shown")
                sessions_now = list(running.context.sessions._open.values())
                assert sessions_now[0].history.session.history[-1]["seed"] == 7
                shots(page, "8-variations", full_page=False)

                # 8b'. A step clicked in the history and continued from: the next run branches there; the
                # variation's step, clicked again, is what the saved session stands on
                thumbs.nth(1).click()  # the variations were made from step 1, which is the start
                status_shows("Showing step 1 (seed 5), made from the source photo. The next edit starts from here")
                assert page.locator("#pixels-continue").is_disabled()
                thumbs.nth(0).click()
                status_shows("The source photo. The next edit still starts from step 1")
                page.click("#pixels-continue", timeout=deadline.ms())  # waits until it is enabled
                status_shows("Continuing from the source photo: the next edit starts a new branch")
                page.locator("#pixels-variations input").first.fill("1")
                page.click("#pixels-run")
                status_shows("Done in")
                strip = "() => document.querySelector('#pixels-history').innerText.includes('3 · seed 5 · from source')"
                page.wait_for_function(strip, timeout=deadline.ms())  # the branch, beside step 1 and its child
                assert "2 · seed 7" in page.locator("#pixels-history").inner_text()
                thumbs.nth(2).click()
                status_shows("Showing step 2 (seed 7), made from step 1")

                # 8c. Save the session and load it back: the photo, the last step's map, its exemplar (in its tab,
                # with its own map) and its settings are on the page again
                page.click("#pixels-save-session")
                page.wait_for_selector("#pixels-saved-session a[download], #pixels-saved-session a",
                                       timeout=deadline.ms())
                zipped = next((root / "sessions").rglob("*-session-*.zip"))
                page.locator("#pixels-seed input, #pixels-seed textarea").first.fill("")
                page.locator("#pixels-load-session input[type=file]").set_input_files(str(zipped))
                status_shows("maps, exemplars and settings are back on the page")
                status_shows("3 step(s) in 2 branches")  # the whole tree, standing on the step shown when saved
                page.wait_for_function(strip, timeout=deadline.ms())
                page.wait_for_selector("#pixels-exemplar-1 img", timeout=deadline.ms())
                assert page.locator("#pixels-exemplar-1-placement input[value=auto]").is_checked()
                page.wait_for_function("() => /Map: [1-9]/.test(document.querySelector('#pixels-map-summary')"
                                       ".innerText)", timeout=deadline.ms())
                page.wait_for_function("() => [...document.querySelectorAll('#pixels-seed input, #pixels-seed"
                                       " textarea')].some(e => e.value === '7')", timeout=deadline.ms())
                shots(page, "9-restored", full_page=False)

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

                # a schedule over the server's limit is refused by name, and Run is usable again
                page.keyboard.press("r")
                box = page.locator("#pixels-canvas canvas.pxb-view").bounding_box()
                page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
                page.mouse.down()
                page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=3)
                page.mouse.up()
                page.locator("#pixels-steps input").first.fill("100000")
                page.click("#pixels-run")
                page.wait_for_function("m => [...document.querySelectorAll('.toast-body.error')]"
                                       ".some(e => e.innerText.includes(m))",
                                       arg="steps: this server runs at most 250 steps per edit, got 100000",
                                       timeout=deadline.ms())
                page.wait_for_function("() => !document.querySelector('#pixels-run').disabled", timeout=deadline.ms())
                assert running.context.engine.runs == 0
            finally:
                browser.close()
    finally:
        running.close()


def test_the_canvas_paints_a_translucent_overlay_zooms_undoes_and_drags_boxes_in_chromium(tmp_path, shots):
    """The canvas as an artist uses it: a half-strength stroke lands on the server as exactly 128/255 and shows as
    a translucent tint over the photo; at 200 % a dab lands on the photo pixel under the pointer; Ctrl+Z takes a
    stroke back and the eraser key paints 0; an exemplar's box is dragged on the photo and its fields follow; the
    canvas and the result sit side by side on a desktop screen."""
    sync_playwright = browser_driver()
    from pixels.app import canvas as cv
    from pixels.app import selecting
    from pixels.app.server import start

    deadline = Deadline(BUDGET_S)
    photo = np.asarray(asset("rocket.png").convert("RGB")).astype(np.int64)
    running = start("demo", port=None, device="cpu")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                st = photo_page(page, running, deadline)
                view = page.locator("#pixels-canvas canvas.pxb-view")

                # side by side: the canvas and the result panel are both on the first screen, next to each other
                canvas_box, result_box = view.bounding_box(), page.locator("#pixels-slider").bounding_box()
                assert result_box["x"] >= canvas_box["x"] + canvas_box["width"] - 1
                assert canvas_box["y"] + 100 < 900 and result_box["y"] + 100 < 900

                def set_brush(**values: int) -> None:
                    for name, value in values.items():
                        page.evaluate("([n, v]) => { const i = document.querySelector('#pixels-canvas .pxb-' + n);"
                                      " i.value = v; i.dispatchEvent(new Event('input')); }", [name, value])
                        readout = page.locator(f"#pixels-canvas .pxb-{name}-out").inner_text()
                        assert readout.startswith(str(value)), readout  # its value is shown beside it

                def strokes() -> int:
                    return int(page.evaluate("() => document.querySelector('#pixels-canvas .pxb').dataset.strokes"))

                def server_map() -> np.ndarray:
                    """The strength map as the server has it: switching the painted map keeps the strokes in it."""
                    sent = strokes()
                    page.wait_for_function("n => +document.querySelector('#pixels-canvas .pxb').dataset.strokes >= n",
                                           arg=sent, timeout=deadline.ms())
                    time.sleep(0.3)  # the stroke's event reaches the server before the switch's
                    page.locator("#pixels-target input[value='exemplar 1']").check()
                    page.wait_for_function("() => document.querySelector('#pixels-canvas .pxb').dataset.ready === '1'"
                                           , timeout=deadline.ms())
                    while st.target != "exemplar 1" and deadline.ms() > 0:
                        time.sleep(0.05)
                    strength = st.bases["strength"].copy()
                    page.locator("#pixels-target input[value=strength]").check()
                    while st.target != "strength" and deadline.ms() > 0:
                        time.sleep(0.05)
                    page.wait_for_function("() => document.querySelector('#pixels-canvas .pxb').dataset.ready === '1'",
                                           timeout=deadline.ms())
                    time.sleep(0.3)
                    return strength

                def fitted() -> tuple[float, float, float]:
                    box = view.bounding_box()
                    scale = min(box["width"] / 192, box["height"] / 128)
                    return (scale, box["x"] + (box["width"] - 192 * scale) / 2,
                            box["y"] + (box["height"] - 128 * scale) / 2)

                # 1. A stroke at 50 %, hard edge: exactly 128/255 on the server, a translucent tint on screen
                set_brush(level=50, size=20, hardness=100, opacity=100)
                scale, left, top = fitted()
                before = np.asarray(Image.open(io.BytesIO(view.screenshot())).convert("RGB")).astype(np.int64)
                page.mouse.move(left + 30 * scale, top + 40 * scale)
                page.mouse.down()
                for k in range(1, 11):
                    page.mouse.move(left + (30 + 6 * k) * scale, top + 40 * scale)
                page.mouse.up()
                page.mouse.move(5, 5)  # the brush outline away from the stroke
                time.sleep(0.3)
                after = np.asarray(Image.open(io.BytesIO(view.screenshot())).convert("RGB")).astype(np.int64)
                strength = server_map()
                assert strength[40, 60] == 128 / 255 and strength[40, 30:90].min() == 128 / 255
                assert (strength[:25] == 0).all() and (strength[56:] == 0).all()  # nowhere else
                dpr = after.shape[1] / view.bounding_box()["width"]
                sx = round((left - view.bounding_box()["x"] + 60.5 * scale) * dpr)
                sy = round((top - view.bounding_box()["y"] + 40.5 * scale) * dpr)
                alpha = round(128 * 0.6) / 255  # the overlay's opacity at this strength
                expected = photo[40, 60] * (1 - alpha) + np.array([255, 40, 40]) * alpha
                assert np.abs(before[sy, sx] - photo[40, 60]).max() <= 3  # the canvas shows the photo itself
                assert np.abs(after[sy, sx] - expected).max() <= 4, (after[sy, sx], expected)  # photo shows through
                shots(page, "5-canvas-overlay")
                shots(page, "canvas", full_page=False)  # as docs/canvas.png shows it

                # 2. Ctrl+Z takes the stroke back; Ctrl+Shift+Z brings it again
                page.keyboard.press("Control+z")
                assert not server_map().any()
                page.keyboard.press("Control+Shift+z")
                assert server_map()[40, 60] == 128 / 255

                # 3. At 200 % (key 2: the photo centred), a 3-pixel dab 40, 20 screen pixels right of and below the
                # centre lands on photo pixel (96 + 20, 64 + 10)
                page.keyboard.press("2")
                assert page.locator("#pixels-canvas .pxb-zoom-out").inner_text() == "200 %"
                set_brush(level=100, size=3)
                box = view.bounding_box()
                page.mouse.click(box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2 + 20)
                strength = server_map()
                ys, xs = np.nonzero(strength == 1)
                assert len(xs) and abs(xs.mean() - 116) <= 1 and abs(ys.mean() - 74) <= 1, (xs, ys)
                page.keyboard.press("0")  # fit again

                # 4. The eraser key: E, then a stroke over the 50 % line paints it back to 0
                page.keyboard.press("e")
                set_brush(size=40)
                scale, left, top = fitted()
                page.mouse.move(left + 20 * scale, top + 40 * scale)
                page.mouse.down()
                for k in range(1, 11):
                    page.mouse.move(left + (20 + 9 * k) * scale, top + 40 * scale)
                page.mouse.up()
                strength = server_map()
                assert (strength[30:50, 30:100] == 0).all() and strength[74, 116] == 1

                # 5. A rectangle (R) at 100 % around the dab, then an exemplar fitted into it; its box, dragged with
                # V, moves by the drag in photo pixels and the exemplar's fields follow (placement "box")
                page.keyboard.press("r")
                set_brush(level=100, opacity=100)
                page.mouse.move(left + 100 * scale, top + 60 * scale)
                page.mouse.down()
                page.mouse.move(left + 140 * scale, top + 90 * scale, steps=4)
                page.mouse.up()
                page.locator("#pixels-exemplar-1 input[type=file]").set_input_files(str(ASSETS / "moon.png"))
                while not st.boxes and deadline.ms() > 0:
                    time.sleep(0.05)
                x, y, w, h = st.boxes[0]["box"]
                assert (x, y, w, h) == (100, 60, 40, 30) and not st.boxes[0]["placed"]  # the box the edit uses
                fields = "() => ['x', 'y', 'w', 'h'].map(n => document.querySelector('#pixels-exemplar-1-' + n +" \
                         " ' input').value).join(',')"
                page.wait_for_function(f"() => ({fields})() === '100,60,40,30'", timeout=deadline.ms())  # shown too
                page.keyboard.press("v")
                time.sleep(0.5)  # the canvas has drawn the boxes it was sent
                page.mouse.move(left + (x + w / 2) * scale, top + (y + h / 2) * scale)
                page.mouse.down()
                page.mouse.move(left + (x + w / 2 + 20) * scale, top + (y + h / 2 + 10) * scale, steps=5)
                page.mouse.up()
                page.wait_for_function(f"() => ({fields})() === '120,70,40,30'", timeout=deadline.ms())
                assert page.locator("#pixels-exemplar-1-placement input[value=box]").is_checked()
                while not (st.boxes and st.boxes[0]["placed"]) and deadline.ms() > 0:
                    time.sleep(0.05)
                assert st.boxes[0]["box"] == [120, 70, 40, 30]
                shots(page, "6-canvas-box")
                assert cv.current_map(st, None) is st.bases["strength"]

                # 6. The Select tool (S): a click, an Alt+click (left out) and a dragged box, in photo pixels, go to
                # the selection's fields
                page.click("#pixels-select button")  # the accordion, opened (the page's layout may move)
                page.wait_for_selector("#pixels-select-boxes textarea", timeout=deadline.ms())
                view.scroll_into_view_if_needed()
                page.keyboard.press("s")
                scale, left, top = fitted()
                page.mouse.click(left + 30 * scale, top + 20 * scale)
                page.keyboard.down("Alt")
                page.mouse.click(left + 50 * scale, top + 25 * scale)
                page.keyboard.up("Alt")
                page.mouse.move(left + 10 * scale, top + 80 * scale)
                page.mouse.down()
                page.mouse.move(left + 60 * scale, top + 110 * scale, steps=4)
                page.mouse.up()
                value = "s => document.querySelector(s).value"
                page.wait_for_function(f"() => ({value})('#pixels-select-boxes textarea') !== ''", timeout=deadline.ms())
                (drawn,) = selecting.parse_boxes(page.evaluate(value, "#pixels-select-boxes textarea"))
                assert max(abs(a - b) for a, b in zip(drawn, (10, 80, 50, 30))) <= 1
                on, left_out = selecting.parse_clicks(page.evaluate(value, "#pixels-select-clicks textarea"))
                assert len(on) == len(left_out) == 1  # within a pixel: the page may scroll by a fraction
                assert abs(on[0][0] - 30) <= 1 and abs(on[0][1] - 20) <= 1
                assert abs(left_out[0][0] - 50) <= 1 and abs(left_out[0][1] - 25) <= 1
                page.click("#pixels-select-clear")
                page.wait_for_function(f"() => ({value})('#pixels-select-clicks textarea') === ''", timeout=deadline.ms())
                view.scroll_into_view_if_needed()  # clicking the button may have scrolled the page
                scale, left, top = fitted()
                page.mouse.click(left + 40 * scale, top + 40 * scale)  # the tool's list starts afresh too
                page.wait_for_function(f"() => ({value})('#pixels-select-clicks textarea') !== ''", timeout=deadline.ms())
                assert ";" not in page.evaluate(value, "#pixels-select-clicks textarea")
                assert page.evaluate(value, "#pixels-select-boxes textarea") == ""
            finally:
                browser.close()
    finally:
        running.close()


def test_cancelling_a_queued_edit_takes_it_out_of_the_queue_at_once_in_chromium(tmp_path):
    """Two users: A's edit holds the model, B's waits behind it. B's Cancel frees B at once (Run usable again
    while A's edit still runs), and A's edit goes on to its result."""
    sync_playwright = browser_driver()
    from pixels.app.server import start

    deadline = Deadline(BUDGET_S)
    running = start("demo", port=None, device="cpu")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                pages = []
                for _ in range(2):
                    page = browser.new_page(viewport={"width": 1440, "height": 900})
                    open_page(page, running, deadline)
                    page.locator("#pixels-source input[type=file]").set_input_files(str(ASSETS / "rocket.png"))
                    page.wait_for_function("() => document.querySelector('#pixels-canvas .pxb').dataset.ready"
                                           " === '1'", timeout=deadline.ms())
                    page.keyboard.press("r")  # a rectangle at 100 %
                    box = page.locator("#pixels-canvas canvas.pxb-view").bounding_box()
                    page.mouse.move(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4)
                    page.mouse.down()
                    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6, steps=3)
                    page.mouse.up()
                    page.wait_for_function("() => /Map: [1-9]/.test(document.querySelector('#pixels-map-summary')"
                                           ".innerText)", timeout=deadline.ms())
                    page.locator("#pixels-strength input[type=number]").first.fill("1")  # all 100 steps run
                    page.locator("#pixels-strength input[type=number]").first.press("Enter")
                    pages.append(page)
                a, b = pages
                a.click("#pixels-run")
                a.wait_for_function("() => /denoising|steps/.test(document.querySelector('#pixels-status')"
                                    ".innerText + document.querySelector('#pixels-slider').innerText)",
                                    timeout=deadline.ms())
                b.click("#pixels-run")
                b.wait_for_function("() => document.querySelector('#pixels-status').innerText.includes('queue')",
                                    timeout=deadline.ms())
                # the queue line says, in the page's own words, how many edits are ahead and how long they take
                b.wait_for_function("() => /In the queue: 1 edit ahead of yours; it starts in about \\d+ s/"
                                    ".test(document.querySelector('#pixels-queue').innerText)", timeout=deadline.ms())
                a.wait_for_function("() => /Running: \\d+ steps left, about \\d+ s/"
                                    ".test(document.querySelector('#pixels-queue').innerText)", timeout=deadline.ms())
                b.click("#pixels-cancel")
                started = time.monotonic()
                b.wait_for_function("() => !document.querySelector('#pixels-run').disabled", timeout=deadline.ms())
                assert time.monotonic() - started < 3
                assert "Done" not in a.locator("#pixels-status").inner_text()  # A's edit is still running
                a.wait_for_function("() => document.querySelector('#pixels-status').innerText.includes('Done in')",
                                    timeout=deadline.ms())
                assert running.context.engine.runs == 1  # B's edit never reached the model
                assert b.locator("#pixels-queue").inner_text() == ""  # and B's queue line is gone
                assert not b.locator(".toast-body.error").count() and not a.locator(".toast-body.error").count()
            finally:
                browser.close()
    finally:
        running.close()


def test_on_a_tablet_the_canvas_takes_the_width_a_tap_paints_and_two_fingers_zoom_in_chromium(tmp_path, shots):
    """A portrait tablet screen with touch: the columns stack, the canvas and its toolbar fit the width, a tap
    paints a dab where it lands, and a two-finger pinch zooms around the fingers without painting."""
    sync_playwright = browser_driver()
    from pixels.app.server import start

    deadline = Deadline(BUDGET_S)
    running = start("demo", port=None, device="cpu")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                context = browser.new_context(viewport={"width": 820, "height": 1180}, has_touch=True)
                page = context.new_page()
                open_page(page, running, deadline)
                st = next(iter(running.context.sessions._open.values()))
                page.locator("#pixels-source input[type=file]").set_input_files(str(ASSETS / "rocket.png"))
                page.wait_for_function("() => document.querySelector('#pixels-canvas .pxb').dataset.ready === '1'",
                                       timeout=deadline.ms())
                view = page.locator("#pixels-canvas canvas.pxb-view")
                view.scroll_into_view_if_needed()
                box = view.bounding_box()
                bar = page.locator("#pixels-canvas .pxb-bar").bounding_box()
                assert box["width"] >= 700 and bar["x"] + bar["width"] <= 820  # the whole width, nothing cut off
                scale = min(box["width"] / 192, box["height"] / 128)
                left = box["x"] + (box["width"] - 192 * scale) / 2
                top = box["y"] + (box["height"] - 128 * scale) / 2

                # a tap paints a dab (the default brush: 24 px, 100 %) centred where it lands
                page.touchscreen.tap(left + 50 * scale, top + 40 * scale)
                page.wait_for_function("() => +document.querySelector('#pixels-canvas .pxb').dataset.strokes >= 1",
                                       timeout=deadline.ms())
                page.wait_for_function("() => /Map: [1-9]/.test(document.querySelector('#pixels-map-summary')"
                                       ".innerText)", timeout=deadline.ms())
                strokes = page.evaluate("() => document.querySelector('#pixels-canvas .pxb').dataset.strokes")

                # two fingers spread apart from 60 to 180 screen pixels: the zoom triples, nothing is painted
                zoom = float(page.evaluate("() => document.querySelector('#pixels-canvas .pxb').dataset.zoom"))
                cdp = context.new_cdp_session(page)
                cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

                def fingers(kind: str, half: float) -> None:
                    points = [] if kind == "touchEnd" else [{"x": cx - half, "y": cy, "id": 1},
                                                             {"x": cx + half, "y": cy, "id": 2}]
                    cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

                fingers("touchStart", 30)
                for half in (45, 60, 75, 90):
                    fingers("touchMove", half)
                fingers("touchEnd", 0)
                zoomed = float(page.evaluate("() => document.querySelector('#pixels-canvas .pxb').dataset.zoom"))
                assert zoomed == pytest.approx(3 * zoom, rel=0.02)
                assert page.evaluate("() => document.querySelector('#pixels-canvas .pxb').dataset.strokes") == strokes
                shots(page, "7-tablet", full_page=False)
                time.sleep(0.5)
                page.locator("#pixels-target input[value='exemplar 1']").check()  # the strength map is kept
                while st.target != "exemplar 1" and deadline.ms() > 0:
                    time.sleep(0.05)
                strength = st.bases["strength"]
                ys, xs = np.nonzero(strength)
                assert abs(xs.mean() - 50) <= 1 and abs(ys.mean() - 40) <= 1 and len(xs) < 24 * 24
            finally:
                browser.close()
    finally:
        running.close()


def test_two_regions_with_their_own_prompts_and_a_lora_edit_as_the_api_does_in_chromium(tmp_path, sd_pipe):
    """A tiny SD model with a LoRA loaded at scale 0: a rectangle painted on Region 1 and one on Region 2, each
    given its own prompt under *Regions* (Region 1 also the LoRA at 0.9), then Run. The page's edit has both
    regions' text and the LoRA scale, and equals the Python API's edit of the same maps, bit for bit."""
    sync_playwright = browser_driver()
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from pixels import Editor, Region
    from pixels.app.server import start
    from pixels.testing.tiny import write_lora

    deadline = Deadline(BUDGET_S)
    lora = write_lora(sd_pipe, tmp_path / "style", seed=1)
    editor = Editor.from_pipe(sd_pipe)
    editor.load_lora(str(lora.parent), 0.0)
    running = start("tiny-sd", port=None, editor=editor)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 1000})
                st = photo_page(page, running, deadline)

                def rectangle(target: str, x0: float, x1: float) -> None:
                    """A rectangle at 100 % on `target`, from x0 to x1 (shares of the canvas' width), drawn again
                    (at most three times) until the server has it: a photo still loading clears the canvas."""
                    page.locator(f"#pixels-target input[value='{target}']").check()
                    while st.target != target and deadline.ms() > 0:
                        time.sleep(0.05)
                    summary = page.locator("#pixels-map-summary")
                    for _ in range(3):
                        page.wait_for_function(READY, timeout=deadline.ms())
                        before = summary.inner_text()
                        page.keyboard.press("r")
                        box = page.locator("#pixels-canvas canvas.pxb-view").bounding_box()
                        page.mouse.move(box["x"] + box["width"] * x0, box["y"] + box["height"] * 0.3)
                        page.mouse.down()
                        page.mouse.move(box["x"] + box["width"] * x1, box["y"] + box["height"] * 0.7, steps=3)
                        page.mouse.up()
                        try:  # the server's summary of the painted map has changed
                            page.wait_for_function("b => { const t = document.querySelector('#pixels-map-summary')"
                                                   ".innerText; return t !== b && /Map: [1-9]/.test(t); }",
                                                   arg=before, timeout=min(10_000, deadline.ms()))
                            return
                        except PlaywrightTimeout:
                            continue
                    pytest.fail(f"three rectangles painted on {target} never reached the server")

                rectangle("region 1", 0.1, 0.4)
                rectangle("region 2", 0.6, 0.9)
                page.click("#pixels-regions button")  # the accordion, opened
                page.locator("#pixels-regions [data-testid=accordion-content]").first.wait_for(
                    state="visible", timeout=deadline.ms())
                texts = {"region-1-prompt": "a red fox", "region-1-loras": "style:0.9",
                         "region-2-prompt": "brass lamp"}
                fields = {elem: page.locator(f"#pixels-{elem} textarea, #pixels-{elem} input").first
                          for elem in texts}
                for _ in range(3):  # a field the page had not finished showing can drop what was typed: again
                    lost = [elem for elem, field in fields.items() if field.input_value() != texts[elem]]
                    if not lost:
                        break
                    for elem in lost:
                        fields[elem].fill(texts[elem], timeout=deadline.ms())
                        fields[elem].press("Tab")
                    time.sleep(0.3)
                assert all(field.input_value() == texts[elem] for elem, field in fields.items())
                page.locator("#pixels-seed input, #pixels-seed textarea").first.fill("5")
                page.locator("#pixels-steps input[type=number]").first.fill("4")
                page.locator("#pixels-steps input[type=number]").first.press("Enter")
                page.click("#pixels-run")
                page.wait_for_function("() => document.querySelector('#pixels-status').innerText.includes('Done in')"
                                       " || document.querySelector('.toast-body.error')", timeout=deadline.ms())
                errors = page.locator(".toast-body.error")
                assert not errors.count(), f"the page shows an error: {errors.first.inner_text()}"
                result = st.history.frames[-1].result  # before the page closes, which closes its session
            finally:
                browser.close()
        md = result.metadata
        assert [(r.get("prompt"), r.get("loras")) for r in md["regions"]] == [("a red fox", {"style": 0.9}),
                                                                              ("brass lamp", None)]
        assert md["regional_text"] == 2 and md["regional_lora"] == 1 and md["num_inference_steps"] == 4
        left, right = (text.map for text in result.texts)
        columns = np.arange(left.shape[1])
        assert left.any() and right.any() and not ((left > 0) & (right > 0)).any()
        assert columns[left.any(0)].mean() < columns[right.any(0)].mean()  # region 1 on the left, 2 on the right
        settings = {k: md[k] for k in ("prompt", "negative_prompt", "num_inference_steps", "strength",
                                       "guidance_scale", "seed")}
        api = editor.edit(ASSETS / "rocket.png", regions=[Region(left, "a red fox", loras={"style": 0.9}),
                                                          Region(right, "brass lamp")], **settings)
        np.testing.assert_array_equal(np.asarray(result.image), np.asarray(api.image))
    finally:
        running.close()
        sd_pipe.unload_lora_weights()
