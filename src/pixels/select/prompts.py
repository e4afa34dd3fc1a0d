"""Checking what a selection is asked for: clicks, boxes, a phrase, a depth range, a score threshold and which
of the found regions to keep. Every check raises `InputError` naming the parameter (`points[1]`, `boxes[0]`)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError, short
from ..limits import finite

MAX_POINTS = 64  # clicks on one selection
MAX_BOXES = 64
MAX_PHRASE = 500  # characters: the text encoders read a few dozen tokens
PICKS = ("best", "largest", "all")
DIRECTIONS = ("far", "near")
MAX_GAMMA = 100.0


def _number(value, where: str) -> float:
    result = finite(value)
    if result is None:
        raise InputError(f"expected a finite number, got {short(value)}", param=where)
    return result


def _items(values, where: str, limit: int, what: str) -> list:
    if values is None:
        return []
    if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__iter__"):
        raise InputError(f"expected a list of {what}, got {short(values)}", param=where)
    items = list(values)
    if len(items) > limit:
        raise InputError(f"{len(items)} {what}, more than the limit of {limit}", param=where)
    return items


def check_points(points, where: str = "points", size: tuple[int, int] | None = None) -> tuple[tuple[float, float], ...]:
    """Clicks as ((x, y), ...) in photo pixels (x to the right, y down from the top-left corner), inside the photo
    of `size` (W, H) when it is given."""
    found = []
    for k, point in enumerate(_items(points, where, MAX_POINTS, "points")):
        at = f"{where}[{k}]"
        if isinstance(point, (str, bytes)) or not hasattr(point, "__len__") or len(point) != 2:
            raise InputError(f"expected a point (x, y), got {short(point)}", param=at)
        x, y = _number(point[0], at), _number(point[1], at)
        if size is not None and not (0 <= x <= size[0] and 0 <= y <= size[1]):
            raise InputError(f"({x:g}, {y:g}) lies outside the {size[0]}x{size[1]} photo", param=at)
        found.append((x, y))
    return tuple(found)


def check_boxes(boxes, where: str = "boxes", size: tuple[int, int] | None = None
                ) -> tuple[tuple[float, float, float, float], ...]:
    """Boxes as ((x, y, w, h), ...) in photo pixels, w and h > 0; with `size`, each must overlap the photo and is
    cut to it."""
    found = []
    for k, box in enumerate(_items(boxes, where, MAX_BOXES, "boxes")):
        at = f"{where}[{k}]"
        if isinstance(box, (str, bytes)) or not hasattr(box, "__len__") or len(box) != 4:
            raise InputError(f"expected a box (x, y, w, h), got {short(box)}", param=at)
        x, y, w, h = (_number(v, at) for v in box)
        if w <= 0 or h <= 0:
            raise InputError(f"width and height must be > 0, got {w:g} x {h:g}", param=at)
        if size is not None:
            x0, y0 = max(x, 0.0), max(y, 0.0)
            x1, y1 = min(x + w, float(size[0])), min(y + h, float(size[1]))
            if x1 <= x0 or y1 <= y0:
                raise InputError(f"({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {size[0]}x{size[1]} photo", param=at)
            x, y, w, h = x0, y0, x1 - x0, y1 - y0
        found.append((x, y, w, h))
    return tuple(found)


def check_clicks(points, negative, boxes, size: tuple[int, int] | None = None):
    """(points, negative, boxes) checked together: at least one positive click or a box, and clicks go with one
    box at most (each box is an object of its own)."""
    points, negative = check_points(points, "points", size), check_points(negative, "negative", size)
    boxes = check_boxes(boxes, "boxes", size)
    if not points and not boxes:
        raise InputError("give at least one positive click (points) or a box: negative clicks only say what to"
                         " leave out", param="points" if not negative else "negative")
    if (points or negative) and len(boxes) > 1:
        raise InputError(f"clicks go with one box at most, got {len(boxes)} boxes; select each object on its own and"
                         " combine the maps (pixels.inputs.maps.combine)", param="boxes")
    return points, negative, boxes


def check_text(text, where: str = "text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"expected a phrase such as 'the sofa', got {short(text)}", param=where)
    if len(text) > MAX_PHRASE:
        raise InputError(f"{len(text)} characters, more than the limit of {MAX_PHRASE}", param=where)
    return " ".join(text.split())


def check_threshold(threshold, where: str = "threshold") -> float:
    value = _number(threshold, where)
    if not 0.0 <= value < 1.0:
        raise InputError(f"must lie in [0, 1), got {value:g}", param=where)
    return value


def check_pick(pick, where: str = "pick"):
    """"best" (the highest score), "largest" (the most pixels), "all" (their union) or k >= 1 (the k-th by score)."""
    if isinstance(pick, str) and pick in PICKS:
        return pick
    if isinstance(pick, str) and pick.isdigit():
        pick = int(pick)
    if isinstance(pick, (int, np.integer)) and not isinstance(pick, bool) and 1 <= pick <= 1000:
        return int(pick)
    raise InputError(f"expected one of {', '.join(map(repr, PICKS))} or a rank k >= 1 (the k-th by score),"
                     f" got {short(pick)}", param=where)


def check_depth(depth, where: str = "depth") -> tuple[float, float]:
    """(near, far): fractions of the photo's relative depth, 0 <= near <= far <= 1."""
    if isinstance(depth, (str, bytes)) or not hasattr(depth, "__len__") or len(depth) != 2:
        raise InputError(f"expected (near, far), fractions of the depth in [0, 1], got {short(depth)}", param=where)
    near, far = _number(depth[0], where), _number(depth[1], where)
    if not 0.0 <= near <= far <= 1.0:
        raise InputError(f"expected 0 <= near <= far <= 1, got near={near:g}, far={far:g}", param=where)
    return near, far


def check_direction(direction, where: str = "direction") -> str:
    if direction not in DIRECTIONS:
        raise InputError(f"expected 'far' (the background changes most) or 'near', got {short(direction)}",
                         param=where)
    return direction


def check_gamma(gamma, where: str = "gamma") -> float:
    value = _number(gamma, where)
    if not 0.0 < value <= MAX_GAMMA or math.isnan(value):
        raise InputError(f"must lie in (0, {MAX_GAMMA:g}], got {value:g}", param=where)
    return value
