"""Draw the strength-map convention figure used in the README (no model needed).

    python examples/map_convention.py docs/map_convention.png

Panels: a photo from scikit-image, a strength map (white = full edit, black = keep, gray = partial),
and the denoising step at which each pixel is released under the paper rule keep = 1 - strength,
pinned while keep > i/K.
"""

from __future__ import annotations

import math
import sys

import numpy as np
from PIL import Image, ImageDraw
from skimage import data

SIZE, STEPS, CAPTION = 256, 10, 40


def strength_map(size: int) -> np.ndarray:
    """A hard white disc (exemplar goes here) fading out radially to black (kept)."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    r = np.hypot(x - 0.62, y - 0.45)
    return np.clip(1.0 - (r - 0.16) / 0.22, 0.0, 1.0).astype(np.float32)


def release_step(strength: np.ndarray, steps: int) -> np.ndarray:
    """First step i at which keep = 1 - strength is no longer > i/K; `steps` means never released."""
    keep = 1.0 - strength
    return np.minimum(np.ceil(keep * steps - 1e-6), steps).astype(int)


def panel(image: Image.Image, caption: str) -> Image.Image:
    out = Image.new("RGB", (SIZE, SIZE + CAPTION), "white")
    out.paste(image.convert("RGB").resize((SIZE, SIZE)), (0, 0))
    draw = ImageDraw.Draw(out)
    for k, line in enumerate(caption.split("\n")):
        draw.text((6, SIZE + 4 + 16 * k), line, fill="black")
    return out


def main(path: str) -> None:
    photo = Image.fromarray(data.chelsea()).crop((100, 0, 400, 300)).resize((SIZE, SIZE), Image.LANCZOS)
    strength = strength_map(SIZE)
    steps = release_step(strength, STEPS)
    # Colour the release step: early release (strong edit) = bright, never released = dark blue.
    shade = (255 * (1 - steps / STEPS)).astype(np.uint8)
    release = np.stack([shade, shade, np.where(steps == STEPS, 110, shade)], -1).astype(np.uint8)
    panels = [
        panel(photo, "source"),
        panel(Image.fromarray((strength * 255).round().astype(np.uint8)),
              "strength map: white = full edit,\nblack = kept bit-exact, gray = partial"),
        panel(Image.fromarray(release),
              f"step at which a pixel is released\n(K = {STEPS}; bright = early, blue = never)"),
    ]
    sheet = Image.new("RGB", (len(panels) * SIZE + (len(panels) - 1) * 8, SIZE + CAPTION), "white")
    for k, p in enumerate(panels):
        sheet.paste(p, (k * (SIZE + 8), 0))
    sheet.save(path)
    print(f"wrote {path}: released after step {math.ceil(0.5 * STEPS)} where strength is 0.5")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "map_convention.png")
