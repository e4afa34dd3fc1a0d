"""Region cropping: diffuse only a box around the edited area, then paste it back into the frame.

Pixels outside the box have strength 0, so they would be pasted back from the source anyway; cropping
saves the model calls on them. The box keeps a margin of context around the edit so the model sees
what surrounds it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


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
