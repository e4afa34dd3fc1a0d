"""Placing an exemplar on the source's canvas: into a box, or into the bounding box of its map's region.

The result is a source-sized picture where the placed exemplar covers its box and the source fills
everything else, plus the mask of the pixels the exemplar covers (times its alpha, if it has one).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import InputError, short
from ..limits import MAX_PIXELS

FITS = ("cover", "contain", "stretch")


def check_box(box, name: str, size: tuple[int, int], max_pixels: int = MAX_PIXELS) -> tuple[int, int, int, int]:
    """A validated (x, y, w, h) box of integers that overlaps the source of `size` (W, H), of at most
    `max_pixels` pixels (a box may stick out of the source, but what is drawn into it is allocated)."""
    try:
        if isinstance(box, (str, bytes)) or len(box) != 4:
            raise ValueError
        x, y, w, h = (int(v) for v in box)
        if any(isinstance(v, bool) or int(v) != v for v in box):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"expected (x, y, w, h) integers, got {short(box)}", param=name) from None
    if w < 1 or h < 1:
        raise InputError(f"width and height must be >= 1, got {box!r}", param=name)
    if w * h > max_pixels:
        raise InputError(f"{w}x{h} is {w * h:,} pixels, more than the limit of {max_pixels:,}", param=name)
    width, height = size
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise InputError(f"{box!r} lies entirely outside the {width}x{height} source", param=name)
    return x, y, w, h


def region_box(strength: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x, y, w, h) of the pixels with strength > 0, or None if there are none."""
    ys, xs = np.nonzero(strength > 0)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _fitted(picture: Image.Image, alpha: np.ndarray | None, w: int, h: int, fit: str):
    """The exemplar resized for a w x h box: (picture, alpha, offset of its top-left corner in the box)."""
    mask = Image.fromarray((np.ones(picture.size[::-1]) if alpha is None else alpha).astype(np.float32), "F")
    pw, ph = picture.size
    if fit == "stretch":
        size, offset, crop = (w, h), (0, 0), None
    else:
        scale = max(w / pw, h / ph) if fit == "cover" else min(w / pw, h / ph)
        size = (max(1, round(pw * scale)), max(1, round(ph * scale)))
        if fit == "cover":  # fill the box, centred, cropping what sticks out
            left, top = (size[0] - w) // 2, (size[1] - h) // 2
            offset, crop = (0, 0), (left, top, left + w, top + h)
        else:  # all of the exemplar inside the box, centred; the rest of the box stays source
            offset, crop = ((w - size[0]) // 2, (h - size[1]) // 2), None
    picture = picture.resize(size, Image.LANCZOS)
    mask = mask.resize(size, Image.BILINEAR)
    if crop is not None:
        picture, mask = picture.crop(crop), mask.crop(crop)
    return picture, np.clip(np.asarray(mask, np.float64), 0.0, 1.0), offset


def place(
    source: Image.Image,
    picture: Image.Image,
    alpha: np.ndarray | None,
    box: tuple[int, int, int, int],
    fit: str,
) -> tuple[Image.Image, np.ndarray]:
    """Put `picture` into `box` = (x, y, w, h) of a copy of `source` with the given fit.

    Returns (canvas, coverage): coverage (H, W) in [0, 1] is where the exemplar landed, times its alpha.
    Where its alpha is partial the canvas mixes exemplar and source by alpha.
    """
    if fit not in FITS:
        raise InputError(f"unknown fit {fit!r}; choose one of {', '.join(FITS)}", param="fit")
    x, y, w, h = box
    fitted, mask, (ox, oy) = _fitted(picture, alpha, w, h, fit)
    width, height = source.size
    cover = np.zeros((height, width))
    layer = np.zeros((height, width, 3))
    # Clip the placed rectangle to the canvas.
    x0, y0 = x + ox, y + oy
    fx0, fy0 = max(0, -x0), max(0, -y0)
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(width, x0 + fitted.width), min(height, y0 + fitted.height)
    if cx1 <= cx0 or cy1 <= cy0:
        raise InputError(f"{box!r} places nothing inside the {width}x{height} source", param="box")
    span = (slice(cy0, cy1), slice(cx0, cx1))
    inner = (slice(fy0, fy0 + cy1 - cy0), slice(fx0, fx0 + cx1 - cx0))
    cover[span] = mask[inner]
    layer[span] = np.asarray(fitted, np.float64)[inner]
    base = np.asarray(source, np.float64)
    canvas = base * (1 - cover[..., None]) + layer * cover[..., None]
    return Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8)), cover
