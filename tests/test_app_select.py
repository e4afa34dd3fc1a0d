"""Selecting by model in the studio: clicks and boxes from the canvas's Select tool, a phrase, depth, combined into
the map being painted; the edit keeps every pixel the selection leaves out."""

from __future__ import annotations

import numpy as np
import pytest
from test_app import FAST, ctx, editor, pixels_of, st  # noqa: F401 - fixtures
from test_select import fresh_cache, tiny  # noqa: F401 - fixtures

from pixels import InputError
from pixels.app import handlers as h
from pixels.app import painting, selecting
from pixels.select import Select, resolve_selection


def test_the_select_tool_s_clicks_and_boxes_fill_the_fields():
    clicks, boxes = selecting.clicked({"clicks": [[12, 30, False], [40.6, 2, True]], "boxes": [[5, 6, 20, 10]]})
    assert (clicks, boxes) == ("12,30; -41,2", "5,6,20,10")
    assert selecting.parse_clicks(clicks) == ([(12.0, 30.0)], [(41.0, 2.0)])
    assert selecting.parse_boxes(boxes) == [(5.0, 6.0, 20.0, 10.0)]
    for bad in (None, {"clicks": [["a", 1, False]]}, {"boxes": [[1, 2, 3]]}, {"clicks": [[1, 2]]},
                {"clicks": [[1, 2, False]] * 65}):
        with pytest.raises(InputError):
            selecting.clicked(bad)


@pytest.mark.parametrize("fields, message", [
    (("1,2; 3", "", "", ""), r"^clicks\[1\]: expected x,y"),
    (("", "1,2,3", "", ""), r"^boxes\[0\]: expected x,y,w,h"),
    (("", "", "", "near"), r"^depth: expected near:far"),
    (("", "", "", ""), r"^select: click on the photo with the Select tool"),
])
def test_selection_fields_are_checked_by_name(fields, message):
    with pytest.raises(InputError, match=message):
        selecting.selection_of(*fields, 0, 0, "")


def test_a_selection_becomes_the_map_and_the_edit_keeps_what_it_leaves_out(ctx, st, tiny):  # noqa: F811
    select = selecting.selection_of("60,50", "", "", "", 0, 0, tiny("sam2"))
    assert select == Select(points=((60.0, 50.0),), model=tiny("sam2"))
    canvas, status = selecting.select_into_map(ctx, st, None, select, "replace")
    expected = resolve_selection(select, st.history.source.image).strength.astype(np.float64)
    np.testing.assert_array_equal(st.bases["strength"], expected)
    assert canvas["map"] is not None and status.startswith("Selected ") and "replace on the strength map" in status
    # a click outside the photo is refused by name and the map stays as it was
    with pytest.raises(InputError, match=r"^points\[0\]"):
        selecting.select_into_map(ctx, st, None, Select(points=((500, 5),), model=tiny("sam2")), "add")
    np.testing.assert_array_equal(st.bases["strength"], expected)
    # painting on top refines it: "add" keeps the selection and adds the stroke
    painted = expected.copy()
    painted[:10, :10] = 1.0  # a stroke over the selection, as the canvas sends the whole map back
    stroke = {"map": painting.map_url(painted), "target": "strength"}
    view = h.run_edit(ctx, st, None, stroke, 0, [], FAST)
    used = st.history.frames[-1].result.strength_map
    assert (used[expected > 0] > 0).all() and (used[:10, :10] == 1).all()
    kept = used == 0
    np.testing.assert_array_equal(pixels_of(view.result.after)[kept], pixels_of(st.history.frames[0].image)[kept])


def test_the_selections_a_painted_map_was_made_with_reach_the_metadata_and_the_session(ctx, st, tiny):  # noqa: F811
    first = Select(points=((60.0, 50.0),), model=tiny("sam2"))
    second = Select(boxes=((5.0, 5.0, 30.0, 20.0),), model=tiny("sam2"))
    selecting.select_into_map(ctx, st, None, first, "replace")
    selecting.select_into_map(ctx, st, None, second, "add")
    h.run_edit(ctx, st, None, None, 0, [], FAST)
    recorded = st.history.frames[-1].result.metadata["painted_selections"]["strength"]
    assert [r["select"] for r in recorded] == [first.to_dict(), second.to_dict()]
    assert [r["combine"] for r in recorded] == ["replace", "add"]
    assert all(r["region"]["model"] == tiny("sam2") for r in recorded)
    # the saved session keeps them with the step, beside the maps it replays from
    from pixels.session import selections_of

    assert selections_of(st.history.frames[-1].result.metadata)["painted"]["strength"] == recorded
    # clearing the map (or replacing it with another tool's map) forgets them
    from pixels.app import canvas as cv

    cv.clear_map(st)
    cv.apply_shape(st, None, "box", (0, 0, 40, 40), 100, "add")
    h.run_edit(ctx, st, None, None, 0, [], FAST)
    assert "painted_selections" not in st.history.frames[-1].result.metadata
    selecting.select_into_map(ctx, st, None, first, "add")
    cv.apply_shape(st, None, "box", (0, 0, 40, 40), 100, "replace")
    assert cv.painted_selections(st, []) == {}


def test_an_exemplar_tab_s_cut_out_takes_only_the_selected_part(ctx, st, tiny, tmp_path):  # noqa: F811
    from PIL import Image

    from pixels.app.exemplars import Slot, to_exemplar

    rng = np.random.default_rng(3)
    picture = tmp_path / "lamp.png"
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(picture)
    size = st.history.source.image.size
    strength = np.zeros(size[::-1])
    strength[20:60, 30:70] = 1.0
    text = f"{{boxes: [[4, 6, 20, 30]], model: {tiny('sam2')}}}"
    exemplar = to_exemplar(Slot(str(picture), cutout=text), 0, size, strength, strength, 10**7)
    assert exemplar.cutout == Select(boxes=((4.0, 6.0, 20.0, 30.0),), model=tiny("sam2"))
    assert to_exemplar(Slot(str(picture), cutout="  "), 0, size, strength, strength, 10**7).cutout is None
    assert to_exemplar(Slot(str(picture), cutout="the lamp"), 0, size, strength, strength, 10**7).cutout == \
        Select(text="the lamp")
    with pytest.raises(InputError, match=r"^exemplar 2\.cutout\.grow: "):
        to_exemplar(Slot(str(picture), cutout="{text: the lamp, grow: -3}"), 1, size, strength, strength, 10**7)
    with pytest.raises(InputError, match=r"^exemplar 1\.cutout: expected a mapping"):
        to_exemplar(Slot(str(picture), cutout="{text: [unclosed"), 0, size, strength, strength, 10**7)
    # the edit: the cut-out is recorded, and only the selected part of the picture reaches the photo
    stroke = {"map": painting.map_url(strength), "target": "strength"}
    view = h.run_edit(ctx, st, None, stroke, 0, [Slot(str(picture), cutout=text)], FAST)
    recorded = st.history.frames[-1].result.metadata["exemplars"][0]["cutout"]
    assert recorded["select"] == exemplar.cutout.to_dict() and recorded["region"]["model"] == tiny("sam2")
    kept = st.history.frames[-1].result.strength_map == 0
    np.testing.assert_array_equal(pixels_of(view.result.after)[kept], pixels_of(st.history.frames[0].image)[kept])
