"""Property-based tests of the input layer: whatever it is given, it converts as documented or raises the
library's InputError naming the argument; never another exception type, never a hang.

Examples are derandomised (the same ones every run, so CI is stable); set HYPOTHESIS_PROFILE=explore
for a longer random search.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from conftest import deadline
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from pixels.core.crop import crop_around
from pixels.core.placement import FITS, check_box, place
from pixels.core.settings import EditSettings, Exemplar
from pixels.errors import InputError
from pixels.inputs import maps
from pixels.inputs.images import load_image, load_map
from pixels.inputs.prompt_images import load_prompt_images
from pixels.inputs.read import place_inputs, read_inputs

settings.register_profile("ci", max_examples=150, deadline=5000, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=2000, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.int32, np.int64, np.uint32, np.float16, np.float32,
                          np.float64, np.bool_, np.complex64, "U3", "datetime64[s]", object])
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9)
MODES = ["1", "L", "P", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "I;16", "I;16B", "I;16L", "LA", "PA",
         "RGBX", "RGBa", "La"]
NUMBERS = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.none(), st.text(max_size=4), st.decimals(allow_nan=True))


def arrays():
    return DTYPES.flatmap(lambda dtype: hnp.arrays(np.dtype(dtype), SHAPES))


@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(MODES))
    size = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    length = len(Image.new(mode, size).tobytes())
    image = Image.frombytes(mode, size, draw(st.binary(min_size=length, max_size=length)))
    if mode in ("P", "PA") and draw(st.booleans()):
        image.info["transparency"] = draw(st.integers(0, 255))
    return image


def images():
    return st.one_of(arrays(), pil_images(), st.none(), st.integers(), st.text(max_size=5), st.binary(max_size=5))


def expect_input_error(call, seconds: int = 20):
    """Run `call`; an InputError is an accepted outcome, anything else propagates and fails the test, and so
    does a call still running after `seconds` (a hang fails instead of blocking)."""
    try:
        with deadline(seconds):
            return call()
    except InputError as error:
        assert error.param, f"an InputError must name the argument: {error}"
        return None


@given(images())
def test_load_image_converts_or_refuses(value):
    out = expect_input_error(lambda: load_image(value, name="source"))
    if out is not None:
        picture, alpha = out
        assert picture.mode == "RGB" and picture.width >= 1 and picture.height >= 1
        if alpha is not None:
            assert alpha.shape == (picture.height, picture.width) and 0 <= alpha.min() <= alpha.max() <= 1


@given(images(), st.integers(1, 12), st.integers(1, 12), st.booleans())
def test_load_map_converts_or_refuses(value, width, height, invert):
    out = expect_input_error(lambda: load_map(value, name="strength_map", size=(width, height), invert=invert))
    if out is not None:
        strength, notes = out
        assert strength.shape == (height, width) and strength.dtype == np.float64
        assert np.isfinite(strength).all() and 0 <= strength.min() <= strength.max() <= 1
        assert all(isinstance(n, str) for n in notes)


BOXES = st.one_of(
    st.tuples(NUMBERS, NUMBERS, NUMBERS, NUMBERS),
    st.lists(st.integers(-50, 50), min_size=0, max_size=6),
    st.tuples(st.integers(-2**40, 2**40), st.integers(-2**40, 2**40), st.integers(-2**40, 2**40),
              st.integers(-2**40, 2**40)),
    NUMBERS,
)


@given(BOXES, st.integers(1, 30), st.integers(1, 30))
def test_boxes_are_checked(box, width, height):
    checked = expect_input_error(lambda: check_box(box, "box", (width, height)))
    if checked is not None:
        x, y, w, h = checked
        assert w >= 1 and h >= 1 and x < width and y < height and x + w > 0 and y + h > 0


@given(st.tuples(st.integers(-40, 40), st.integers(-40, 40), st.integers(1, 60), st.integers(1, 60)),
       st.sampled_from([*FITS, "fill", ""]), st.integers(1, 20), st.integers(1, 20), st.booleans())
def test_placement_covers_only_the_canvas(box, fit, width, height, with_alpha):
    source = Image.new("RGB", (24, 18), (10, 20, 30))
    picture = Image.new("RGB", (width, height), (200, 100, 50))
    alpha = np.linspace(0, 1, width * height).reshape(height, width) if with_alpha else None

    def placed():
        return place(source, picture, alpha, check_box(box, "box", source.size), fit)

    out = expect_input_error(placed)
    if out is not None:
        canvas, coverage = out
        assert canvas.size == source.size and coverage.shape == (18, 24)
        assert 0 <= coverage.min() <= coverage.max() <= 1
        untouched = coverage == 0
        assert np.array_equal(np.asarray(canvas)[untouched], np.asarray(source)[untouched])


@given(st.tuples(st.integers(0, 30), st.integers(0, 20), st.integers(1, 30), st.integers(1, 20)),
       st.integers(0, 5000), st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 2, 4, 8, 16, 64]))
def test_crop_boxes_contain_the_edit_and_stay_in_the_frame(edited, margin, width, height, multiple):
    x, y, w, h = edited
    w, h = min(w, width - min(x, width - 1)), min(h, height - min(y, height - 1))
    x, y = min(x, width - 1), min(y, height - 1)
    cx, cy, cw, ch = crop_around((x, y, w, h), margin, (width, height), multiple)
    assert 0 <= cx <= x and 0 <= cy <= y and x + w <= cx + cw <= width and y + h <= cy + ch <= height


SETTING_VALUES = {
    "prompt": st.one_of(st.text(max_size=20), st.integers(), st.none()),
    "negative_prompt": st.one_of(st.text(max_size=20), st.binary(max_size=4)),
    "num_inference_steps": NUMBERS, "strength": NUMBERS, "denoising_start": NUMBERS, "guidance_scale": NUMBERS,
    "scheduler": st.one_of(st.none(), st.sampled_from(["ddim", "euler", "default", "plms"]), st.integers()),
    "mode": st.one_of(st.sampled_from(["paper", "blend"]), NUMBERS), "invert_map": st.booleans(),
    "preserve": st.sampled_from(["exact", "none", "all"]), "eta": NUMBERS,
    "skip_steps": st.sampled_from(["auto", "always", "never", 1]), "crop": st.one_of(st.just("auto"), BOXES),
    "crop_margin": NUMBERS, "crop_resize": st.one_of(st.just("native"), NUMBERS), "switch_at": NUMBERS,
    "exemplar_encode": st.one_of(st.sampled_from(["full", "region"]), NUMBERS),
}


@given(st.fixed_dictionaries({}, optional=SETTING_VALUES))
def test_settings_validate_or_refuse(values):
    settings_ = expect_input_error(lambda: EditSettings(**values))
    if settings_ is not None:
        expect_input_error(settings_.validate)


@given(st.lists(st.one_of(st.tuples(images(), NUMBERS), images(), st.tuples(images()), st.just(())), max_size=3)
       | st.none() | st.integers() | st.text(max_size=3))
def test_prompt_images_load_or_refuse(prompt_images):
    loaded = expect_input_error(lambda: load_prompt_images(prompt_images))
    if loaded is not None:
        assert all(p.mode == "RGB" and 0 < w <= 100 for p, w in loaded)


@given(arrays(), st.one_of(arrays(), st.none()), st.one_of(BOXES, st.none()), st.sampled_from([*FITS, "x"]),
       st.one_of(arrays(), st.none()), st.booleans())
def test_reading_and_placing_inputs_converts_or_refuses(exemplar, exemplar_map, box, fit, strength_map, invert):
    source = np.full((12, 16, 3), 128, np.uint8)
    out = expect_input_error(lambda: place_inputs(read_inputs(source, [Exemplar(exemplar, exemplar_map, box, fit)],
                                                              strength_map, invert)))
    if out is not None:
        assert out.strength.shape == (12, 16) and 0 <= out.strength.min() <= out.strength.max() <= 1
        assert [e.size for e in out.exemplars] == [(16, 12)]


@given(st.sampled_from(["box", "ellipse", "radial", "linear", "polygon", "feather", "combine"]),
       st.tuples(NUMBERS, NUMBERS), st.lists(NUMBERS, max_size=8), NUMBERS,
       st.one_of(st.sampled_from(["max", "min", "multiply"]), st.text(max_size=3)),
       st.one_of(arrays(), hnp.arrays(np.float64, (7, 9), elements=st.floats(0, 1))))
def test_map_tools_make_maps_or_refuse(kind, size, params, value, how, other):
    calls = {
        "box": lambda: maps.box(size, params, value),
        "ellipse": lambda: maps.ellipse(size, params[:2], params[2:4], value),
        "radial": lambda: maps.radial(size, params[:2], *(params[2:4] + [1, 2])[:2]),
        "linear": lambda: maps.linear(size, params[:2], params[2:4]),
        "polygon": lambda: maps.polygon(size, list(zip(params[::2], params[1::2])), value),
        "feather": lambda: maps.feather(maps.box((9, 7), (1, 1, 4, 4)), value),
        "combine": lambda: maps.combine([maps.box((9, 7), (1, 1, 4, 4)), other], how),
    }
    out = expect_input_error(calls[kind])
    if out is not None:
        assert out.ndim == 2 and np.isfinite(out).all() and 0 <= out.min() <= out.max() <= 1


def test_the_converting_branches_work_on_plain_examples():
    """The successful branches the properties above check, on plain inputs (the properties' strategies mix
    valid and invalid values; these show the valid branches run at all)."""
    assert load_image(np.zeros((3, 4, 3), np.uint8), name="x")[0].size == (4, 3)
    assert load_map(np.ones((2, 2), bool), name="m", size=(4, 4))[0].shape == (4, 4)
    assert check_box((0, 0, 3, 3), "box", (5, 5)) == (0, 0, 3, 3)
    assert math.isfinite(float(maps.radial((5, 5), (2, 2), 1, 2).sum()))


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_converts(mode):
    picture, _ = load_image(Image.new(mode, (3, 2)), name="source")
    assert picture.mode == "RGB" and picture.size == (3, 2)
