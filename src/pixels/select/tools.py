"""Tools for selections, on top of the map tools of `pixels.inputs.maps` (feather, invert, combine): grow and
shrink by a number of pixels, fill holes, keep the largest part, and `refine`, which applies them in order.

Every tool takes and returns a float64 (H, W) map in [0, 1]. Grow and shrink are grey-level (the largest and the
smallest value within `pixels` of each pixel centre, by Euclidean distance between centres), so on a selection of
0s and 1s they are the usual binary dilation and erosion. The structural tools (holes, parts) count a pixel as
selected when its value is above 0: parts touch by edges or corners (8-connected), holes by edges only
(4-connected), so a hole never leaks through a corner between two selected pixels. A pixel a tool does not
select stays exactly 0.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError, short
from ..inputs import maps
from ..inputs.maps import _map  # the map check every map tool applies

MAX_RADIUS = 4096  # pixels of grow, shrink and feather: far beyond any useful edge


def _radius(value, where: str, integer: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value < 0 or value > MAX_RADIUS or (integer and value != int(value)):
        kind = "an integer" if integer else "a number"
        raise InputError(f"expected {kind} of pixels in [0, {MAX_RADIUS}], got {short(value)}", param=where)
    return int(value) if integer else float(value)


def _windows(a: np.ndarray, width: int, pick) -> np.ndarray:
    """out[:, i] = pick(a[:, i:i + width]) for every full window along the rows, by doubling (O(log width))."""
    out, span = a, 1
    while span * 2 <= width:  # out[:, i] covers a[:, i:i + span]
        out = pick(out[:, :-span], out[:, span:])
        span *= 2
    if span < width:  # two overlapping windows of `span` cover one of `width`
        rest = width - span
        out = pick(out[:, :-rest], out[:, rest:])
    return out


def _disc(m: np.ndarray, radius: int, pick, fill: float) -> np.ndarray:
    """The pick of `m` over the disc of `radius` pixels around each pixel centre (the Euclidean distance between
    centres at most `radius`), `fill` beyond the border: for each row offset dy, a row window of half-width
    floor(sqrt(radius^2 - dy^2))."""
    height, width = m.shape
    padded = np.pad(m, radius, constant_values=fill)
    rows: dict[int, np.ndarray] = {}
    out = None
    for dy in range(-radius, radius + 1):
        half = math.isqrt(radius * radius - dy * dy)
        if half not in rows:
            rows[half] = _windows(padded[:, radius - half:radius + half + width], 2 * half + 1, pick)
        part = rows[half][radius + dy:radius + dy + height]
        out = part.copy() if out is None else pick(out, part, out=out)
    return out


def grow(strength, pixels: int) -> np.ndarray:
    """The selection grown by `pixels` (each pixel takes the largest value within `pixels` of it)."""
    m, pixels = _map(strength, "grow: strength"), _radius(pixels, "grow")
    return m.copy() if pixels == 0 else _disc(m, pixels, np.maximum, 0.0)


def shrink(strength, pixels: int) -> np.ndarray:
    """The selection shrunk by `pixels` (each pixel takes the smallest value within `pixels` of it; the image
    border is not an edge, as in `maps.feather`)."""
    m, pixels = _map(strength, "shrink: strength"), _radius(pixels, "shrink")
    return m.copy() if pixels == 0 else _disc(m, pixels, np.minimum, 1.0)


def components(selected: np.ndarray, connectivity: int = 8) -> tuple[np.ndarray, int]:
    """Label the connected parts of a boolean (H, W) array: (labels, count), labels 1..count on the True pixels
    and 0 elsewhere; parts touch by edges (connectivity 4) or by edges and corners (8).

    Runs of True pixels along each row are the nodes; runs of neighbouring rows that overlap are joined, and
    labels propagate over the joins (with pointer jumping) until they no longer change."""
    selected = np.asarray(selected, bool)
    height, width = selected.shape
    padded = np.zeros((height, width + 2), np.int8)
    padded[:, 1:-1] = selected
    change = np.diff(padded, axis=1)
    row_s, start = np.nonzero(change == 1)
    row_e, end = np.nonzero(change == -1)  # exclusive; both in row-major order, so they pair up
    n = len(start)
    labels = np.zeros((height, width), np.int32)
    if n == 0:
        return labels, 0
    reach = 1 if connectivity == 8 else 0
    first = np.searchsorted(row_s, np.arange(height + 1))  # the runs of row r are first[r]:first[r + 1]
    left, right = [], []
    for r in range(height - 1):
        a0, a1, b0, b1 = first[r], first[r + 1], first[r + 1], first[r + 2]
        if a0 == a1 or b0 == b1:
            continue
        # run b overlaps runs a with start_a < end_b + reach and end_a + reach > start_b
        lo = np.searchsorted(end[a0:a1] + reach, start[b0:b1], side="right")
        hi = np.searchsorted(start[a0:a1], end[b0:b1] + reach, side="left")
        counts = np.maximum(hi - lo, 0)
        if counts.any():
            b = np.repeat(np.arange(b0, b1), counts)
            a = a0 + np.concatenate([np.arange(l, h) for l, h in zip(lo, hi) if h > l])
            left.append(a)
            right.append(b)
    label = np.arange(n)
    if left:
        a, b = np.concatenate(left), np.concatenate(right)
        while True:
            low = np.minimum(label[a], label[b])
            before = label.copy()
            np.minimum.at(label, a, low)
            np.minimum.at(label, b, low)
            label = label[label]  # pointer jumping: each run points at its root's root
            if np.array_equal(label, before):
                break
    roots, dense = np.unique(label, return_inverse=True)
    run_labels = dense + 1
    for k in range(n):  # paint the runs (a Python loop over runs, not pixels)
        labels[row_s[k], start[k]:end[k]] = run_labels[k]
    return labels, len(roots)


def fill_holes(strength, max_area: int | None = None) -> np.ndarray:
    """Unselected parts enclosed by the selection (not touching the image border) selected at 1; with `max_area`,
    only holes of at most that many pixels."""
    m = _map(strength, "fill_holes: strength")
    if max_area is not None and (isinstance(max_area, bool) or not isinstance(max_area, (int, np.integer))
                                 or max_area < 0):
        raise InputError(f"max_area: expected an integer >= 0 or None, got {short(max_area)}", param="fill_holes")
    labels, count = components(m == 0, connectivity=4)
    if count == 0:
        return m.copy()
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    hole = np.ones(count + 1, bool)
    hole[0] = False
    hole[border] = False
    if max_area is not None:
        hole &= sizes <= max_area
    return np.where(hole[labels], 1.0, m)


def largest_part(strength) -> np.ndarray:
    """Only the largest connected part of the selection (by pixel count; the first in reading order on a tie);
    0 elsewhere."""
    m = _map(strength, "largest_part: strength")
    labels, count = components(m > 0, connectivity=8)
    if count <= 1:
        return m.copy()
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = -1
    return np.where(labels == int(np.argmax(sizes)), m, 0.0)


def refine(strength, *, fill_holes: bool = False, largest: bool = False, grow: int = 0, shrink: int = 0,
           invert: bool = False, feather: float = 0.0) -> np.ndarray:
    """A selection made ready to edit, in this order: holes filled, the largest part kept, grown, shrunk,
    inverted (everything else selected instead), then feathered inside the selected side (`maps.feather`: what
    is not selected stays exactly 0)."""
    m = _map(strength, "strength")
    grow_px, shrink_px = _radius(grow, "grow"), _radius(shrink, "shrink")
    feather_px = _radius(feather, "feather", integer=False)
    if fill_holes:
        m = globals()["fill_holes"](m)
    if largest:
        m = largest_part(m)
    if grow_px:
        m = globals()["grow"](m, grow_px)
    if shrink_px:
        m = globals()["shrink"](m, shrink_px)
    if invert:
        m = maps.invert(m)
    if feather_px:
        m = maps.feather(m, feather_px)
    return m
