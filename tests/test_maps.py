"""Strength-map makers and operations: exact values on small known cases, invariants, and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from pixels.errors import InputError
from pixels.inputs import maps


def _brute_distance_to_zero(m: np.ndarray) -> np.ndarray:
    """Euclidean distance from every pixel to the nearest 0 pixel, by checking all pairs (reference)."""
    zy, zx = np.nonzero(m == 0)
    y, x = np.mgrid[0 : m.shape[0], 0 : m.shape[1]]
    if zy.size == 0:
        return np.full(m.shape, np.inf)
    return np.sqrt((y[..., None] - zy) ** 2 + (x[..., None] - zx) ** 2).min(axis=-1)


# --- ellipse -------------------------------------------------------------------------------------


def test_ellipse_values():
    e = maps.ellipse((9, 7), (4.5, 3.5), (4, 2))
    assert e.shape == (7, 9) and e.dtype == np.float64
    assert e.tolist() == [
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 1, 1, 0],
        [1, 1, 1, 1, 1, 1, 1, 1, 1],
        [0, 1, 1, 1, 1, 1, 1, 1, 0],
        [0, 0, 0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0, 0],
    ]
    assert set(np.unique(maps.ellipse((9, 7), (4.5, 3.5), (4, 2), value=0.25))) == {0.0, 0.25}


def test_ellipse_area_and_symmetry():
    e = maps.ellipse((200, 120), (100, 60), (80, 40))
    assert e.sum() == pytest.approx(math.pi * 80 * 40, rel=0.01)
    assert np.array_equal(e, e[::-1]) and np.array_equal(e, e[:, ::-1])
    assert not maps.ellipse((10, 10), (-50, -50), (3, 3)).any()  # entirely outside the image


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(size=(0, 5), center=(1, 1), radii=(1, 1)), r"ellipse: size: expected \(width, height\) integers >= 1"),
        (dict(size=(5.5, 5), center=(1, 1), radii=(1, 1)), r"ellipse: size: .*got \(5\.5, 5\)"),
        (dict(size=(5, 5), center=(1, 1), radii=(0, 1)), r"ellipse: radii must be > 0, got \(0, 1\)"),
        (dict(size=(5, 5), center=(1, 1), radii=(2, -1)), r"ellipse: radii must be > 0"),
        (dict(size=(5, 5), center=(1, float("nan")), radii=(1, 1)), "ellipse: center: expected a finite number"),
        (dict(size=(5, 5), center=(1,), radii=(1, 1)), r"ellipse: center: expected a pair of numbers, got \(1,\)"),
        (dict(size=(5, 5), center=(1, 1), radii=(1, 1), value=1.5), r"ellipse: value must lie in \[0, 1\], got 1.5"),
    ],
)
def test_ellipse_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        maps.ellipse(**kwargs)


# --- polygon -------------------------------------------------------------------------------------


def test_polygon_rectangle_matches_box():
    square = [(2, 1), (7, 1), (7, 5), (2, 5)]
    assert np.array_equal(maps.polygon((10, 8), square), maps.box((10, 8), (2, 1, 5, 4)))
    assert np.array_equal(maps.polygon((10, 8), square[::-1], 0.5), maps.box((10, 8), (2, 1, 5, 4), 0.5))


def test_polygon_triangle_values():
    p = maps.polygon((8, 8), [(1, 1), (7, 2), (3, 7)])
    assert p.tolist() == [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0, 0, 0],
        [0, 1, 1, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ]
    big = maps.polygon((200, 200), [(0, 0), (200, 0), (0, 200)])
    assert big.sum() == pytest.approx(200 * 200 / 2, rel=0.01)


def test_polygon_even_odd_rule_leaves_pentagram_centre_out():
    centre, radius = (50.0, 50.0), 45.0
    tips = [
        (centre[0] + radius * math.sin(2 * math.pi * k / 5), centre[1] - radius * math.cos(2 * math.pi * k / 5))
        for k in range(5)
    ]
    star = maps.polygon((100, 100), [tips[(2 * k) % 5] for k in range(5)])  # self-intersecting
    assert star[50, 50] == 0  # the pentagon in the middle is crossed twice
    assert star[10, 50] == 1  # inside the top tip
    assert star[0, 0] == 0


@pytest.mark.parametrize(
    "size, points, value, match",
    [
        ((5, 5), [(0, 0), (4, 4)], 1.0, "polygon: points: expected at least 3 points, got 2"),
        ((5, 5), [(0, 0), (4, 4), (0, 4, 1)], 1.0, r"polygon: points\[2\]: expected a pair of numbers"),
        ((5, 5), [(0, 0), (4, float("inf")), (0, 4)], 1.0, r"polygon: points\[1\]: expected a finite number"),
        ((5, 5), 3, 1.0, "polygon: points: expected a list of"),
        ((5, 5), [(0, 0), (4, 4), (0, 4)], -0.1, r"polygon: value must lie in \[0, 1\], got -0.1"),
        ((5, -1), [(0, 0), (4, 4), (0, 4)], 1.0, "polygon: size: expected"),
    ],
)
def test_polygon_errors(size, points, value, match):
    with pytest.raises(InputError, match=match):
        maps.polygon(size, points, value)


# --- feather -------------------------------------------------------------------------------------


def test_feather_values_on_a_half_plane():
    m = maps.box((12, 9), (0, 0, 12, 6))  # rows 0-5 edited, rows 6-8 kept
    f = maps.feather(m, 3)
    assert f[:, 0].tolist() == pytest.approx([1, 1, 1, 1, 2 / 3, 1 / 3, 0, 0, 0])
    assert np.all(f == f[:, :1])  # the image border is not an edge: no feathering along the sides
    assert m[5, 0] == 1  # the input is not modified


def test_feather_matches_brute_force_distance():
    rng = np.random.default_rng(0)
    for radius in (1, 2.5, 4, 30):
        m = rng.random((23, 31))
        m[rng.random(m.shape) < 0.08] = 0
        expected = m * np.clip(_brute_distance_to_zero(m) / radius, 0, 1)
        assert np.allclose(maps.feather(m, radius), expected, atol=1e-12, rtol=0)


def test_feather_invariants():
    m = maps.combine([maps.ellipse((40, 30), (20, 15), (14, 10)), 0.5 * maps.box((40, 30), (0, 0, 40, 30))])
    m = maps.combine([m, maps.polygon((40, 30), [(2, 2), (12, 2), (2, 12)])])
    radius = 4
    f = maps.feather(m, radius)
    assert f.dtype == np.float64 and f.shape == m.shape
    assert np.all(f[m == 0] == 0)  # the kept side never changes
    assert np.all(f <= m)  # values never increase
    deep = _brute_distance_to_zero(m) >= radius
    assert deep.any() and np.array_equal(f[deep], m[deep])  # interior unchanged


def test_feather_ramp_is_monotone_inward():
    m = maps.box((40, 40), (5, 5, 30, 30))
    f = maps.feather(m, 6)
    row = f[20, 5:21]  # from the left edge of the box to its centre
    assert row[0] == pytest.approx(1 / 6) and row[-1] == 1
    assert np.all(np.diff(row) >= 0) and np.all(np.diff(f[5:21, 20]) >= 0)
    assert np.all(np.diff(np.diag(f)[5:21]) >= 0)  # along the diagonal from the corner too


def test_feather_trivial_cases():
    m = maps.radial((16, 16), (8, 8), 2, 6)
    assert np.array_equal(maps.feather(m, 0), m) and maps.feather(m, 0) is not m
    ones = np.ones((5, 7))
    assert np.array_equal(maps.feather(ones, 3), ones)  # nothing kept: nothing to feather against
    assert np.array_equal(maps.feather(np.zeros((4, 4)), 2), np.zeros((4, 4)))
    assert maps.feather(m.astype(np.float32), 2).dtype == np.float64


@pytest.mark.parametrize(
    "strength, radius, match",
    [
        (np.ones((4, 4)), -1, "feather: radius must be >= 0, got -1"),
        (np.ones((4, 4)), float("nan"), "feather: radius: expected a finite number"),
        (np.ones((4, 4)), "3", "feather: radius: expected a finite number, got '3'"),
        (np.ones((4, 4, 1)), 2, r"feather: strength: expected a non-empty \(H, W\) array, got shape \(4, 4, 1\)"),
        (np.full((4, 4), 1.5), 2, r"feather: strength: map values must lie in \[0, 1\], got min 1.5, max 1.5"),
        (np.array([[0.5, np.nan]]), 2, "feather: strength: map contains NaN"),
    ],
)
def test_feather_errors(strength, radius, match):
    with pytest.raises(InputError, match=match):
        maps.feather(strength, radius)


# --- from_alpha ----------------------------------------------------------------------------------


def test_from_alpha_array_and_images():
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 3] = [[0, 51, 255], [255, 102, 0]]
    expected = [[0, 0.2, 1], [1, 0.4, 0]]
    assert maps.from_alpha(rgba) == pytest.approx(np.array(expected))
    assert maps.from_alpha(rgba).dtype == np.float64
    assert maps.from_alpha(Image.fromarray(rgba, "RGBA")) == pytest.approx(np.array(expected))
    la = Image.fromarray(rgba[..., [0, 3]], "LA")
    assert maps.from_alpha(la) == pytest.approx(np.array(expected))
    palette = Image.new("P", (2, 1))
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    assert maps.from_alpha(palette).tolist() == [[0, 1]]


@pytest.mark.parametrize(
    "image, match",
    [
        (Image.new("RGB", (3, 2)), "from_alpha: image has no alpha channel \\(mode 'RGB'\\)"),
        (Image.new("L", (3, 2)), "from_alpha: image has no alpha channel \\(mode 'L'\\)"),
        (np.zeros((2, 3, 3), np.uint8), r"from_alpha: expected an \(H, W, 4\) uint8 array, got shape \(2, 3, 3\)"),
        (np.zeros((2, 3, 4), np.float64), "from_alpha: .*dtype float64"),
        ("mask.png", "from_alpha: expected a PIL image or a numpy array, got str"),
    ],
)
def test_from_alpha_errors(image, match):
    with pytest.raises(InputError, match=match):
        maps.from_alpha(image)


# --- combine and invert --------------------------------------------------------------------------


def test_combine_values():
    a = np.array([[0.0, 0.5], [1.0, 0.2]])
    b = np.array([[0.3, 0.4], [0.5, 1.0]])
    assert maps.combine([a, b]).tolist() == [[0.3, 0.5], [1.0, 1.0]]
    assert maps.combine([a, b], how="min").tolist() == [[0.0, 0.4], [0.5, 0.2]]
    assert maps.combine([a, b], how="multiply") == pytest.approx(np.array([[0.0, 0.2], [0.5, 0.2]]))
    assert maps.combine((a, b, np.zeros((2, 2))), how="max").tolist() == [[0.3, 0.5], [1.0, 1.0]]
    single = maps.combine([a])
    assert np.array_equal(single, a) and single is not a and single.dtype == np.float64
    assert maps.combine([np.ones((2, 2), np.uint8)], how="multiply").dtype == np.float64


def test_combine_invariants():
    rng = np.random.default_rng(1)
    ms = [rng.random((6, 5)) for _ in range(3)]
    union, inter, prod = (maps.combine(ms, how) for how in ("max", "min", "multiply"))
    assert np.all(prod <= inter) and np.all(inter <= union)
    assert all(np.all(inter <= m) and np.all(m <= union) for m in ms)


@pytest.mark.parametrize(
    "ms, how, match",
    [
        ([], "max", "combine: maps: expected at least one map, got none"),
        ([np.ones((2, 2))], "sum", "combine: how must be one of 'max', 'min', 'multiply', got 'sum'"),
        ([np.ones((2, 2)), np.ones((2, 3))], "max", r"combine: all maps must have the same shape.*\(2, 2\), \(2, 3\)"),
        ([np.ones((2, 2)), np.full((2, 2), 2.0)], "max", r"combine: maps\[1\]: map values must lie in \[0, 1\]"),
        (np.ones((2, 2)), "max", r"combine: maps: expected a sequence of \(H, W\) maps, got one array"),
        (5, "max", "combine: maps: expected a sequence of .* got int"),
    ],
)
def test_combine_errors(ms, how, match):
    with pytest.raises(InputError, match=match):
        maps.combine(ms, how)


def test_invert():
    m = np.array([[0.0, 0.25], [1.0, 0.5]])
    assert maps.invert(m).tolist() == [[1.0, 0.75], [0.0, 0.5]]
    assert np.array_equal(maps.invert(maps.invert(m)), m)
    assert m[0, 0] == 0.0  # input untouched
    with pytest.raises(InputError, match=r"invert: strength: map values must lie in \[0, 1\], got min -1, max 0.25"):
        maps.invert(np.array([[-1.0, 0.25]]))


# --- overlay -------------------------------------------------------------------------------------


def test_overlay_values():
    source = Image.fromarray(np.full((2, 3, 3), 100, np.uint8))
    strength = np.array([[0.0, 0.5, 1.0], [1.0, 0.0, 0.0]])
    out = maps.overlay(source, strength)
    assert out.mode == "RGB" and out.size == (3, 2)
    pixels = np.asarray(out)
    assert pixels[0, 0].tolist() == [100, 100, 100]  # strength 0: the source unchanged
    assert pixels[0, 1].tolist() == [146, 82, 82]  # alpha 0.3: 100 * 0.7 + (255, 40, 40) * 0.3, rounded
    assert pixels[0, 2].tolist() == [193, 64, 64]  # alpha 0.6: 100 * 0.4 + (255, 40, 40) * 0.6
    full = np.asarray(maps.overlay(source, strength, colour=(0, 0, 255), opacity=1.0))
    assert full[0, 2].tolist() == [0, 0, 255] and full[1, 1].tolist() == [100, 100, 100]
    assert np.array_equal(np.asarray(maps.overlay(source, strength, opacity=0.0)), np.asarray(source))


@pytest.mark.parametrize(
    "source, strength, kwargs, match",
    [
        (np.zeros((2, 2, 3)), np.ones((2, 2)), {}, "overlay: source: expected a PIL image, got ndarray"),
        (Image.new("RGB", (3, 2)), np.ones((3, 2)), {}, r"overlay: strength has shape \(3, 2\), expected .*\(2, 3\)"),
        (Image.new("RGB", (2, 2)), np.ones((2, 2)), dict(opacity=1.2), r"overlay: opacity must lie in \[0, 1\]"),
        (Image.new("RGB", (2, 2)), np.ones((2, 2)), dict(colour=(300, 0, 0)), r"overlay: colour: .*\(300, 0, 0\)"),
        (Image.new("RGB", (2, 2)), np.ones((2, 2)), dict(colour=(1, 2)), "overlay: colour: expected three integers"),
        (Image.new("RGB", (2, 2)), np.full((2, 2), 3.0), {}, r"overlay: strength: map values must lie in \[0, 1\]"),
    ],
)
def test_overlay_errors(source, strength, kwargs, match):
    with pytest.raises(InputError, match=match):
        maps.overlay(source, strength, **kwargs)


# --- existing makers keep their behaviour ---------------------------------------------------------


def test_existing_makers_unchanged():
    assert maps.box((4, 3), (1, 1, 2, 5), 0.5).tolist() == [[0, 0, 0, 0], [0, 0.5, 0.5, 0], [0, 0.5, 0.5, 0]]
    assert maps.radial((5, 5), (2.5, 2.5), 1, 1).sum() == 5
    with pytest.raises(InputError, match="size: expected"):
        maps.linear((0, 3), (0, 0), (1, 1))
