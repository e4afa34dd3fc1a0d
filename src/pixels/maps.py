"""Making strength maps: float64 (H, W) arrays in [0, 1], white = full edit, black = keep."""

from __future__ import annotations

import numpy as np

from .errors import InputError


def _grid(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    width, height = size
    if width < 1 or height < 1:
        raise InputError(f"size: expected (width, height) >= 1, got {size!r}")
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return x + 0.5, y + 0.5  # pixel centres


def radial(size: tuple[int, int], center: tuple[float, float], inner: float, outer: float) -> np.ndarray:
    """1 inside radius `inner` around `center` (x, y), falling linearly to 0 at radius `outer`."""
    if not 0 <= inner <= outer or outer <= 0:
        raise InputError(f"radial: expected 0 <= inner <= outer and outer > 0, got inner={inner}, outer={outer}")
    x, y = _grid(size)
    r = np.hypot(x - center[0], y - center[1])
    if outer == inner:
        return (r <= inner).astype(np.float64)
    return np.clip((outer - r) / (outer - inner), 0.0, 1.0)


def linear(size: tuple[int, int], start: tuple[float, float], end: tuple[float, float]) -> np.ndarray:
    """0 at point `start`, rising linearly to 1 at point `end` (constant beyond both)."""
    (x0, y0), (x1, y1) = start, end
    length2 = (x1 - x0) ** 2 + (y1 - y0) ** 2
    if length2 == 0:
        raise InputError(f"linear: start and end must differ, got {start!r}")
    x, y = _grid(size)
    return np.clip(((x - x0) * (x1 - x0) + (y - y0) * (y1 - y0)) / length2, 0.0, 1.0)


def box(size: tuple[int, int], rect: tuple[int, int, int, int], value: float = 1.0) -> np.ndarray:
    """`value` inside rect = (x, y, w, h), 0 elsewhere."""
    if not 0.0 <= value <= 1.0:
        raise InputError(f"box: value must lie in [0, 1], got {value}")
    width, height = size
    if width < 1 or height < 1:
        raise InputError(f"size: expected (width, height) >= 1, got {size!r}")
    out = np.zeros((height, width))
    x, y, w, h = rect
    out[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = value
    return out


def to_image(strength: np.ndarray):
    """A map as an 8-bit grayscale PIL image (white = full edit)."""
    from PIL import Image

    return Image.fromarray((np.clip(strength, 0, 1) * 255).round().astype(np.uint8), "L")
