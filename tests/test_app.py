"""The studio (`pixels app`) without a browser: its handlers are plain functions, tested here directly.

Painting -> strength conversion, map tools, exemplar placement, settings validation, sessions (undo,
redo, zip save and bit-exact load), settings restored from a pixels PNG, per-session isolation,
temporary-file cleanup and cancelling; then the server itself: queue limits and the API endpoint.
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import math
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixels import Editor, InputError, maps
from pixels.app import api, archive, context, painting
from pixels.app import canvas as cv
from pixels.app import handlers as h
from pixels.app.engine import Cancelled
from pixels.app.exemplars import Slot, to_exemplar
from pixels.app.server import exposure_warning, is_loopback, parse_auth
from pixels.app.settings import FIELDS, edit_kwargs, read_png_settings, recommended
from pixels.core.release import keep_mask
from pixels.demo import asset
from pixels.outputs.writers import save_image

ROCKET = "rocket (bundled, 192x128)"
MOON = str(Path(importlib.import_module("pixels").__file__).parent / "demo" / "photos" / "moon.png")
FAST = {"steps": 100, "strength": 0.05, "guidance": 1.0, "seed": "7"}  # 5 denoising steps of the demo model


def layer(height: int, width: int, box: tuple[int, int, int, int], rgba=(255, 255, 255, 255)) -> np.ndarray:
    """A canvas paint layer with one opaque rectangle (x, y, w, h) painted in `rgba`."""
    out = np.zeros((height, width, 4), np.uint8)
    x, y, w, hh = box
    out[y:y + hh, x:x + w] = rgba
    return out


def canvas_with(*layers: np.ndarray) -> dict:
    """The canvas's value after painting `layers` (RGBA, gray level = strength, alpha = how much of it) one over
    the other on an empty map, as the canvas sends it (no serial: read whatever the server sent last)."""
    height, width = layers[0].shape[:2]
    strength = np.zeros((height, width))
    for paint in layers:
        alpha = paint[..., 3] / 255.0
        strength = alpha * paint[..., :3].mean(axis=2) / 255.0 + (1 - alpha) * strength
    return {"map": painting.map_url(strength), "target": "strength"}


def pixels_of(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def editor() -> Editor:
    return Editor.from_pretrained("demo", device="cpu")


@pytest.fixture
def ctx(editor, tmp_path):
    app = context.create(editor, "demo", root=tmp_path / "app")
    yield app
    app.close()


@pytest.fixture
def st(ctx):
    session = ctx.sessions.open("browser-a")
    h.use_sample(ctx, session, ROCKET)
    return session


# -- painting: the canvas's map <-> strength map -------------------------------------------------------
def test_a_map_reaches_the_canvas_and_comes_back_as_the_same_levels():
    levels = np.arange(256, dtype=np.float64).reshape(16, 16) / 255
    back = painting.read_map_url(painting.map_url(levels), (16, 16))
    np.testing.assert_array_equal(back, levels)  # every 8-bit level exactly, 0 exactly 0 and 255 exactly 1
    tools = np.array([[0.0, 1e-6, 0.5, 1.0]])  # a tool's float map: a strength above 0 never rounds to 0
    back = painting.read_map_url(painting.map_url(tools), (4, 1))
    assert back[0, 0] == 0 and back[0, 1] == 1 / 255 and back[0, 2] == 128 / 255 and back[0, 3] == 1.0


def test_the_canvas_value_is_read_unless_the_server_replaced_its_map_since():
    base = np.zeros((4, 6))
    painted_map = maps.box((6, 4), (0, 0, 3, 4))
    value = {"map": painting.map_url(painted_map), "serial": 3, "target": "strength"}
    np.testing.assert_array_equal(painting.board_strength(value, base, 3, "strength"), painted_map)
    assert painting.board_strength(value, base, 4, "strength") is base  # painted on a map replaced since
    assert painting.board_strength(value, base, 3, "exemplar 1") is base  # painted on another map
    assert painting.board_strength(None, base) is base
    assert painting.board_strength({"map": None, "serial": 3}, base, 3) is base  # only boxes changed


@pytest.mark.parametrize(("value", "message"), [
    ({"map": "data:image/jpeg;base64,AAAA"}, r"^canvas: expected the map as a PNG data URL"),
    ({"map": 7}, r"^canvas: expected the map as a PNG data URL"),
    ({"map": painting.PNG_URL + "not base64!"}, r"^canvas: the map could not be read"),
    ({"map": painting.PNG_URL + "AAAA"}, r"^canvas: the map could not be read"),
    ({"map": painting.map_url(np.zeros((5, 5)))}, r"^canvas: the painted map is 5x5 but the photo is 6x4"),
    ({"map": painting.PNG_URL + "A" * 200_000}, r"^canvas: the map is larger than a 6x4 picture can be"),
])
def test_a_canvas_map_that_is_not_a_png_of_the_photos_size_is_refused_by_name(value, message):
    with pytest.raises(InputError, match=message):
        painting.board_strength(value, np.zeros((4, 6)))


def test_softness_fades_edges_inside_the_painted_area_only():
    strength = maps.box((40, 40), (10, 10, 20, 20))
    soft = painting.soften(strength, 5)
    assert (soft[strength == 0] == 0).all()  # never painted: still exactly 0, so still kept bit for bit
    assert soft[20, 20] == 1.0 and 0 < soft[10, 20] < 1
    assert painting.soften(strength, 0) is strength
    with pytest.raises(InputError, match="^softness:"):
        painting.soften(strength, -1)


def test_map_png_is_black_exactly_where_the_strength_is_zero():
    strength = np.array([[0.0, 1e-9, 0.5, 1.0]])
    levels = np.asarray(painting.map_image(strength))
    np.testing.assert_array_equal(levels, [[0, 1, 128, 255]])


def test_release_preview_follows_the_library_pin_rule():
    rng = np.random.default_rng(0)
    strength = rng.choice([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0], size=(6, 9))
    num_steps = painting.schedule_steps(100, 0.2)
    assert num_steps == 20
    for step in range(num_steps + 1):
        pinned = keep_mask(torch.as_tensor(1.0 - strength), step, num_steps).numpy()
        np.testing.assert_array_equal(painting.released(strength, step, num_steps), ~pinned)
    # a pixel of strength s is released at step ceil((1 - s) K)
    s = 0.25
    first = next(i for i in range(num_steps + 1) if painting.released(np.array([[s]]), i, num_steps)[0, 0])
    assert first == math.ceil((1 - s) * num_steps)
    preview = painting.release_preview(asset("rocket.png"), strength.repeat(22, 0)[:128].repeat(22, 1)[:, :192],
                                       100, 0.2)
    assert preview.width == 3 * painting.PANEL_WIDTH + 2 * 8


# -- exemplar slots ----------------------------------------------------------------------------------------
def test_exemplar_slots_become_library_exemplars(tmp_path):
    size = (192, 128)
    strength = maps.box(size, (100, 10, 40, 30))
    own = np.zeros((128, 192))
    boxed = to_exemplar(Slot(MOON, "box", (10.0, 20.0, 50.0, 40.0), "contain", "strength map"), 0, size, strength,
                        own, 10**7)
    assert boxed.box == (10, 20, 50, 40) and boxed.fit == "contain" and boxed.strength_map is strength
    auto = to_exemplar(Slot(MOON), 0, size, strength, own, 10**7)
    assert auto.box is None  # the library fits it into its map's edited area
    aligned = tmp_path / "aligned.png"
    asset("moon.png").resize(size).save(aligned)
    whole = to_exemplar(Slot(str(aligned), region="box"), 0, size, strength, own, 10**7)
    assert whole.box == (0, 0, 192, 128) and whole.strength_map is None
    cutout = tmp_path / "cutout.png"
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:15, 5:15] = (200, 100, 50, 255)
    Image.fromarray(rgba, "RGBA").save(cutout)
    alpha = to_exemplar(Slot(str(cutout), region="alpha"), 1, size, strength, own, 10**7)
    assert alpha.image.mode == "RGBA" and alpha.strength_map is None


@pytest.mark.parametrize(("slot", "message"), [
    (Slot(MOON, region="own map"), r"^exemplar 1\.region: nothing is painted at 100 %"),
    (Slot(MOON, region="alpha"), r"^exemplar 1\.region: the image has no transparency"),
    (Slot(MOON, region="box"), r"^exemplar 1\.region: 'box' needs placement 'box'"),
    (Slot(MOON, "box", (0, 0, 0, 10)), r"^exemplar 1\.box: width and height must be at least 1"),
    (Slot(MOON, "box", (0.5, 0, 10, 10)), r"^exemplar 1\.box: expected x, y, w, h whole numbers"),
    (Slot(MOON, fit="squash"), r"^exemplar 1\.fit: expected one of"),
    (Slot("/no/such/file.png"), r"^exemplar 1:"),
])
def test_bad_exemplar_slots_are_refused_naming_the_field(slot, message):
    strength = maps.box((192, 128), (100, 10, 40, 30))
    with pytest.raises(InputError, match=message):
        to_exemplar(slot, 0, (192, 128), strength, np.zeros((128, 192)), 10**7)


# -- settings ---------------------------------------------------------------------------------------------
def test_recommended_settings_follow_the_model():
    from pixels.adapters.flow import FluxAdapter
    from pixels.adapters.pixel import PixelSpaceAdapter
    from pixels.adapters.sd import StableDiffusionAdapter
    from pixels.models.catalog import BY_NAME

    demo = recommended("demo", PixelSpaceAdapter)
    assert (demo["steps"], demo["strength"], demo["guidance"]) == (100, 0.15, 1.0) \
        == tuple(BY_NAME["demo"].settings.values())
    other = recommended("my/ddpm", PixelSpaceAdapter)  # a pixel-space model not catalogued: its family's settings
    assert other["steps"] == 100 and 0.15 <= other["strength"] <= 0.3 and other["guidance"] <= 1
    schnell = recommended("flux-schnell", FluxAdapter)
    assert (schnell["steps"], schnell["guidance"]) == (4, 0.0)
    assert recommended("some/unknown-model", StableDiffusionAdapter)["steps"] == 50


def test_every_recommended_setting_has_a_field_and_reaches_the_edit():
    for name in ("sd21", "stabilityai/stable-diffusion-2-1"):  # its short name or its hub id
        sd21 = recommended(name)
        assert sd21["steps"] == 50 and sd21["guidance_rescale"] == 0.7
        assert edit_kwargs(sd21, takes_prompt=True)["guidance_rescale"] == 0.7
    refiner = edit_kwargs(recommended("sdxl-refiner"), takes_prompt=True)
    assert refiner["denoising_start"] == 0.6 and refiner["num_inference_steps"] == 100
    plain = edit_kwargs(recommended("sd15"), takes_prompt=True)
    assert plain["guidance_rescale"] == 0.0 and plain["denoising_start"] is None


def test_every_setting_of_the_declaration_is_a_field_of_the_built_page(ctx):
    """Walk the `EditSettings` declaration (and the seed) against the page: each has one field, with the
    element id of its spec key, starting from the model's recommended value, and the endpoint takes that key."""
    from pixels.app.ui import build
    from pixels.core.settings import SEED, options, spec_key_of
    from pixels.inputs.spec import EDIT_KEYS

    declared = {spec_key_of(f.name, option): f for f, option in options()} | {"seed": SEED}
    page = build(ctx)
    fields = {block.elem_id.removeprefix("pixels-"): block for block in page.blocks.values()
              if getattr(block, "elem_id", None) and block.elem_id.removeprefix("pixels-") in declared}
    assert set(fields) == set(declared) == {f.key for f in FIELDS} == set(EDIT_KEYS)
    for key, block in fields.items():
        assert block.value == ctx.engine.defaults[key] or (block.value in (None, "") and
                                                           ctx.engine.defaults[key] in (None, "")), key
    for f, option in options():  # closed lists offer exactly their choices
        block = fields[spec_key_of(f.name, option)]
        if option.choices:
            assert [choice[1] for choice in block.choices] == list(option.choices)
    header = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "pixels-header")
    assert "Model **demo** (pixel family); its recommended settings, where the fields start: 100 steps, strength" \
           " 0.15, no guidance." in header.value  # the model chosen at start, shown with its recommended settings


def test_valid_settings_become_edit_arguments():
    kwargs = edit_kwargs({"steps": 100.0, "strength": 0.2, "guidance": 1, "seed": "12", "scheduler": "default",
                          "crop": "auto", "crop_resize": "native", "negative_prompt": "", "switch_at": None},
                         takes_prompt=False)
    assert kwargs["num_inference_steps"] == 100 and isinstance(kwargs["num_inference_steps"], int)
    assert kwargs["seed"] == 12 and kwargs["scheduler"] is None and kwargs["crop"] == "auto"
    assert kwargs["crop_resize"] == "native" and kwargs["switch_at"] is None
    assert kwargs["negative_prompt"] is None  # an empty field: no negative prompt at all
    assert edit_kwargs({"seed": ""}, True)["seed"] is None and edit_kwargs({"seed": str(2**64 - 1)}, True)["seed"] \
        == 2**64 - 1
    assert edit_kwargs({"crop": "1, 2, 30, 40"}, True)["crop"] == (1, 2, 30, 40)


@pytest.mark.parametrize(("settings", "takes_prompt", "message"), [
    ({"steps": 0}, True, r"^steps: expected an integer in \[1, "),
    ({"steps": 10.5}, True, r"^steps: expected a whole number"),
    ({"strength": 1.5}, True, r"^strength: must lie in \(0, 1\]"),
    ({"guidance": 500}, True, r"^guidance: must lie in"),
    ({"seed": "abc"}, True, r"^seed: expected a non-negative integer"),
    ({"seed": "-1"}, True, r"^seed: expected an integer in"),
    ({"scheduler": "warp"}, True, r"^scheduler:"),
    ({"mode": "both"}, True, r"^mode:"),
    ({"crop_margin": -3}, True, r"^crop_margin:"),
    ({"crop": "left"}, True, r"^crop: expected auto or X,Y,W,H"),
    ({"denoising_start": 1.0}, True, r"^denoising_start: must lie in \(0, 1\)"),
    ({"stength": 0.3}, True, r"^unknown settings \['stength'\]"),
    ({"prompt": "a red fox"}, False, r"^prompt: this model is unconditional"),
])
def test_bad_settings_are_refused_naming_the_field(settings, takes_prompt, message):
    with pytest.raises(InputError, match=message):
        edit_kwargs(settings, takes_prompt)


def test_declared_bounds_are_the_ones_the_settings_hold_to():
    """The page's ranges come from the declaration: a value past either end is refused, one inside taken."""
    from pixels import EditSettings
    from pixels.core.settings import options

    bounded = [(f.name, option.bounds) for f, option in options() if option.bounds]
    assert len(bounded) >= 8
    for name, (low, high) in bounded:
        integer = isinstance(low, int) and isinstance(high, int)
        inside = (low + high) // 2 if integer else (low + high) / 2
        assert getattr(EditSettings(**{name: inside}), name) == inside
        for outside in ((low - 1, high + 1) if integer else (low - 0.01, high + 0.01)):
            with pytest.raises(InputError) as error:
                EditSettings(**{name: outside})
            assert error.value.param == name


def test_errors_reach_the_page_as_escaped_messages_not_tracebacks():
    import gradio as gr

    from pixels.app.ui import guarded

    def bad_input() -> None:
        raise InputError("source: <img src=x onerror=alert(1)>.png is not an image")

    def bug() -> None:
        raise KeyError("oops")

    with pytest.raises(gr.Error) as caught:
        guarded(bad_input)()
    assert caught.value.message == "source: &lt;img src=x onerror=alert(1)&gt;.png is not an image"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(gr.Error, match="internal error: KeyError") as caught:
        guarded(bug)()
    assert "Traceback" not in caught.value.message


# -- the photo ---------------------------------------------------------------------------------------------
def test_a_photo_is_read_as_the_command_line_reads_it(ctx, tmp_path):
    st = ctx.sessions.open("browser-a")
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.new("RGB", (60, 40), (10, 200, 30)).save(rotated, exif=exif)
    view = h.use_photo(ctx, st, str(rotated), name="rotated.jpg")
    assert view.size == (40, 60) and st.history.source.image.size == (40, 60)
    assert (view.canvas["width"], view.canvas["height"]) == (40, 60)
    assert not painting.read_map_url(view.canvas["map"], (40, 60)).any()  # a new photo: nothing painted
    palette = tmp_path / "palette.gif"
    Image.new("P", (30, 20), 3).save(palette)
    assert h.use_photo(ctx, st, str(palette), name="palette.gif").size == (30, 20)
    assert st.bases["strength"].shape == (20, 30) and not st.bases["strength"].any()


def test_photos_over_the_limit_or_not_images_are_refused_with_a_message(editor, tmp_path):
    small = context.create(editor, "demo", root=tmp_path / "small")
    try:
        small.engine.editor.limits, limits = type(editor.limits)(max_pixels=1000), editor.limits
        st = small.sessions.open("x")
        with pytest.raises(InputError, match=r"^source: 192x128 is 24,576 pixels, more than the limit of 1,000"):
            h.use_sample(small, st, ROCKET)
        text = tmp_path / "notes.png"
        text.write_text("not an image")
        with pytest.raises(InputError, match=r"^source: .* is not an image in a format pixels reads"):
            h.use_photo(small, st, str(text))
        assert st.history is None
    finally:
        small.engine.editor.limits = limits
        small.close()


# -- map tools -----------------------------------------------------------------------------------------
def test_map_tools_edit_the_current_map_and_strokes_are_kept_when_switching(ctx, st):
    size = (192, 128)
    serial = st.serial
    canvas = cv.apply_shape(st, None, "box", (10, 10, 40, 30), 100, "add")
    np.testing.assert_array_equal(st.bases["strength"], maps.box(size, (10, 10, 40, 30)))
    # the canvas is sent the photo and the new map under a new serial (a value painted before it is stale)
    assert canvas["serial"] == st.serial == serial + 1 and (canvas["width"], canvas["height"]) == size
    np.testing.assert_array_equal(painting.read_map_url(canvas["map"], size), st.bases["strength"])
    photo = Image.open(io.BytesIO(base64.b64decode(canvas["photo"].split(",", 1)[1])))
    np.testing.assert_array_equal(pixels_of(photo), pixels_of(st.history.source.image))
    stale = {**canvas_with(layer(128, 192, (0, 0, 5, 5))), "serial": serial, "target": "strength"}
    np.testing.assert_array_equal(cv.current_map(st, stale), st.bases["strength"])
    cv.apply_shape(st, None, "box", (20, 10, 10, 30), 100, "subtract")
    assert (st.bases["strength"][10:40, 20:30] == 0).all() and (st.bases["strength"][10:40, 10:20] == 1).all()
    cv.invert_map(st, None)
    assert (st.bases["strength"][0, 0] == 1) and (st.bases["strength"][15, 15] == 0)
    cv.clear_map(st)
    assert not st.bases["strength"].any()
    stroke = canvas_with(layer(128, 192, (100, 50, 20, 20), (128, 128, 128, 255)))
    cv.switch_target(st, stroke, "exemplar 2")  # the stroke stays in the strength map
    assert st.target == "exemplar 2" and st.bases["strength"][60, 110] == pytest.approx(128 / 255)
    assert not st.bases["exemplar 2"].any()
    cv.apply_shape(st, None, "radial", (96, 64, 10, 30), 50, "replace")
    assert st.bases["exemplar 2"].max() == 0.5 and st.bases["strength"][60, 110] == pytest.approx(128 / 255)
    with pytest.raises(InputError, match=r"^ellipse: radii must be > 0"):
        cv.apply_shape(st, None, "ellipse", (10, 10, 0, 5), 100, "add")
    with pytest.raises(InputError, match=r"^paint on: expected one of"):
        cv.switch_target(st, None, "exemplar 9")


def test_a_map_file_is_read_like_any_map_and_resized_to_the_photo(ctx, st, tmp_path):
    path = tmp_path / "half.png"
    half = np.zeros((64, 96), np.uint8)
    half[:, 48:] = 255
    Image.fromarray(half, "L").save(path)
    cv.load_map_file(ctx, st, None, str(path), "replace")
    assert st.bases["strength"].shape == (128, 192)
    assert (st.bases["strength"][:, :90] == 0).all() and (st.bases["strength"][:, 100:] == 1).all()


def test_previews_show_the_combined_map_with_a_legend(ctx, st):
    stroke = canvas_with(layer(128, 192, (100, 20, 30, 20)))
    shown = cv.preview(ctx, st, stroke, 0, [], 100, 0.2)
    assert shown.overlay.width == 2 * painting.PANEL_WIDTH + 8 and shown.release is not None
    assert shown.summary == ("**Map:** 2.4 % of the photo is edited, 2.4 % at 100 % (where exemplars are grafted)."
                             " 20 of 100 steps run.")
    assert cv.preview(ctx, st, stroke, 0, [], "", 0.2).release is None  # a field being typed in: no schedule
    combined = cv.used_map(ctx, st, stroke, 0, [Slot(MOON, region="own map")])
    assert combined[30, 110] == 1 and combined[0, 0] == 0
    assert cv.preview(ctx, ctx.sessions.open("no-photo"), None, 0, [], 100, 0.2) == cv.Preview(None, None, "")
    placed = cv.slot_preview(ctx, st, stroke, 0, Slot(MOON, "box", (10, 10, 40, 30)), 0)
    assert placed.size == (192, 128) and not np.array_equal(pixels_of(placed), pixels_of(st.history.source.image))
    assert cv.slot_preview(ctx, st, stroke, 0, Slot("/no/such.png"), 0) is None  # Run reports that, not the preview


def test_one_canvas_change_paints_the_maps_once_for_every_preview(ctx, st, monkeypatch):
    stroke = canvas_with(layer(128, 192, (100, 20, 30, 20)))
    slots = [Slot(MOON, "box", (10, 10, 40, 30)), Slot(), Slot("/no/such.png"), Slot(MOON, region="own map")]
    calls, painted = [], cv.painted
    monkeypatch.setattr(cv, "painted", lambda *args: calls.append(args) or painted(*args))
    shown, placed = cv.previews(ctx, st, stroke, 0, slots, 100, 0.2)
    assert len(calls) == 1 and len(placed) == len(slots) and placed[2] is None
    assert shown == cv.preview(ctx, st, stroke, 0, slots, 100, 0.2)
    for k, slot in enumerate(slots):
        alone = cv.slot_preview(ctx, st, stroke, 0, slot, k)
        assert (alone is None and placed[k] is None) or np.array_equal(pixels_of(alone), pixels_of(placed[k]))
    nothing = cv.previews(ctx, ctx.sessions.open("no-photo"), None, 0, slots, 100, 0.2)
    assert nothing == (cv.Preview(None, None, ""), [None] * len(slots))


def test_nothing_painted_is_refused_before_any_model_work(ctx, st):
    with pytest.raises(InputError, match=r"^strength map: nothing is painted"):
        h.run_edit(ctx, st, None, None, 0, [], FAST)
    assert len(st.history.frames) == 1


# -- sessions: isolation and cleanup ------------------------------------------------------------------------
def test_each_browser_session_has_its_own_photo_maps_history_and_folder(ctx):
    a, b = ctx.sessions.open("browser-a"), ctx.sessions.open("browser-b")
    h.use_sample(ctx, a, ROCKET)
    h.use_sample(ctx, b, "moon (bundled)")
    cv.apply_shape(a, None, "box", (0, 0, 10, 10), 100, "add")
    assert a.folder != b.folder and a.history is not b.history
    assert a.bases["strength"].any() and not b.bases["strength"].any()
    assert a.history.source.image.size != b.history.source.image.size
    assert all(p.parent == a.folder for p in a.folder.iterdir())
    assert not set(a.folder.iterdir()) & set(b.folder.iterdir())
    ctx.sessions.close("browser-a")
    assert not a.folder.exists() and b.folder.exists() and a.closed and not b.closed
    with pytest.raises(InputError, match=r"^session: this browser session has ended"):
        cv.apply_shape(a, None, "box", (0, 0, 10, 10), 100, "add")


def test_a_reloaded_page_starts_a_new_session_and_ends_the_old_one(ctx):
    first = ctx.sessions.open("tab")
    second = ctx.sessions.open("tab")
    assert first.closed and not first.folder.exists() and second.folder.exists() and len(ctx.sessions) == 1


def test_stopping_the_app_removes_every_temporary_file(editor, tmp_path):
    app = context.create(editor, "demo", root=tmp_path / "app")
    st = app.sessions.open("a")
    h.use_sample(app, st, ROCKET)
    assert any(st.folder.iterdir())
    app.close()
    assert not (tmp_path / "app").exists() and st.closed


# -- session zips -------------------------------------------------------------------------------------------
def test_session_zips_refuse_paths_outside_links_and_bombs(tmp_path, monkeypatch):
    def zipped(name: str, entries: dict[str, bytes], link: str | None = None) -> Path:
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            for entry, data in entries.items():
                z.writestr(entry, data)
            if link:
                info = zipfile.ZipInfo(link)
                info.external_attr = 0o120777 << 16
                z.writestr(info, "/etc/passwd")
        return path

    with pytest.raises(InputError, match="points outside the folder"):
        archive.unpack(zipped("up.zip", {"../evil.txt": b"x"}), tmp_path / "out1")
    with pytest.raises(InputError, match="points outside the folder"):
        archive.unpack(zipped("abs.zip", {"/tmp/evil.txt": b"x"}), tmp_path / "out2")
    with pytest.raises(InputError, match="symbolic link"):
        archive.unpack(zipped("link.zip", {}, link="manifest.json"), tmp_path / "out3")
    with pytest.raises(InputError, match="no manifest.json"):
        archive.unpack(zipped("empty.zip", {"a/readme.txt": b"x"}), tmp_path / "out4")
    assert not (tmp_path / "out4").exists()
    not_zip = tmp_path / "notes.zip"
    not_zip.write_text("not a zip")
    with pytest.raises(InputError, match="not a zip file"):
        archive.unpack(not_zip, tmp_path / "out5")
    monkeypatch.setattr(archive, "MAX_BYTES", 100)
    with pytest.raises(InputError, match="MiB once unpacked"):
        archive.unpack(zipped("big.zip", {"manifest.json": b"{}" * 100}), tmp_path / "out6")
    liar = tmp_path / "liar.zip"  # an entry whose recorded size (10 bytes) understates its data (200 bytes)
    with zipfile.ZipFile(liar, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", b"{}" * 100)
        z.getinfo("manifest.json").file_size = 10  # what the central directory will say
    with pytest.raises(InputError, match="corrupt or unsupported"):  # read up to its record, then its CRC fails
        archive.unpack(liar, tmp_path / "out7")
    # a reader that streamed past the record: the bytes written are counted as they come
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, info, *args, **kwargs: io.BytesIO(b"{}" * 100))
    with pytest.raises(InputError, match="MiB once unpacked"):
        archive.unpack(liar, tmp_path / "out8")
    assert not any(p.name.startswith("out") for p in tmp_path.iterdir())  # nothing left behind
    assert not (tmp_path / "evil.txt").exists()  # where "../evil.txt" of out1 would have landed


def test_settings_are_restored_from_a_png_that_pixels_wrote(ctx, tmp_path):
    path = tmp_path / "made-by-pixels.png"
    metadata = {"prompt": "", "negative_prompt": None, "num_inference_steps": 80, "strength": 0.3,
                "guidance_scale": 1.0, "seed": 2**63 + 5, "scheduler": "euler", "mode": "blend", "crop": "auto",
                "crop_margin": 16, "skip_steps": "never", "eta": 0.0, "model": "demo"}
    save_image(asset("rocket.png"), path, metadata)
    restored = h.restore_settings(ctx, str(path))
    assert restored | {"steps": 80, "strength": 0.3, "guidance": 1.0, "seed": str(2**63 + 5), "scheduler": "euler",
                       "mode": "blend", "crop": "auto", "crop_margin": 16, "skip_steps": "never"} == restored
    assert restored["negative_prompt"] == "" and "invert_map" not in restored  # applied to saved maps already
    plain = tmp_path / "plain.png"
    asset("rocket.png").save(plain)
    with pytest.raises(InputError, match=r"^settings PNG: it has no pixels metadata"):
        read_png_settings(str(plain), 10**7)
    save_image(asset("rocket.png"), tmp_path / "bad.png", {**metadata, "strength": 5})
    with pytest.raises(InputError, match=r"^settings PNG: strength: must lie in"):
        read_png_settings(str(tmp_path / "bad.png"), 10**7)


# -- edits with the model ------------------------------------------------------------------------------------
def test_an_edit_keeps_unpainted_pixels_and_undo_redo_and_continue_walk_the_history(ctx, st):
    source = pixels_of(st.history.source.image)
    stroke = canvas_with(layer(128, 192, (120, 10, 50, 30)))
    steps_seen = []
    view = h.run_edit(ctx, st, None, stroke, 0, [Slot(MOON)], FAST, lambda done, total: steps_seen.append(total))
    assert steps_seen and len(steps_seen) == steps_seen[0] == 5
    result = view.result
    edited = pixels_of(result.after)
    kept = st.history.frames[-1].result.strength_map == 0
    np.testing.assert_array_equal(edited[kept], source[kept])  # bit for bit outside the stroke
    assert (edited[10:40, 120:170] != source[10:40, 120:170]).any()  # and changed inside it
    assert result.candidate and result.seed == 7 and "bit-exact" in result.report
    # the download carries the same metadata as `pixels edit`, and the map is black exactly where kept
    downloaded = Image.open(result.png)
    assert json.loads(downloaded.info["pixels"])["seed"] == 7 and "Seed: 7" in downloaded.info["parameters"]
    np.testing.assert_array_equal(pixels_of(downloaded), edited)
    np.testing.assert_array_equal(np.asarray(Image.open(result.map_png)) == 0, kept)
    # running again edits the same start: a sibling of the first result, which stays in the history
    again = h.run_edit(ctx, st, None, stroke, 0, [Slot(MOON)], {**FAST, "seed": "8"})
    assert [c for _, c in again.gallery] == ["source · start", "1 · seed 7", "2 · seed 8 · from source · shown"]
    assert again.result.seed == 8 and again.can_continue
    np.testing.assert_array_equal(pixels_of(again.result.before), source)
    # a canvas that cannot be read is refused before the history moves
    with pytest.raises(InputError, match=r"^canvas: expected the map as a PNG data URL"):
        h.undo(st, {"map": "not a picture"})
    assert len(st.history.frames) == 3 and st.history.candidate
    # undo brings the source back exactly, redo the result; continue makes the result the next source
    back = h.undo(st, None)
    np.testing.assert_array_equal(pixels_of(st.history.source.image), source)
    assert back.result is None and len(back.gallery) == 3 and not back.can_continue
    np.testing.assert_array_equal(pixels_of(Image.open(back.current_png)), source)
    with pytest.raises(InputError, match=r"^undo: nothing to undo"):
        h.undo(st, None)
    base = st.bases["strength"].copy()
    with pytest.raises(InputError, match=r"^undo: nothing to undo"):  # refused before the strokes are baked
        h.undo(st, canvas_with(layer(128, 192, (0, 0, 20, 20), (255, 255, 255, 128))))
    np.testing.assert_array_equal(st.bases["strength"], base)
    h.redo(st, None)  # back to the step undo left
    assert st.history.start == st.history.shown == 2 and not st.history.candidate
    np.testing.assert_array_equal(pixels_of(st.history.source.image), pixels_of(again.result.after))
    with pytest.raises(InputError, match=r"^continue: the next edit already starts from the step shown"):
        h.continue_edit(st, None)


def test_cancel_stops_between_steps_and_leaves_nothing(ctx, st):
    stroke = canvas_with(layer(128, 192, (120, 10, 50, 30)))
    files = sorted(st.folder.iterdir())
    run_id = h.arm(st)

    def cancel_at_second_step(done: int, total: int) -> None:
        if done == 2:
            assert h.cancel(st) == "Cancelling…"

    view = h.run_edit(ctx, st, run_id, stroke, 0, [], FAST, cancel_at_second_step)
    assert "cancelled" in view.status.lower() and "nothing was changed" in view.status
    assert len(st.history.frames) == 1 and st.history.session.history == [] and view.result is None
    assert sorted(st.folder.iterdir()) == files  # no file written
    # cancelled while queued: it never reaches the model
    queued = h.arm(st)
    h.cancel(st)
    reached = []
    view = h.run_edit(ctx, st, queued, stroke, 0, [], FAST, lambda done, total: reached.append(done))
    assert reached == [] and "before it started" in view.status
    # a fresh run is not affected by the old cancels
    view = h.run_edit(ctx, st, h.arm(st), stroke, 0, [], FAST)
    assert view.result is not None and len(st.history.frames) == 2


def test_a_cancelled_replacement_keeps_the_previous_result(ctx, st):
    stroke = canvas_with(layer(128, 192, (120, 10, 50, 30)))
    first = h.run_edit(ctx, st, None, stroke, 0, [], FAST)

    def cancel(done: int, total: int) -> None:
        raise Cancelled("edit cancelled; nothing was changed")

    with pytest.raises(Cancelled):
        st.history.apply(lambda r, b: None, [], np.ones((128, 192)), on_step=cancel, num_inference_steps=100,
                         strength=0.05, seed=1)
    assert len(st.history.frames) == 2 and st.history.candidate
    np.testing.assert_array_equal(pixels_of(st.history.session.current), pixels_of(first.result.after))


def test_a_saved_session_zip_loads_back_bit_for_bit_in_another_session(ctx, st):
    stroke = canvas_with(layer(128, 192, (120, 10, 50, 30)))
    h.run_edit(ctx, st, None, stroke, 0, [Slot(MOON)], FAST)
    h.continue_edit(st, None)
    zipped = h.save_session(st)
    assert zipped.parent == st.folder and zipfile.is_zipfile(zipped)
    other = ctx.sessions.open("browser-b")
    view = h.load_session(ctx, other, str(zipped))
    assert "replayed bit for bit" in view.status and len(view.gallery) == 2
    for mine, theirs in zip(st.history.frames, other.history.frames):
        np.testing.assert_array_equal(pixels_of(mine.image), pixels_of(theirs.image))
    assert other.history.session.history == st.history.session.history
    assert not [p for p in other.folder.iterdir() if p.is_dir()]  # the unpacked copy is gone


def test_a_shared_server_refuses_schedules_longer_than_its_max_steps(editor, tmp_path):
    from pixels.app.engine import Engine
    from pixels.app.ui import build

    app = context.create(editor, "demo", root=tmp_path / "app", max_steps=80)
    try:
        assert app.engine.defaults["steps"] == 80  # the demo's recommended 100, held to the server's limit
        fields = {b.elem_id: b for b in build(app).blocks.values() if getattr(b, "elem_id", None)}
        # the page says the limit and leaves the check to pixels, whose message names the field
        assert fields["pixels-steps"].maximum is None and "(this server: at most 80)" in fields["pixels-steps"].info
        st = app.sessions.open("browser")
        h.use_sample(app, st, ROCKET)
        stroke = canvas_with(layer(128, 192, (120, 10, 50, 30)))
        with pytest.raises(InputError, match=r"^steps: this server runs at most 80 steps per edit, got 100000"):
            h.run_edit(app, st, None, stroke, 0, [], {**FAST, "steps": 100000})
        assert len(st.history.frames) == 1  # nothing ran, nothing changed
        source, where = tmp_path / "source.png", tmp_path / "map.png"
        asset("rocket.png").save(source)
        painting.map_image(maps.ellipse((192, 128), (150, 30), (25, 18))).save(where)
        with pytest.raises(InputError, match=r"^settings.steps: this server runs at most 80 steps"):
            api.api_edit(app, str(source), str(where), '{"steps": 100000}')
    finally:
        app.close()
    with pytest.raises(InputError) as error:
        Engine(editor, "demo", max_steps=0)
    assert error.value.param == "max_steps"


def test_the_api_edit_is_stateless_and_keeps_unmapped_pixels(ctx, tmp_path):
    source, where = tmp_path / "source.png", tmp_path / "map.png"
    asset("rocket.png").save(source)
    painting.map_image(maps.ellipse((192, 128), (150, 30), (25, 18))).save(where)
    path, summary = api.api_edit(ctx, str(source), str(where), json.dumps({"strength": 0.05, "seed": 3}))
    result = np.asarray(Image.open(path).convert("RGB"))
    kept = np.asarray(Image.open(where)) == 0
    np.testing.assert_array_equal(result[kept], np.asarray(asset("rocket.png"))[kept])
    assert summary["seed"] == 3 and summary["steps_run"] == 5 and summary["order"] >= 1
    assert json.loads(Image.open(path).info["pixels"])["seed"] == 3
    with pytest.raises(InputError, match=r"^settings: unknown keys \['stength'\]"):
        api.api_edit(ctx, str(source), str(where), '{"stength": 0.3}')
    with pytest.raises(InputError, match=r"^settings: unknown keys \['extra'\]"):  # the model's own, not a field
        api.api_edit(ctx, str(source), str(where), '{"extra": [["eta", 1]]}')


def test_the_api_edit_takes_the_spec_files_keys_and_no_paths(ctx, tmp_path):
    from pixels.inputs.spec import EDIT_KEYS

    source, where = tmp_path / "source.png", tmp_path / "map.png"
    asset("rocket.png").save(source)
    painting.map_image(maps.ellipse((192, 128), (150, 30), (25, 18))).save(where)
    sent = {"steps": 20, "strength": 0.25, "seed": 4, "crop": [100, 0, 92, 64], "crop_margin": 8,
            "preserve": "exact", "scheduler": "ddim", "exemplar_encode": "region", "guidance_rescale": 0.0}
    path, summary = api.api_edit(ctx, str(source), str(where), json.dumps(sent))
    md = json.loads(Image.open(path).info["pixels"])
    assert (md["num_inference_steps"], md["strength"], md["seed"], md["crop"]) == (20, 0.25, 4, [100, 0, 92, 64])
    assert md["exemplar_encode"] == "region" and summary["steps_run"] == 5
    assert set(sent) <= set(EDIT_KEYS)  # the names a spec file uses
    with pytest.raises(InputError, match=r"^settings.steps: expected an integer in \[1, "):
        api.api_edit(ctx, str(source), str(where), '{"steps": 0}')
    with pytest.raises(InputError, match=r"^settings.guidance: expected number, got 'high'"):
        api.api_edit(ctx, str(source), str(where), '{"guidance": "high"}')
    for key in ("exemplars", "map", "control"):  # a script sends images, never names files on the server
        with pytest.raises(InputError, match=rf"^settings: unknown keys \['{key}'\]"):
            api.api_edit(ctx, str(source), str(where), json.dumps({key: str(source)}))


# -- the server and its command line --------------------------------------------------------------------
def test_the_command_line_parses_and_checks_its_options():
    import argparse

    from pixels.cli import build_parser
    from pixels.cli.app import add_parser

    assert build_parser().parse_args(["app", "--port", "8001"]).port == 8001  # a subcommand of `pixels`
    parser = argparse.ArgumentParser()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true")
    add_parser(parser.add_subparsers(dest="command"), common)
    args = parser.parse_args(["app"])
    assert (args.model, args.host, args.port, args.auth, args.max_megapixels) == ("demo", "127.0.0.1", 7860, None, 4.0)
    assert callable(args.run)
    args = parser.parse_args(["app", "--model", "sd15", "--port", "8000", "--auth", "me:p:w", "--debug"])
    assert parse_auth(args.auth) == ("me", "p:w") and args.debug
    with pytest.raises(InputError, match=r"^auth: expected USER:PASS"):
        parse_auth("nopassword")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("0.0.0.0", ("a", "b")) is None
    assert "auth='USER:PASS'" in exposure_warning("0.0.0.0", None)  # the Python argument (the CLI: --auth)
    from pixels.app.server import start

    with pytest.raises(InputError, match=r"^max_megapixels: expected a number in \(0, 10000\]"):
        start(max_megapixels=0)  # checked before any model is loaded


def test_python_m_pixels_app_is_the_pixels_app_command():
    ran = subprocess.run([sys.executable, "-m", "pixels.app", "--max-megapixels", "0"], capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 2 and "pixels: error: --max-megapixels: expected a number" in ran.stderr


def test_the_queue_says_how_many_edits_are_ahead_and_how_long_they_take_by_the_measured_step_time(ctx):
    from pixels.app.ui import queue_text

    engine = ctx.engine
    first, second, third = threading.Event(), threading.Event(), threading.Event()
    engine.wait(first, 10, owner="a")
    engine.wait(second, 20, owner="b")
    engine.wait(third, 5, owner="c")
    assert engine.place(second) == ("waiting", 1, None)  # no step measured yet: no time promised
    assert queue_text(engine.place(second)).startswith("**In the queue:** 1 edit ahead of yours; it starts in the"
                                                        " time is known")
    inside, go_on = threading.Event(), threading.Event()

    def job(step):
        for done in range(10):
            step(done, 10)
            if done == 4:
                inside.set()
                go_on.wait(10)
            else:
                time.sleep(0.02)
        return "done"

    worker = threading.Thread(target=lambda: engine.run(job, first))
    worker.start()
    assert inside.wait(10)
    kind, left, seconds = engine.place(first)
    assert (kind, left) == ("running", 6) and seconds == pytest.approx(6 * engine.seconds_per_step)
    kind, ahead, seconds = engine.place(third)  # the running edit's 6 steps left, then the second's 20
    assert (kind, ahead) == ("waiting", 2) and seconds == pytest.approx(26 * engine.seconds_per_step)
    second.set()  # cancelled while waiting: out of the count at once
    assert engine.place(second) is None
    kind, ahead, seconds = engine.place(third)
    assert (kind, ahead) == ("waiting", 1) and seconds == pytest.approx(6 * engine.seconds_per_step)
    go_on.set()
    worker.join(10)
    assert engine.place(first) is None and engine.place(third) == ("waiting", 0, pytest.approx(0))
    assert queue_text(engine.place(third)) == "**Next:** your edit starts in a moment."
    engine.forget("c")  # refused before it reached the model
    assert engine.place(third) is None and queue_text(None) == ""


def test_the_server_runs_one_edit_at_a_time_and_says_busy_beyond_its_queue(editor, tmp_path):
    import gradio_client as client_module

    from pixels.app.server import start

    class Gated:
        """The demo editor, made to wait at its first step until the test lets it go."""

        def __init__(self) -> None:
            self.entered, self.go, self.running, self.most = threading.Event(), threading.Event(), 0, 0
            self.limits, self.adapter, self.model_id = editor.limits, editor.adapter, editor.model_id

        def edit(self, *args, on_step=None, **kwargs):
            self.running += 1
            self.most = max(self.most, self.running)
            try:
                def step(done: int, total: int) -> None:
                    self.entered.set()
                    assert self.go.wait(60)
                    on_step(done, total)

                return editor.edit(*args, on_step=step, **kwargs)
            finally:
                self.running -= 1

    gated = Gated()
    source, where = tmp_path / "source.png", tmp_path / "map.png"
    asset("rocket.png").save(source)
    painting.map_image(maps.box((192, 128), (120, 10, 50, 30))).save(where)
    temp_before = os.environ.get("GRADIO_TEMP_DIR")
    running = start(editor=gated, port=None, queue_size=1)
    root = running.context.root
    try:
        assert running.url.startswith("http://127.0.0.1:")
        client = client_module.Client(running.url, verbose=False, download_files=str(tmp_path / "downloads"))
        args = (client_module.handle_file(str(source)), client_module.handle_file(str(where)))

        def submit(seed: int):
            return client.submit(*args, json.dumps({"strength": 0.02, "seed": seed}), api_name="/edit")

        first = submit(1)
        assert gated.entered.wait(60)  # the first edit holds the model
        second = submit(2)
        for _ in range(600):  # bounded: until the server reports the second one waiting in the queue
            if second.status().code.name == "IN_QUEUE":
                break
            gated.go.wait(0.05)
        third = submit(3)
        with pytest.raises(Exception, match="Queue is full"):
            third.result(timeout=60)
        gated.go.set()
        results = [first.result(timeout=120), second.result(timeout=120)]
        orders = [info["order"] for _, info in results]
        assert orders == sorted(orders) and [info["seed"] for _, info in results] == [1, 2]
        assert gated.most == 1  # never two edits at once
        kept = np.asarray(Image.open(where)) == 0
        for path, _ in results:
            np.testing.assert_array_equal(np.asarray(Image.open(path).convert("RGB"))[kept],
                                          np.asarray(asset("rocket.png"))[kept])
        assert root.exists() and os.environ["GRADIO_TEMP_DIR"].startswith(str(root))
    finally:
        gated.go.set()
        running.close()
    assert not root.exists() and os.environ.get("GRADIO_TEMP_DIR") == temp_before


def test_the_endpoint_refuses_a_non_image_and_bad_keys_in_plain_text(editor, tmp_path):
    """A script gets pixels' own message as plain text: the file named as it sent it, keys quoted as typed."""
    import gradio_client as client_module

    from pixels.app.server import start

    notes, where = tmp_path / "notes.png", tmp_path / "map.png"
    notes.write_bytes(b"not a picture")
    painting.map_image(maps.box((192, 128), (120, 10, 50, 30))).save(where)
    running = start(editor=editor, port=None)
    try:
        client = client_module.Client(running.url, verbose=False, download_files=str(tmp_path / "downloads"))
        with pytest.raises(Exception) as refused:
            client.predict(client_module.handle_file(str(notes)), client_module.handle_file(str(where)), "{}",
                           api_name="/edit")
        assert "source: notes.png is not an image in a format pixels reads" in str(refused.value)
        with pytest.raises(Exception) as refused:
            client.predict(client_module.handle_file(str(where)), client_module.handle_file(str(where)),
                           '{"stepz": 3}', api_name="/edit")
        assert "settings: unknown keys ['stepz']" in str(refused.value) and "&#x27;" not in str(refused.value)
    finally:
        running.close()


def test_a_map_tool_that_would_paint_nothing_says_so():
    with pytest.raises(InputError, match=r"^box: width and height must be at least 1 pixel, got 0 x 0"):
        cv.shape_map("box", (192, 128), (0, 0, 0, 0), 100)
    assert cv.shape_map("box", (192, 128), cv.shape_defaults("box", (192, 128)), 100).any()  # what a photo starts with


def test_the_studio_guide_lists_every_canvas_shortcut():
    from pixels.app.board import SHORTCUTS
    guide = (Path(__file__).resolve().parents[1] / "docs" / "guides" / "studio.md").read_text(encoding="utf-8")
    for keys, what in SHORTCUTS:
        assert f"| `{keys}` | {what} |" in guide, keys


def test_the_canvas_is_told_each_exemplars_box_and_its_picture_as_fitted_there(ctx, st):
    stroke = canvas_with(layer(128, 192, (100, 20, 30, 20)))
    slots = [Slot(MOON, fit="contain"), Slot(), Slot(MOON, "box", (10, 10, 40, 30), fit="cover")]
    cv.previews(ctx, st, stroke, 0, slots, 100, 0.2)
    auto, boxed = st.boxes
    assert auto["slot"] == 1 and auto["box"] == [100, 20, 30, 20] and not auto["placed"]  # the painted area
    assert boxed["slot"] == 3 and boxed["box"] == [10, 10, 40, 30] and boxed["placed"]
    moon = Image.open(MOON)
    assert boxed["inner"] == [0, 0, 40, 30]  # cover fills the box
    x, y, w, h = auto["inner"]  # contain: the whole picture inside the box, centred
    assert (w == 30 or h == 20) and x >= 0 and y >= 0 and x + w <= 30 and y + h <= 20
    assert abs(w / h - moon.width / moon.height) < 0.1
    assert cv.boxes_value(st)["boxes"] == st.boxes and cv.boxes_value(st)["map"] is None  # the map is not resent
    thumb = Image.open(io.BytesIO(base64.b64decode(boxed["image"].split(",", 1)[1])))
    assert max(thumb.size) <= 256


def test_a_clicked_history_step_is_shown_and_continuing_from_it_starts_a_branch(ctx, st):
    from pixels.app.browse import step_view

    stroke = canvas_with(layer(128, 192, (120, 10, 50, 30)))
    first = h.run_edit(ctx, st, None, stroke, 0, [], FAST)
    h.continue_edit(st, None)
    second = h.run_edit(ctx, st, None, stroke, 0, [], {**FAST, "seed": "9"})  # step 2, from step 1
    shown = step_view(st, 1)
    assert shown.result.seed == 7 and shown.result.png == st.history.frames[1].png and shown.can_continue is False
    np.testing.assert_array_equal(pixels_of(shown.result.before), pixels_of(st.history.frames[0].image))
    np.testing.assert_array_equal(pixels_of(shown.result.after), pixels_of(first.result.after))
    assert "bit-exact" in shown.result.report and "The next edit starts from here" in shown.status
    source = step_view(st, 0)
    assert source.result is None and source.can_continue and "still starts from step 1" in source.status
    assert st.history.start == 1 and len(st.history.frames) == 3  # looking moved only what is shown
    for bad in (3, -1, "1", True):
        with pytest.raises(InputError, match=r"^history: expected a step in \[0, 2\]"):
            step_view(st, bad)
    # continuing from the source and running: a branch beside step 1, which keeps its child
    assert "Continuing from the source photo: the next edit starts a new branch" in h.continue_edit(st, None).status
    branch = h.run_edit(ctx, st, None, stroke, 0, [], {**FAST, "seed": "11"})
    assert [c for _, c in branch.gallery] == ["source · start", "1 · seed 7", "2 · seed 9",
                                              "3 · seed 11 · from source · shown"]
    assert st.history.session.children(0) == [1, 3] and st.history.session.children(1) == [2]
    np.testing.assert_array_equal(pixels_of(branch.result.before), pixels_of(st.history.frames[0].image))
    # the session zip keeps every branch and reopens on the step shown
    step_view(st, 2)
    other = ctx.sessions.open("browser-b")
    loaded = h.load_session(ctx, other, str(h.save_session(st)))
    assert "3 step(s) in 2 branches" in loaded.status and other.history.shown == other.history.start == 2
    assert other.history.session.tree == st.history.session.tree
    for mine, theirs in zip(st.history.frames, other.history.frames):
        np.testing.assert_array_equal(pixels_of(mine.image), pixels_of(theirs.image))
    np.testing.assert_array_equal(pixels_of(loaded.result.after), pixels_of(second.result.after))


def test_what_reading_converted_is_said_on_the_page(ctx, st):
    """Notes that `pixels edit` prints (an exemplar fitted into its box, a map resized...) reach the status line."""
    from pixels import plan_edit

    stroke = canvas_with(layer(128, 192, (120, 10, 50, 30)))
    view = h.run_edit(ctx, st, None, stroke, 0, [Slot(MOON)], FAST)
    exemplars, strength_map, _ = h.edit_inputs(ctx, st, stroke, 0, [Slot(MOON)])
    expected = plan_edit(st.history.frames[0].image, exemplars, strength_map, seed=7).notes
    assert expected and "Notes: " + "; ".join(expected) in view.status
    plain = h.run_edit(ctx, st, None, stroke, 0, [], FAST)
    assert "Notes:" not in plain.status
