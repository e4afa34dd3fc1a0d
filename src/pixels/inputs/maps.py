"""Making strength maps: float64 (H, W) arrays in [0, 1], white = full edit, black = keep."""

from __future__ import annotations

import numpy as np

from ..errors import InputError, short
from ..limits import MAX_PIXELS, finite

MAX_COORDINATE = 1e7  # pixels: points and radii far beyond any image (and far from float overflow)


def _grid(size: tuple[int, int], where: str = "size") -> tuple[np.ndarray, np.ndarray]:
    width, height = _size(size, where)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return x + 0.5, y + 0.5  # pixel centres


def radial(size: tuple[int, int], center: tuple[float, float], inner: float, outer: float) -> np.ndarray:
    """1 inside radius `inner` around `center` (x, y), falling linearly to 0 at radius `outer`."""
    cx, cy = _pair(center, "radial: center")
    inner, outer = _pair((inner, outer), "radial: inner, outer")
    if not 0 <= inner <= outer or outer <= 0:
        raise InputError(
            f"expected 0 <= inner <= outer and outer > 0, got inner={inner}, outer={outer}", param="radial"
        )
    x, y = _grid(size, "radial")
    r = np.hypot(x - cx, y - cy)
    if outer == inner:
        return (r <= inner).astype(np.float64)
    return np.clip((outer - r) / (outer - inner), 0.0, 1.0)


def linear(size: tuple[int, int], start: tuple[float, float], end: tuple[float, float]) -> np.ndarray:
    """0 at point `start`, rising linearly to 1 at point `end` (constant beyond both)."""
    (x0, y0), (x1, y1) = _pair(start, "linear: start"), _pair(end, "linear: end")
    length2 = (x1 - x0) ** 2 + (y1 - y0) ** 2
    if length2 == 0:
        raise InputError(f"start and end must differ, got {start!r}", param="linear")
    x, y = _grid(size, "linear")
    return np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / length2, 0.0, 1.0)


def box(size: tuple[int, int], rect: tuple[int, int, int, int], value: float = 1.0) -> np.ndarray:
    """`value` inside rect = (x, y, w, h), 0 elsewhere."""
    value = _unit(value, "box: value")
    width, height = _size(size, "box")
    try:
        x, y, w, h = (int(v) for v in rect)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"expected (x, y, w, h) integers, got {short(rect)}", param="box") from None
    out = np.zeros((height, width))
    out[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = value
    return out


def to_image(strength: np.ndarray):
    """A map as an 8-bit grayscale PIL image (white = full edit)."""
    from PIL import Image

    return Image.fromarray((np.clip(strength, 0, 1) * 255).round().astype(np.uint8), "L")


# --- validation helpers -------------------------------------------------------------------------


def _number(value, where: str) -> float:
    """`value` as a finite float, or an InputError naming `where`."""
    result = finite(value)
    if result is None:
        raise InputError(f"expected a finite number, got {short(value)}", param=where)
    return result


def _unit(value, where: str) -> float:
    """`value` as a float in [0, 1]."""
    value = _number(value, where)
    if not 0.0 <= value <= 1.0:
        function, _, name = where.partition(": ")  # "box: value": the function is the parameter named
        raise InputError(f"{name} must lie in [0, 1], got {value}", param=function)
    return value


def _pair(pair, where: str) -> tuple[float, float]:
    """A pair of finite numbers such as a point (x, y) or radii (rx, ry), within +-MAX_COORDINATE."""
    try:
        a, b = pair
    except (TypeError, ValueError):
        raise InputError(f"expected a pair of numbers, got {short(pair)}", param=where) from None
    a, b = _number(a, where), _number(b, where)
    if max(abs(a), abs(b)) > MAX_COORDINATE:
        raise InputError(f"expected numbers within +-{MAX_COORDINATE:g}, got {short(pair)}", param=where)
    return a, b


def _size(size, where: str) -> tuple[int, int]:
    """(width, height) as two integers >= 1."""
    try:
        width, height = size
    except (TypeError, ValueError):
        raise InputError(f"size: expected (width, height), got {short(size)}", param=where) from None
    for n in (width, height):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InputError(f"size: expected (width, height) integers >= 1, got {short(size)}", param=where)
    if int(width) * int(height) > MAX_PIXELS:
        raise InputError(f"size: {width}x{height} is more than the limit of {MAX_PIXELS:,} pixels", param=where)
    return int(width), int(height)


def _map(strength, where: str) -> np.ndarray:
    """`strength` as a float64 (H, W) array of finite values in [0, 1]."""
    try:
        m = np.asarray(strength, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"expected a numeric (H, W) array, got {type(strength).__name__}", param=where) from None
    if m.ndim != 2 or m.size == 0:
        raise InputError(f"expected a non-empty (H, W) array, got shape {m.shape}", param=where)
    if not np.all(np.isfinite(m)):
        raise InputError("map contains NaN or infinite values", param=where)
    if m.min() < 0.0 or m.max() > 1.0:
        raise InputError(f"map values must lie in [0, 1], got min {m.min():g}, max {m.max():g}", param=where)
    return m


# --- shapes --------------------------------------------------------------------------------------


def ellipse(
    size: tuple[int, int], center: tuple[float, float], radii: tuple[float, float], value: float = 1.0
) -> np.ndarray:
    """`value` at pixel centres inside the axis-aligned ellipse at `center` (x, y) with radii (rx, ry), 0 elsewhere."""
    size = _size(size, "ellipse")
    cx, cy = _pair(center, "ellipse: center")
    rx, ry = _pair(radii, "ellipse: radii")
    if rx <= 0 or ry <= 0:
        raise InputError(f"radii must be > 0, got {short(radii)}", param="ellipse")
    value = _unit(value, "ellipse: value")
    x, y = _grid(size)
    inside = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    return np.where(inside, value, 0.0)


def polygon(size: tuple[int, int], points, value: float = 1.0) -> np.ndarray:
    """`value` at pixel centres inside the polygon `points` [(x, y), ...] by the even-odd rule, 0 elsewhere.

    A ray is cast from each pixel centre towards +x and its edge crossings are counted; edges are
    half-open, so a centre exactly on a left/top edge is inside and one on a right/bottom edge is not
    (a rectangle with integer corners gives the same pixels as `box`).
    """
    size = _size(size, "polygon")
    try:
        vertices = [_pair(p, f"polygon: points[{k}]") for k, p in enumerate(points)]
    except TypeError:
        raise InputError(f"points: expected a list of (x, y) pairs, got {points!r}", param="polygon") from None
    if len(vertices) < 3:
        raise InputError(f"points: expected at least 3 points, got {len(vertices)}", param="polygon")
    value = _unit(value, "polygon: value")
    x, y = _grid(size)
    inside = np.zeros(x.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(vertices, vertices[1:] + vertices[:1]):
        if y0 == y1:
            continue  # horizontal edges never cross a horizontal ray under the half-open rule
        spans = (y0 > y) != (y1 > y)
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= spans & (x < x_cross)
    return np.where(inside, value, 0.0)


# --- operations on maps --------------------------------------------------------------------------


def _distance_to_zero(zero: np.ndarray, limit: int) -> np.ndarray:
    """Exact Euclidean distance from each pixel centre to the nearest True pixel; inf where none is within `limit`."""
    height, width = zero.shape
    rows = np.arange(height, dtype=np.float64)[:, None]
    above = np.maximum.accumulate(np.where(zero, rows, -np.inf), axis=0)
    below = np.minimum.accumulate(np.where(zero, rows, np.inf)[::-1], axis=0)[::-1]
    column2 = np.minimum(rows - above, below - rows) ** 2  # squared distance to the nearest zero in the column
    dist2 = column2.copy()
    for dx in range(1, min(limit, width - 1) + 1):  # nearest zero within `limit` lies at most `limit` columns away
        dist2[:, dx:] = np.minimum(dist2[:, dx:], column2[:, :-dx] + dx * dx)
        dist2[:, :-dx] = np.minimum(dist2[:, :-dx], column2[:, dx:] + dx * dx)
    return np.sqrt(dist2)


def feather(strength, radius: float) -> np.ndarray:
    """Soften the edited side's edges: out = strength * clip(d / radius, 0, 1), d = distance to the nearest 0 pixel.

    d is the exact Euclidean distance between pixel centres, so pixels of strength 0 stay exactly 0,
    no value increases, and pixels `radius` or more from every 0 pixel are unchanged. The image border
    is not an edge (there is no kept region beyond it). Cost O(H * W * radius).
    """
    m = _map(strength, "feather: strength")
    radius = _number(radius, "feather: radius")
    if radius < 0:
        raise InputError(f"radius must be >= 0, got {radius}", param="feather")
    zero = m == 0.0
    if radius == 0 or not zero.any():
        return m.copy()
    distance = _distance_to_zero(zero, int(np.floor(radius)))
    return m * np.clip(distance / radius, 0.0, 1.0)


def from_alpha(image) -> np.ndarray:
    """Strength from an image's alpha channel (PIL image or (H, W, 4) uint8 array): alpha / 255 as float64."""
    from PIL import Image

    if isinstance(image, Image.Image):
        if image.mode == "P" and "transparency" in image.info:
            image = image.convert("RGBA")
        if "A" not in image.getbands():
            raise InputError(f"image has no alpha channel (mode {image.mode!r})", param="from_alpha")
        return np.asarray(image.getchannel("A"), dtype=np.float64) / 255.0
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 4 or image.dtype != np.uint8:
            raise InputError(
                f"expected an (H, W, 4) uint8 array, got shape {image.shape} dtype {image.dtype}", param="from_alpha"
            )
        return image[..., 3].astype(np.float64) / 255.0
    raise InputError(f"expected a PIL image or a numpy array, got {type(image).__name__}", param="from_alpha")


_COMBINERS = {"max": np.maximum.reduce, "min": np.minimum.reduce, "multiply": np.multiply.reduce}


def combine(maps, how: str = "max") -> np.ndarray:
    """Several maps of one shape merged pixel by pixel: how = "max" (union), "min" (intersection) or "multiply"."""
    if not isinstance(how, str) or how not in _COMBINERS:
        raise InputError(f"how must be one of {', '.join(map(repr, _COMBINERS))}, got {short(how)}", param="combine")
    if isinstance(maps, np.ndarray) and maps.ndim == 2:
        raise InputError(
            f"maps: expected a sequence of (H, W) maps, got one array of shape {maps.shape}", param="combine"
        )
    try:
        arrays = [_map(m, f"combine: maps[{k}]") for k, m in enumerate(maps)]
    except TypeError:
        raise InputError(
            f"maps: expected a sequence of (H, W) maps, got {type(maps).__name__}", param="combine"
        ) from None
    if not arrays:
        raise InputError("maps: expected at least one map, got none", param="combine")
    shapes = [a.shape for a in arrays]
    if len(set(shapes)) > 1:
        raise InputError(f"all maps must have the same shape, got shapes {shapes}", param="combine")
    return _COMBINERS[how](arrays).astype(np.float64)


def invert(strength) -> np.ndarray:
    """1 - strength: the edited and kept sides swapped."""
    return 1.0 - _map(strength, "invert: strength")


def _is_colour(colour) -> bool:
    """Whether `colour` is three integers in [0, 255]."""
    try:
        channels = list(colour)
    except TypeError:
        return False
    integers = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in channels)
    return len(channels) == 3 and integers and all(0 <= c <= 255 for c in channels)


def overlay(source, strength, colour: tuple[int, int, int] = (255, 40, 40), opacity: float = 0.6):
    """A preview: the source as RGB with `colour` laid over it at alpha = opacity * strength (a PIL RGB image)."""
    from PIL import Image

    if not isinstance(source, Image.Image):
        raise InputError(f"source: expected a PIL image, got {type(source).__name__}", param="overlay")
    m = _map(strength, "overlay: strength")
    if m.shape != (source.height, source.width):
        raise InputError(
            f"strength has shape {m.shape}, expected (H, W) = {(source.height, source.width)} of the source",
            param="overlay",
        )
    if not _is_colour(colour):
        raise InputError(f"colour: expected three integers in [0, 255], got {colour!r}", param="overlay")
    opacity = _unit(opacity, "overlay: opacity")
    base = np.asarray(source.convert("RGB"), np.float64)
    alpha = opacity * m[..., None]
    mixed = base * (1 - alpha) + np.array(colour, np.float64) * alpha
    return Image.fromarray(mixed.round().astype(np.uint8))
