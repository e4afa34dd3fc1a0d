"""A session zip loaded in the studio brings back the page's inputs: its last step's maps on the canvas, its
exemplars in their tabs (placed, with their own maps) and its settings; run again from the same photo, they
make the same edit bit for bit."""

from __future__ import annotations

import numpy as np
from PIL import Image
from test_app import FAST, MOON, ROCKET, canvas_with, ctx, editor, layer, pixels_of, st  # noqa: F401 - fixtures

from pixels.app import handlers as h
from pixels.app import painting
from pixels.app.exemplars import Slot


def test_a_loaded_session_restores_its_maps_exemplars_and_settings_and_they_remake_its_edit(ctx, st):
    stroke = canvas_with(layer(128, 192, (120, 10, 50, 30)))
    done = h.run_edit(ctx, st, None, stroke, 0, [Slot(MOON)], {**FAST, "seed": "11"})
    zipped = h.save_session(st)

    other = ctx.sessions.open("browser-b")
    view = h.load_session(ctx, other, str(zipped))
    assert "maps, exemplars and settings are back" in view.status
    step = other.history.session.steps[-1]
    np.testing.assert_array_equal(other.bases["strength"], step.strength)  # the canvas shows the step's map
    canvas = painting.read_map_url(view.canvas["map"], (192, 128))
    np.testing.assert_array_equal(canvas, np.asarray(painting.map_image(step.strength)) / 255)
    first, *rest = view.slots
    assert first.placement == "auto" and first.region == "own map" and first.condition == 0.0
    assert all(slot.image is None for slot in rest) and len(view.slots) == 4
    np.testing.assert_array_equal(pixels_of(Image.open(first.image)), pixels_of(step.exemplars[0]))
    np.testing.assert_array_equal(other.bases["exemplar 1"], step.exemplar_maps[0])
    assert view.settings["seed"] == "11" and view.settings["steps"] == FAST["steps"]
    assert view.settings["strength"] == FAST["strength"]

    # from the photo that step edited, the restored inputs make the same edit
    h.undo(other, None)
    again = h.run_edit(ctx, other, None, None, 0, view.slots, view.settings)
    np.testing.assert_array_equal(pixels_of(again.result.after), pixels_of(done.result.after))


def test_a_session_of_no_step_restores_nothing(ctx, st):
    view = h.load_session(ctx, ctx.sessions.open("browser-c"), str(h.save_session(st)))
    assert view.slots is None and view.settings is None and "back on the page" not in view.status
