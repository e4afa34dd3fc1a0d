"""From what is painted on the canvas to a float strength map, and the previews drawn from a map.

The canvas (Gradio's ImageEditor) has one paint layer over a background picture. The studio keeps,
for each map being painted (the strength map and one per exemplar), a *base map* built by the map
tools (box, ellipse, gradients, feather, invert, a loaded map PNG). The canvas background shows the
photo with that base map tinted on it, and the strokes lie over it. Reading the canvas:

    a = alpha / 255,  g = luma(R, G, B) / 255  (ITU-R 601 weights; R = G = B for the gray brushes)
    g is snapped to exactly 0 or 1 within 4/255 of them (as pixels reads 8-bit map files)
    strength = a * g + (1 - a) * base

so an opaque stroke sets the strength to its gray level (white 100 %, black 0 %), an erased or
unpainted pixel keeps the base map, and a partly transparent stroke mixes the two, as paint over a
gray picture of the base map would. A pixel nobody painted and no tool touched stays exactly 0,
which is what keeps it bit-exact in the result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from pixels import InputError
from pixels.core.release import keep_mask
from pixels.core.settings import steps_run
from pixels.inputs import maps
from pixels.inputs.images import _LUMA as LUMA  # ITU-R 601, as Pillow's "L" conversion and pixels' map reader
from pixels.inputs.images import MAP_SNAP  # gray levels this close to black or white count as exactly 0 or 1

TINT = (255, 40, 40)  # the colour the base map is shown in on the canvas and in the overlay
RELEASED_TINT = (40, 230, 90)  # released pixels in the release preview
RELEASE_AT = (0.25, 0.5, 0.75)  # shares of the schedule the release preview shows
PANEL_WIDTH = 256  # pixels: preview panels are scaled to this width so small photos stay visible


def stroke_strength(layer: np.ndarray, base: np.ndarray, name: str = "canvas") -> np.ndarray:
    """The strength map of one paint layer over `base`: a * g + (1 - a) * base (see the module docstring).

    layer: (H, W, 4) RGBA uint8 as the editor exports it ((H, W, 3) counts as opaque); base: (H, W) in
    [0, 1]. A layer of another size (a browser that exported it scaled) is resized to the base with
    nearest-neighbour sampling, so strokes keep their gray levels."""
    array = np.asarray(layer)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.dtype != np.uint8:
        raise InputError(f"{name}: expected an RGBA uint8 layer, got {array.dtype} {array.shape}")
    height, width = base.shape
    if array.shape[:2] != (height, width):
        mode = "RGBA" if array.shape[2] == 4 else "RGB"
        array = np.asarray(Image.fromarray(array, mode).resize((width, height), Image.NEAREST))
    gray = array[..., :3].astype(np.float64) @ LUMA / 255.0
    gray = np.where(gray <= MAP_SNAP, 0.0, np.where(gray >= 1.0 - MAP_SNAP, 1.0, gray))
    alpha = array[..., 3].astype(np.float64) / 255.0 if array.shape[2] == 4 else np.ones_like(gray)
    return np.clip(alpha * gray + (1.0 - alpha) * base, 0.0, 1.0)


def canvas_strength(value: dict | None, base: np.ndarray) -> np.ndarray:
    """The strength map of an ImageEditor value ({"background", "layers", "composite"}) over `base`:
    its layers applied bottom to top. No value or no layer: the base map itself."""
    strength = base
    for k, layer in enumerate((value or {}).get("layers") or []):
        if layer is not None:
            strength = stroke_strength(layer, strength, name=f"canvas layer {k + 1}")
    return strength


def soften(strength: np.ndarray, radius: float) -> np.ndarray:
    """Brush softness: the map's edges ramp up over `radius` pixels inside the painted area only
    (`pixels.inputs.maps.feather`), so pixels that were never painted stay exactly 0."""
    if not math.isfinite(radius) or radius < 0:
        raise InputError(f"softness: expected a number of pixels >= 0, got {radius!r}")
    return maps.feather(strength, radius) if radius > 0 and strength.any() else strength


def map_image(strength: np.ndarray) -> Image.Image:
    """The map as an 8-bit grayscale PNG-ready image, white = edit, where a pixel is black only if its
    strength is exactly 0 (a tiny strength is written as 1/255, not rounded away), so the file tells
    exactly which pixels were kept bit for bit."""
    levels = np.round(np.clip(strength, 0.0, 1.0) * 255)
    levels = np.where(strength > 0, np.maximum(levels, 1), 0)
    return Image.fromarray(levels.astype(np.uint8), "L")


def canvas_background(photo: Image.Image, base: np.ndarray) -> Image.Image:
    """What the canvas shows under the strokes: the photo with the base map tinted on it."""
    return maps.overlay(photo, base, colour=TINT) if base.any() else photo


def _scaled(picture: Image.Image) -> Image.Image:
    """A preview panel at PANEL_WIDTH wide (sharp pixels when enlarging small photos)."""
    height = max(1, round(picture.height * PANEL_WIDTH / picture.width))
    return picture.resize((PANEL_WIDTH, height), Image.NEAREST if picture.width < PANEL_WIDTH else Image.LANCZOS)


def _captioned(panels: Sequence[Image.Image], captions: Sequence[str], footer: Image.Image | None = None
               ) -> Image.Image:
    """Panels side by side, a caption under each, and an optional footer strip below them all."""
    gap, text = 8, 18
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    height = max(p.height for p in panels) + text + (footer.height + gap if footer is not None else 0)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    x = 0
    for panel, caption in zip(panels, captions):
        sheet.paste(panel, (x, 0))
        draw.text((x + 2, panel.height + 3), caption, fill="black")
        x += panel.width + gap
    if footer is not None:
        sheet.paste(footer, (0, height - footer.height))
    return sheet


def legend(width: int) -> Image.Image:
    """A gray ramp from black (0 %, kept) to white (100 %, full edit), labelled."""
    ramp = np.tile(np.linspace(0, 255, width).round().astype(np.uint8), (14, 1))
    strip = Image.new("RGB", (width, 30), "white")
    strip.paste(Image.fromarray(ramp, "L").convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(strip)
    draw.text((2, 16), "black 0 % = keep", fill="black")
    draw.text((width - 118, 16), "white 100 % = edit", fill="black")
    return strip


def overlay_preview(photo: Image.Image, strength: np.ndarray) -> Image.Image:
    """The map over the photo (red where edited, stronger = redder) beside the map itself, with a legend."""
    panels = [_scaled(maps.overlay(photo, strength, colour=TINT)), _scaled(map_image(strength).convert("RGB"))]
    edited = float((strength > 0).mean()) * 100
    grafted = float((strength >= 1).mean()) * 100
    captions = [f"edited {edited:.1f} % of the photo", f"map (white = edit), 100 %: {grafted:.1f} %"]
    return _captioned(panels, captions, legend(2 * PANEL_WIDTH + 8))


def schedule_steps(num_inference_steps: int, strength: float) -> int:
    """K, the number of denoising steps an edit runs (`pixels.core.settings.steps_run`; at least 1 here, where
    the edit itself refuses a schedule of no step)."""
    return max(1, steps_run(num_inference_steps, strength))


def released(strength: np.ndarray, step: int, num_steps: int) -> np.ndarray:
    """Pixels already released at step `step` of `num_steps`: the complement of the pin rule
    keep > step / K with keep = 1 - strength (`pixels.core.release.keep_mask`), at pixel resolution."""
    return ~keep_mask(1.0 - strength, step, num_steps)


def release_preview(photo: Image.Image, strength: np.ndarray, num_inference_steps: int, edit_strength: float
                    ) -> Image.Image:
    """Which pixels the model is free to change at 25, 50 and 75 % of the schedule: a pixel of
    strength s is released at step ceil((1 - s) K) of K. Released pixels are tinted green, pinned
    ones dimmed to gray. (Shown at pixel resolution; latent models apply the map at latent size.)"""
    num_steps = schedule_steps(num_inference_steps, edit_strength)
    base = np.asarray(photo.convert("RGB"), np.float64)
    dim = np.repeat((base @ LUMA)[..., None], 3, axis=2) * 0.35 + 40
    free_colour = base * 0.55 + np.array(RELEASED_TINT, np.float64) * 0.45
    panels, captions = [], []
    for share in RELEASE_AT:
        step = round(share * num_steps)
        free = released(strength, step, num_steps)
        panel = np.where(free[..., None], free_colour, dim)
        panels.append(_scaled(Image.fromarray(panel.round().astype(np.uint8))))
        captions.append(f"step {step} of {num_steps}: {float(free.mean()) * 100:.1f} % free (green)")
    return _captioned(panels, captions)


__all__ = [
    "canvas_background", "canvas_strength", "map_image", "overlay_preview", "release_preview", "released",
    "schedule_steps", "soften", "stroke_strength",
]
