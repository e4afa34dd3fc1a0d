"""Region cropping: diffuse only a box around the edited area, then paste it back into the frame.

Pixels outside the box have strength 0, so they would be pasted back from the source anyway; cropping
saves the model calls on them. The box keeps a margin of context around the edit so the model sees
what surrounds it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import InputError
from .placement import check_box, region_box


def crop_around(
    edited: tuple[int, int, int, int], margin: int, size: tuple[int, int], multiple: int
) -> tuple[int, int, int, int]:
    """The (x, y, w, h) box around `edited` with `margin` pixels of context, inside the frame of `size`
    (W, H), grown to a multiple of `multiple` pixels per side where the frame allows (less padding)."""
    x, y, w, h = edited
    frame_w, frame_h = size
    box = []
    for start, length, limit in ((x, w, frame_w), (y, h, frame_h)):
        lo, hi = max(start - margin, 0), min(start + length + margin, limit)
        extra = -(hi - lo) % multiple
        grow_hi = min(extra, limit - hi)  # grow towards the far side first, then the near one
        hi += grow_hi
        lo = max(lo - (extra - grow_hi), 0)
        box.append((lo, hi))
    (x0, x1), (y0, y1) = box
    return x0, y0, x1 - x0, y1 - y0


def resize_map(strength: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a (H, W) float map to `size` (W, H), bilinearly, keeping float64 and exact 0 and 1 areas."""
    resized = np.asarray(Image.fromarray(strength.astype(np.float32), "F").resize(size, Image.BILINEAR), np.float64)
    resized[resized > 1.0 - 1e-6] = 1.0  # float32 interpolation of an all-1 area may land just below 1
    resized[resized < 1e-6] = 0.0
    return resized


def crop_box(crop: str | tuple[int, int, int, int] | None, margin: int, strength: np.ndarray, multiple: int,
             max_pixels: int) -> tuple[int, int, int, int] | None:
    """The (x, y, w, h) area to diffuse for the `crop` setting, or None for the whole frame.

    "auto": the edited area (strength > 0) grown by `margin` and to a multiple of `multiple` pixels; a
    box: clipped to the frame, and refused if edited pixels lie outside it."""
    if crop is None:
        return None
    size = (strength.shape[1], strength.shape[0])
    if crop == "auto":
        edited = region_box(strength)
        if edited is None:
            return None  # nothing is edited: the full frame is as cheap as any crop
        return crop_around(edited, margin, size, multiple)
    x, y, w, h = check_box(crop, "crop", size, max_pixels)
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, size[0]), min(y + h, size[1])
    if strength[:y0].any() or strength[y1:].any() or strength[:, :x0].any() or strength[:, x1:].any():
        raise InputError(f"{tuple(crop)!r} cuts through the edited area; give a larger box", param="crop")
    return x0, y0, x1 - x0, y1 - y0


def crop_scale(resize: int | str | None, box: tuple[int, int, int, int], multiple: int, native: int,
               max_pixels: int) -> tuple[int, int] | None:
    """(W, H) a crop is resized to before diffusing (`resize` = its longer side, or "native": the model's
    training size `native`), or None to diffuse it at its own size."""
    if resize is None:
        return None
    longest = native if resize == "native" else resize
    w, h = box[2], box[3]
    scale = longest / max(w, h)
    scaled = tuple(max(multiple, round(side * scale / multiple) * multiple) for side in (w, h))
    if scaled[0] * scaled[1] > max_pixels:
        raise InputError(f"{resize!r} makes the {w}x{h} crop {scaled[0]}x{scaled[1]}, more than the limit of"
                         f" {max_pixels:,} pixels", param="crop_resize")
    return scaled


def encode_region(strength: np.ndarray, frame: tuple[int, int], factor: int, margin: int
                  ) -> tuple[int, int, int, int] | None:
    """The box of a padded frame (H, W) worth encoding for an exemplar whose map is `strength`: its edited
    area with `margin` pixels of context, on the latent grid of `factor` pixels. None: the whole frame."""
    edited = region_box(strength)
    if edited is None:
        return None
    x, y, w, h = crop_around(edited, margin, (frame[1], frame[0]), 1)
    x0, y0, x1, y1 = x // factor * factor, y // factor * factor, -(-(x + w) // factor) * factor, \
        -(-(y + h) // factor) * factor
    return None if (x0, y0, x1, y1) == (0, 0, frame[1], frame[0]) else (x0, y0, x1 - x0, y1 - y0)
