"""Exemplar slots: what the studio's exemplar tabs hold, turned into `pixels.Exemplar`s, and their previews.

Each slot has an image, a placement and a region:

- placement "auto": the library's rule: an exemplar of the source's size is aligned with it, one of
  another size is fitted into the bounding box of its region's edited area; "box": into (x, y, w, h)
  of the source with fit cover / contain / stretch;
- region "strength map": it is grafted where the painted strength map is white (100 %); "own map": its
  own painted map (paint on "Exemplar k" in the canvas); "alpha": its transparency; "box": the area
  its placed box covers.

A slot's cut-out (a phrase such as "the lamp", or a mapping of `pixels.select.Select` fields) is found on the
exemplar image, so that only that part of the picture is grafted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from pixels import Exemplar, InputError
from pixels.core import placement
from pixels.core.placement import FITS, region_box
from pixels.inputs.images import load_image
from pixels.inputs.read import lora_scales_text, nested
from pixels.select import Select

MAX_SLOTS = 4  # exemplar tabs in the studio; the library takes any number
PLACEMENTS = ("auto", "box")
REGIONS = ("strength map", "own map", "alpha", "box")


@dataclass(frozen=True)
class Slot:
    """One exemplar tab as the user left it."""

    image: str | None = None  # path of the uploaded picture; None: the slot is empty
    placement: str = "auto"  # "auto" (aligned, or fitted into its region) or "box"
    box: tuple[float, float, float, float] = (0, 0, 0, 0)  # (x, y, w, h) in source pixels, with placement "box"
    fit: str = "cover"  # how the picture fills its box
    region: str = "strength map"  # where it is grafted: see REGIONS
    condition: float = 0.0  # with an IP-Adapter: the weight its region is prompted with (0: none)
    cutout: str = ""  # a selection found on the exemplar image (a phrase or `{...}` fields); "": the whole picture
    prompt: str = ""  # its region's own text ("": the edit's prompt there)
    negative: str = ""  # its region's own negative text ("": the edit's)
    loras: str = ""  # its region's own LoRA scales, "style:0.8, every" ("": the edit's)


def check_box(box: Any, name: str) -> tuple[int, int, int, int]:
    """(x, y, w, h) as integers from the number fields (which give floats), w and h at least 1."""
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected x, y, w, h numbers, got {box!r}") from None
    if len(values) != 4 or not all(np.isfinite(values)) or any(v != round(v) for v in values):
        raise InputError(f"{name}: expected x, y, w, h whole numbers, got {box!r}")
    x, y, w, h = (int(v) for v in values)
    if w < 1 or h < 1:
        raise InputError(f"{name}: width and height must be at least 1, got {w}x{h}")
    return x, y, w, h


def to_exemplar(slot: Slot, k: int, source_size: tuple[int, int], strength: np.ndarray, own: np.ndarray,
                max_pixels: int) -> Exemplar:
    """The `Exemplar` for slot k (0-based) of a non-empty slot. `strength` and `own` are the painted
    strength map and this slot's own map, (H, W) in [0, 1]."""
    name = f"exemplar {k + 1}"
    if slot.image is None:
        raise InputError(f"{name}: no image")
    if slot.placement not in PLACEMENTS:
        raise InputError(f"{name}.placement: expected one of {', '.join(PLACEMENTS)}, got {slot.placement!r}")
    if slot.fit not in FITS:
        raise InputError(f"{name}.fit: expected one of {', '.join(FITS)}, got {slot.fit!r}")
    if slot.region not in REGIONS:
        raise InputError(f"{name}.region: expected one of {', '.join(REGIONS)}, got {slot.region!r}")
    picture, alpha = load_image(slot.image, name=name, max_pixels=max_pixels)
    box = check_box(slot.box, f"{name}.box") if slot.placement == "box" else None
    region: np.ndarray | None = None
    if slot.region in ("strength map", "own map"):
        region = strength if slot.region == "strength map" else own
        if not (region >= 1.0).any():
            where = "the strength map" if slot.region == "strength map" else f"the map of {name}"
            raise InputError(
                f"{name}.region: nothing is painted at 100 % (white) on {where}, so nothing would be grafted;"
                " paint its region white, or choose its alpha or its box as region"
            )
    elif slot.region == "alpha" and alpha is None:
        raise InputError(f"{name}.region: the image has no transparency; choose another region")
    elif slot.region == "box" and box is None:
        if picture.size != source_size:
            raise InputError(f"{name}.region: 'box' needs placement 'box' (or an image of the source's size)")
        box = (0, 0, *source_size)  # an aligned exemplar's box is the whole frame
    if slot.region == "alpha":
        rgba = np.dstack([np.asarray(picture), np.round(alpha * 255).astype(np.uint8)])
        image: Any = Image.fromarray(rgba, "RGBA")
    else:
        image = picture  # RGB: its alpha, if any, does not decide the region
    return Exemplar(image, strength_map=region, box=box, fit=slot.fit, condition=slot.condition,
                    cutout=cutout_of(slot.cutout, f"{name}.cutout"), prompt=slot.prompt.strip() or None,
                    negative_prompt=slot.negative.strip() or None,
                    loras=lora_scales_text(slot.loras, f"{name}.loras") or None)


def cutout_of(text: Any, name: str) -> Select | None:
    """The selection a slot's cut-out field describes, None when it is empty."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        return Select.from_text(text)
    except InputError as error:
        raise nested(error, name) from None


def default_box(source_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A box of half the source's sides, centred: where a new exemplar starts when placed by box."""
    width, height = source_size
    w, h = max(1, width // 2), max(1, height // 2)
    return (width - w) // 2, (height - h) // 2, w, h


def moved_box(box: tuple[int, int, int, int], centre: tuple[int, int]) -> tuple[int, int, int, int]:
    """The same box centred on a clicked point (x, y) of the placement preview."""
    _, _, w, h = box
    return int(centre[0] - w // 2), int(centre[1] - h // 2), w, h


def used_box(source: Image.Image, slot: Slot, region: np.ndarray | None, max_pixels: int
             ) -> tuple[tuple[int, int, int, int], Image.Image] | None:
    """The box (x, y, w, h) the edit will place the exemplar in, with its picture: its own box, the whole frame
    for a picture of the source's size, else the bounding box of its region's edited area (None while nothing
    is painted there). The library's own rules (`pixels.core.placement`)."""
    if slot.image is None:
        return None
    picture, _ = load_image(slot.image, name="exemplar", max_pixels=max_pixels)
    if slot.placement == "box":
        box = check_box(slot.box, "box")
    elif picture.size == source.size:
        box = (0, 0, *source.size)
    else:
        box = region_box(region) if region is not None else None
        if box is None:
            return None
    return placement.check_box(box, "exemplar box", source.size, max_pixels), picture


def placement_preview(source: Image.Image, slot: Slot, region: np.ndarray | None, max_pixels: int) -> Image.Image:
    """The source with the exemplar drawn where it will go (half transparent) and its box outlined.

    A preview only: the edit places the exemplar with the library's own placement (whose box rules and
    fits, `pixels.core.placement`, this reuses)."""
    canvas = source.convert("RGB").copy()
    used = used_box(source, slot, region, max_pixels)
    if used is None:
        return canvas
    (x, y, w, h), picture = used
    fitted, _, (ox, oy) = placement._fitted(picture, None, w, h, slot.fit)
    layer = canvas.copy()
    layer.paste(fitted, (x + ox, y + oy))
    preview = Image.blend(canvas, layer, 0.6)
    ImageDraw.Draw(preview).rectangle((x, y, x + w - 1, y + h - 1), outline=(255, 220, 0))
    return preview


__all__ = ["FITS", "MAX_SLOTS", "PLACEMENTS", "REGIONS", "Slot", "check_box", "cutout_of", "default_box", "moved_box",
           "placement_preview", "to_exemplar", "used_box"]
