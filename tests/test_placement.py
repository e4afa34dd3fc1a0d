"""Exemplar placement: boxes, fits, clipping, alpha, and how the editor chooses where an exemplar goes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import box_map, photo
from PIL import Image

from pixels import Editor, Exemplar
from pixels.core.placement import check_box, place, region_box
from pixels.errors import InputError

GRAY = Image.new("RGB", (20, 10), (50, 50, 50))


def halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue: shows what a fit keeps and where it puts it."""
    a = np.zeros((height, width, 3), np.uint8)
    a[:, : width // 2] = (255, 0, 0)
    a[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(a)


def near(pixels: np.ndarray, colour, tolerance: int = 20) -> bool:
    """All pixels within `tolerance` levels of `colour` (Lanczos resizing ripples near colour edges)."""
    return bool((np.abs(pixels.astype(int) - np.array(colour)) <= tolerance).all())


def test_check_box_and_region_box():
    assert check_box((1, 2, 3, 4), "box", (20, 10)) == (1, 2, 3, 4)
    assert check_box((-5, -5, 10, 10), "box", (20, 10)) == (-5, -5, 10, 10)  # partly outside is fine
    for box, match in [((1, 2, 3), "expected \\(x, y, w, h\\) integers"), ((1.5, 0, 2, 2), "integers"),
                       ((0, 0, 0, 4), "width and height must be >= 1"), ((20, 0, 5, 5), "entirely outside")]:
        with pytest.raises(InputError, match=f"e.box: .*{match}"):
            check_box(box, "e.box", (20, 10))
    m = np.zeros((10, 20))
    assert region_box(m) is None
    m[2:5, 3:9] = 0.5
    assert region_box(m) == (3, 2, 6, 3)


def test_stretch_fills_the_box_and_leaves_the_rest_alone():
    canvas, cover = place(GRAY, halves(8, 8), None, (4, 2, 10, 6), "stretch")
    out = np.asarray(canvas)
    assert near(out[2:8, 4:8], (255, 0, 0)) and near(out[2:8, 10:14], (0, 0, 255))
    assert (out[:2] == 50).all() and (out[:, :4] == 50).all() and (out[:, 14:] == 50).all()
    assert cover.sum() == 60 and (cover[2:8, 4:14] == 1).all()


def test_cover_crops_and_contain_letterboxes():
    # a 16x8 exemplar into an 8x8 box: cover keeps the middle (half red, half blue), contain shrinks it
    canvas, cover = place(GRAY, halves(16, 8), None, (0, 0, 8, 8), "cover")
    out = np.asarray(canvas)
    assert near(out[:8, :3], (255, 0, 0)) and near(out[:8, 5:8], (0, 0, 255)) and cover.sum() == 64
    canvas, cover = place(GRAY, halves(16, 8), None, (0, 0, 8, 8), "contain")
    out = np.asarray(canvas)
    assert (out[:2, :8] == 50).all() and (out[6:8, :8] == 50).all()  # letterbox rows stay source
    assert near(out[2:6, :3], (255, 0, 0)) and near(out[2:6, 5:8], (0, 0, 255))
    assert cover[2:6, :8].sum() == 32 and cover.sum() == 32


def test_boxes_are_clipped_to_the_canvas_and_alpha_mixes():
    canvas, cover = place(GRAY, halves(8, 8), None, (-4, 6, 8, 8), "stretch")
    assert cover.sum() == 4 * 4 and near(np.asarray(canvas)[6:10, 0:4], (0, 0, 255))
    alpha = np.full((8, 8), 0.5)
    canvas, cover = place(GRAY, Image.new("RGB", (8, 8), (250, 250, 250)), alpha, (0, 0, 8, 8), "stretch")
    assert np.allclose(cover[:8, :8], 0.5) and (np.asarray(canvas)[0, 0] == 150).all()
    with pytest.raises(InputError, match="unknown fit 'zoom'"):
        place(GRAY, GRAY, None, (0, 0, 2, 2), "zoom")


def test_editor_places_by_box_map_or_alignment(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source = photo(32, 32, seed=1)
    fast = dict(num_inference_steps=4, strength=0.5, guidance_scale=1.0, seed=0)
    # a box and no map: the covered box is the region, everything else is kept exactly
    result = editor.edit(source, exemplars=[Exemplar(halves(10, 6), box=(8, 8, 16, 12), fit="stretch")], **fast)
    out, src = np.asarray(result.image), np.asarray(source)
    inside = box_map(box=(8, 8, 24, 20)) > 0
    assert np.array_equal(out[~inside], src[~inside]) and not np.array_equal(out[inside], src[inside])
    assert result.metadata["exemplars"][0]["box"] == (8, 8, 16, 12)
    assert (result.strength_map[inside] == 1).all()
    # another size with a map: fitted into the map's edited area
    with pytest.warns(UserWarning, match=r"fitted \(cover\) into its map's edited area, box \(4, 6, 10, 12\)"):
        fitted = editor.edit(source, exemplars=[Exemplar(halves(64, 64), box_map(box=(4, 6, 14, 18)))], **fast)
    assert fitted.metadata["exemplars"][0]["box"] == (4, 6, 10, 12)
    # the source's size: already aligned, not moved (the reference behaviour)
    aligned = editor.edit(source, exemplars=[Exemplar(photo(32, 32, seed=2), box_map())], **fast)
    assert aligned.metadata["exemplars"][0]["box"] is None
    with pytest.raises(InputError, match=r"exemplars\[0\].fit: unknown fit 'fill'"):
        editor.edit(source, exemplars=[Exemplar(GRAY, box=(0, 0, 4, 4), fit="fill")], **fast)
    with pytest.raises(InputError, match=r"exemplars\[0\].box: .*entirely outside"):
        editor.edit(source, exemplars=[Exemplar(GRAY, box=(40, 0, 4, 4))], **fast)
