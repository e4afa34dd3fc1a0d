"""Contact sheets: source | map overlay | exemplars | result, with the settings printed underneath."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..inputs.images import load_image
from ..inputs.maps import overlay

TILE = 256
GAP = 8
LINE = 14


def _fit(image: Image.Image) -> Image.Image:
    scale = TILE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.convert("RGB").resize(size, Image.NEAREST if scale >= 2 else Image.LANCZOS)


def contact_sheet(tiles: Sequence[tuple[str, Image.Image]], caption: str = "") -> Image.Image:
    """Tiles side by side, each scaled to TILE pixels on its long side and titled, with a caption below."""
    fitted = [(title, _fit(image)) for title, image in tiles]
    height = max(image.height for _, image in fitted)
    lines = [wrapped for line in caption.splitlines() for wrapped in textwrap.wrap(line, 30 * len(fitted)) or [""]]
    width = len(fitted) * TILE + (len(fitted) + 1) * GAP
    sheet = Image.new("RGB", (width, GAP + LINE + height + GAP + LINE * len(lines) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    for k, (title, image) in enumerate(fitted):
        x = GAP + k * (TILE + GAP)
        draw.text((x, GAP - 2), title, fill="black")
        sheet.paste(image, (x, GAP + LINE))
    for k, line in enumerate(lines):
        draw.text((GAP, GAP + LINE + height + GAP + k * LINE), line, fill=(40, 40, 40))
    return sheet


def edit_sheet(source, strength: np.ndarray, exemplars: Sequence, result: Image.Image, metadata: dict) -> Image.Image:
    """The standard sheet of one edit."""
    picture, _ = load_image(source, name="source")
    tiles = [("source", picture), ("map", overlay(picture, strength))]
    tiles += [(f"exemplar {k + 1}", load_image(e, name=f"exemplars[{k}]")[0]) for k, e in enumerate(exemplars)]
    tiles.append(("result", result))
    return contact_sheet(tiles, caption(metadata))


CAPTION_KEYS = ("model", "scheduler_class", "num_inference_steps", "strength", "denoising_start", "guidance_scale",
                "seed", "mode", "prompt")


def caption(metadata: dict) -> str:
    """The settings line of a sheet: what reproduces the edit at a glance (unset ones left out)."""
    return "  ".join(f"{k}={metadata[k]!r}" for k in CAPTION_KEYS if metadata.get(k) not in ("", None))
