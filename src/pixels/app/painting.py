"""From the canvas to a float strength map and back, and the previews drawn from a map.

The canvas (`board`) holds the whole map being painted (the strength map, or one exemplar's own map)
as an 8-bit gray picture of the photo's size, and sends it with every event as a PNG data URL: a pixel's
strength is its level / 255, so 0 is exactly 0 (kept bit for bit) and 255 exactly 1. The studio also
keeps, for each map, a *base map* (what the map tools, undo and a new photo leave); the server sends it
to the canvas whenever it changes it, and reads the canvas's map back in its place (`board_strength`).
The maps the tools make (float) are sent as 8-bit levels: a strength above 0 never rounds to 0
(`map_image`).
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from pixels import InputError
from pixels.core.release import keep_mask
from pixels.core.settings import steps_run
from pixels.inputs import maps
from pixels.inputs.images import _LUMA as LUMA  # ITU-R 601, as Pillow's "L" conversion and pixels' map reader

TINT = (255, 40, 40)  # the colour of the map in the overlay preview (the canvas's own overlay uses it too)
RELEASED_TINT = (40, 230, 90)  # released pixels in the release preview
RELEASE_AT = (0.25, 0.5, 0.75)  # shares of the schedule the release preview shows
PANEL_WIDTH = 256  # pixels: preview panels are scaled to this width so small photos stay visible
PNG_URL = "data:image/png;base64,"
PHOTO_PNG_UP_TO = 4 * 1024 * 1024  # pixels: photos up to this size reach the canvas as PNG, larger ones as JPEG


def _url(picture: Image.Image, fmt: str, **options) -> str:
    out = io.BytesIO()
    picture.save(out, fmt, **options)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(out.getvalue()).decode('ascii')}"


def map_url(strength: np.ndarray) -> str:
    """The map as the canvas takes it: an 8-bit gray PNG data URL (`map_image`)."""
    return _url(map_image(strength), "PNG", compress_level=1)


def photo_url(photo: Image.Image) -> str:
    """The photo as the canvas shows it: PNG (exact) up to PHOTO_PNG_UP_TO pixels, JPEG above (the canvas only
    shows it; the edit uses the photo itself)."""
    rgb = photo.convert("RGB")
    if rgb.width * rgb.height <= PHOTO_PNG_UP_TO:
        return _url(rgb, "PNG", compress_level=1)
    return _url(rgb, "JPEG", quality=92)


def read_map_url(text: object, size: tuple[int, int], name: str = "canvas") -> np.ndarray:
    """The strength map (H, W) in [0, 1] of a PNG data URL from the canvas, which must be of `size` (W, H):
    level / 255, no resizing and no snapping (the canvas paints exact levels)."""
    width, height = size
    if not isinstance(text, str) or not text.startswith(PNG_URL):
        raise InputError(f"{name}: expected the map as a PNG data URL, got {str(text)[:40]!r}")
    if len(text) > 4 * (width * height * 4 + 65536) // 3 + len(PNG_URL) + 4:
        raise InputError(f"{name}: the map is larger than a {width}x{height} picture can be; paint again")
    try:
        data = base64.b64decode(text[len(PNG_URL):], validate=True)
        picture = Image.open(io.BytesIO(data))
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as error:
        raise InputError(f"{name}: the map could not be read ({type(error).__name__})") from None
    with picture:
        if picture.format != "PNG":
            raise InputError(f"{name}: expected a PNG map, got {picture.format}")
        if picture.size != (width, height):
            raise InputError(f"{name}: the painted map is {picture.width}x{picture.height} but the photo is"
                             f" {width}x{height}; paint again")
        try:
            gray = np.asarray(picture.convert("RGB"), np.float64) @ LUMA
        except (OSError, ValueError) as error:  # a truncated or corrupt PNG
            raise InputError(f"{name}: the map could not be read ({type(error).__name__})") from None
    return np.clip(np.round(gray) / 255.0, 0.0, 1.0)


def board_strength(value: dict | None, base: np.ndarray, serial: int | None = None, target: str | None = None
                   ) -> np.ndarray:
    """The map the canvas holds, or `base` where the canvas has nothing newer: no value or no map, or a value
    painted on a map the server has replaced since (`serial`, the number of the map it last sent, differs from
    the value's) or on another target's map."""
    if not isinstance(value, dict) or value.get("map") is None:
        return base
    if serial is not None and "serial" in value and value["serial"] != serial:
        return base  # painted on a map the server has replaced since: the newer map wins
    if target is not None and value.get("target", target) != target:
        return base
    height, width = base.shape
    return read_map_url(value["map"], (width, height))


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
    "board_strength", "map_image", "map_url", "overlay_preview", "photo_url", "read_map_url", "release_preview",
    "released", "schedule_steps", "soften",
]
