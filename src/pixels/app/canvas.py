"""The canvas and its maps, as plain functions: what is painted where, the map tools, the previews.

Each browser session keeps a *base map* per paint target (the strength map and one per exemplar): the
map tools write into it, and the canvas (`board`) is sent it whenever the server changes it. The canvas
paints on its own copy and sends it back with every event; it is folded into the base map ("baked")
whenever the server is about to replace the canvas, so nothing painted is lost (see `painting`).
"""

from __future__ import annotations

import base64
import functools
import io
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pixels import InputError, Region
from pixels.core import placement
from pixels.inputs import maps
from pixels.inputs.images import load_image, load_map
from pixels.inputs.read import lora_scales_text

from .context import Context
from .exemplars import MAX_SLOTS, Slot, placement_preview, to_exemplar, used_box
from .painting import board_strength, map_url, overlay_preview, photo_url, release_preview, schedule_steps, soften
from .state import REGION_TARGETS, TARGETS, History, StudioSession

SHAPES = ("box", "ellipse", "radial", "linear")
SHAPE_FIELDS = {  # the labels of the four number fields for each shape
    "box": ("x", "y", "width", "height"),
    "ellipse": ("centre x", "centre y", "radius x", "radius y"),
    "radial": ("centre x", "centre y", "inner radius (100 %)", "outer radius (0 %)"),
    "linear": ("x at 0 %", "y at 0 %", "x at 100 %", "y at 100 %"),
}
COMBINE = ("add", "replace", "subtract", "intersect", "multiply")  # how a tool's map meets the painted one


# -- helpers ----------------------------------------------------------------------------------------
def require(st: StudioSession | None) -> StudioSession:
    """The session, or an error the page can show: an event may arrive before the page's load made the
    session, or after its tab closed."""
    if st is None:
        raise InputError("session: the page has not finished loading; try again in a moment")
    if st.closed:
        raise InputError("session: this browser session has ended; reload the page")
    return st


def require_photo(st: StudioSession | None) -> History:
    """The session's history; most tools need a photo first."""
    history = require(st).history
    if history is None:
        raise InputError("source: choose a photo first (upload, paste, or pick a sample)")
    return history


def canvas_value(st: StudioSession) -> dict:
    """The canvas for the current target: the photo the next edit starts from, the target's map and the
    exemplar boxes, under a new serial number (a canvas value painted before it is stale)."""
    history = require_photo(st)
    st.serial += 1
    photo = history.source.image
    return {"photo": photo_url(photo), "photo_key": f"{id(photo):x}-{photo.width}x{photo.height}",
            "map": map_url(st.bases[st.target]), "width": photo.width, "height": photo.height, "serial": st.serial,
            "target": st.target, "boxes": list(st.boxes)}


def boxes_value(st: StudioSession) -> dict:
    """A canvas update of the exemplar boxes alone: the canvas keeps its photo and the map painted on it."""
    return {"photo": None, "map": None, "serial": st.serial, "target": st.target, "boxes": list(st.boxes)}


def current_map(st: StudioSession, canvas: dict | None) -> np.ndarray:
    """The current target's map as painted: the canvas's map, unless the server has replaced it since."""
    return board_strength(canvas, st.bases[st.target], st.serial, st.target)


def bake(st: StudioSession, canvas: dict | None) -> None:
    """Fold the canvas's map into the current target's base map (before the canvas is replaced)."""
    st.bases[st.target] = current_map(st, canvas)


def painted(st: StudioSession, canvas: dict | None, softness: float) -> dict[str, np.ndarray]:
    """Every target's map as the edit will use it: the base maps, the current one as painted, softened."""
    current = dict(st.bases)
    current[st.target] = current_map(st, canvas)
    return {target: soften(m, float(softness)) for target, m in current.items()}


def empty_maps(size: tuple[int, int]) -> dict[str, np.ndarray]:
    """A fresh base map per target for a photo of `size` (W, H): nothing painted, every pixel kept."""
    width, height = size
    return {target: np.zeros((height, width)) for target in TARGETS}


# -- painting and map tools ------------------------------------------------------------------------------
def switch_target(st: StudioSession | None, canvas: dict | None, target: str) -> dict:
    """Paint another map: the strokes so far are kept in the current map, and the canvas shows the new one."""
    st = require(st)
    if target not in TARGETS:
        raise InputError(f"paint on: expected one of {', '.join(TARGETS)}, got {target!r}")
    with st.busy("paint on"):
        require_photo(st)
        bake(st, canvas)
        st.target = target
        return canvas_value(st)


def shape_map(shape: str, size: tuple[int, int], numbers: tuple[float, float, float, float], percent: float
              ) -> np.ndarray:
    """A map tool's map (`pixels.inputs.maps`): `numbers` as SHAPE_FIELDS names them, at `percent` strength."""
    if shape not in SHAPES:
        raise InputError(f"tool: expected one of {', '.join(SHAPES)}, got {shape!r}")
    if any(v is None for v in numbers):
        raise InputError(f"{shape}: fill in {', '.join(SHAPE_FIELDS[shape])}")
    if not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
        raise InputError(f"{shape}: strength must lie in [0, 100] %, got {percent!r}")
    a, b, c, d = (float(v) for v in numbers)
    value = float(percent) / 100
    if shape == "box":
        if not all(v == round(v) for v in (a, b, c, d)):
            raise InputError(f"box: expected whole numbers of pixels, got {numbers!r}")
        if c < 1 or d < 1:
            raise InputError(f"box: width and height must be at least 1 pixel, got {c:g} x {d:g}")
        return maps.box(size, (int(a), int(b), int(c), int(d)), value)
    if shape == "ellipse":
        return maps.ellipse(size, (a, b), (c, d), value)
    if shape == "radial":
        return maps.radial(size, (a, b), c, d) * value
    return maps.linear(size, (a, b), (c, d)) * value


def shape_defaults(shape: str, size: tuple[int, int] | None) -> tuple[float, float, float, float]:
    """Starting values for a shape on a photo of `size` (W, H): centred, a quarter of the photo."""
    width, height = size or (256, 256)
    if shape == "box":
        return width // 4, height // 4, width // 2, height // 2
    if shape == "ellipse":
        return width / 2, height / 2, width / 4, height / 4
    if shape == "radial":
        return width / 2, height / 2, min(width, height) / 8, min(width, height) / 3
    return 0, height / 2, width, height / 2


def _combined(base: np.ndarray, tool: np.ndarray, how: str) -> np.ndarray:
    if how == "add":
        return maps.combine([base, tool], "max")
    if how == "replace":
        return tool
    if how == "subtract":
        return maps.combine([base, maps.invert(tool)], "min")
    if how == "intersect":
        return maps.combine([base, tool], "min")
    if how == "multiply":
        return maps.combine([base, tool], "multiply")
    raise InputError(f"combine: expected one of {', '.join(COMBINE)}, got {how!r}")


def combine_into(st: StudioSession, tool: np.ndarray, how: str) -> None:
    """Combine a tool's map into the map being painted; "replace" also drops the selections recorded for it."""
    st.bases[st.target] = _combined(st.bases[st.target], tool, how)
    if how == "replace":
        st.selections.pop(st.target, None)


def apply_shape(st: StudioSession | None, canvas: dict | None, shape: str,
                numbers: tuple[float, float, float, float], percent: float, how: str) -> dict:
    """Add (or replace, subtract, ...) a box, ellipse, radial or linear gradient on the current map."""
    st = require(st)
    with st.busy("tool"):
        history = require_photo(st)
        tool = shape_map(shape, history.source.image.size, numbers, percent)
        bake(st, canvas)
        combine_into(st, tool, how)
        return canvas_value(st)


def load_map_file(ctx: Context, st: StudioSession | None, canvas: dict | None, path: str | None, how: str) -> dict:
    """A map PNG (white = edit) combined into the current map; read as pixels reads maps (resized to the
    photo, alpha multiplied, 8-bit levels within 4/255 of black or white snapped)."""
    st = require(st)
    if path is None:
        raise InputError("map file: no file given")
    with st.busy("map file"):
        history = require_photo(st)
        loaded, _ = load_map(path, name="map file", size=history.source.image.size, max_pixels=ctx.max_pixels)
        bake(st, canvas)
        combine_into(st, loaded, how)
        return canvas_value(st)


def feather_map(st: StudioSession | None, canvas: dict | None, radius: float) -> dict:
    """Soften the current map's edges over `radius` pixels, inside the painted area only."""
    st = require(st)
    if not isinstance(radius, (int, float)) or not 0 <= radius <= 8192:
        raise InputError(f"feather radius: expected a number of pixels in [0, 8192], got {radius!r}")
    with st.busy("feather"):
        require_photo(st)
        bake(st, canvas)
        st.bases[st.target] = maps.feather(st.bases[st.target], float(radius))
        return canvas_value(st)


def invert_map(st: StudioSession | None, canvas: dict | None) -> dict:
    """Swap the edited and kept sides of the current map (strokes included)."""
    st = require(st)
    with st.busy("invert"):
        require_photo(st)
        bake(st, canvas)
        st.bases[st.target] = maps.invert(st.bases[st.target])
        return canvas_value(st)


def clear_map(st: StudioSession | None) -> dict:
    """Empty the current map: strokes and tool shapes (every pixel kept)."""
    st = require(st)
    with st.busy("clear"):
        history = require_photo(st)
        width, height = history.source.image.size
        st.bases[st.target] = np.zeros((height, width))
        st.selections.pop(st.target, None)
        return canvas_value(st)


# -- what the edit will use -----------------------------------------------------------------------------
def edit_inputs(ctx: Context, st: StudioSession, canvas: dict | None, softness: float, slots: list[Slot],
                texts: list[tuple[Any, ...]] | None = None) -> tuple[list, np.ndarray | None, list[Region]]:
    """(exemplars, strength_map, regions) for `EditSession.apply`, from the painted maps, the exemplar slots and
    the prompt-only regions' fields ((prompt, negative prompt, LoRA scales) per region target, see
    `region_inputs`)."""
    history = require_photo(st)
    if len(slots) > MAX_SLOTS:
        raise InputError(f"exemplars: at most {MAX_SLOTS}, got {len(slots)}")
    current = painted(st, canvas, softness)
    regions = region_inputs(current, texts)
    strength = current["strength"]
    size = history.source.image.size
    exemplars = [to_exemplar(slot, k, size, strength, current[f"exemplar {k + 1}"], ctx.max_pixels)
                 for k, slot in enumerate(slots) if slot.image is not None]
    strength_map = strength if strength.any() else None
    if strength_map is None and not exemplars and not any(current[t].any() for t in REGION_TARGETS):
        raise InputError("strength map: nothing is painted; paint where to edit (white = full edit), or use a map"
                         " tool")
    return exemplars, strength_map, regions


def region_inputs(current: dict[str, np.ndarray], texts: list[tuple[Any, ...]] | None) -> list[Region]:
    """The painted prompt-only regions (`current`: the maps as `painted` gives them) with their fields ((prompt,
    negative prompt[, LoRA scales as "style:0.8, every"]) per region target): a region with a prompt or LoRA
    scales must be painted and a painted one must have one, so that neither is silently left out."""
    texts = list(texts or [])
    if len(texts) > len(REGION_TARGETS):
        raise InputError(f"regions: at most {len(REGION_TARGETS)}, got {len(texts)}")
    regions = []
    for k, fields in enumerate(texts):
        name, target = f"region {k + 1}", REGION_TARGETS[k]
        prompt, negative, loras = (str(v).strip() if v is not None else "" for v in (*fields, "")[:3])
        scales = lora_scales_text(loras, f"{name}.loras")
        drawn = bool(current[target].any())
        if not prompt and not negative and not scales:
            if drawn:
                raise InputError(f"{name}: its map is painted but it has no prompt; give it one, or clear its map")
            continue
        if not drawn:
            raise InputError(f"{name}: it has a prompt{' or LoRA scales' if scales else ''} but nothing is painted"
                             f" on '{name.capitalize()}'; paint where it applies")
        regions.append(Region(current[target], prompt or None, negative or None, scales or None))
    return regions


def painted_selections(st: StudioSession, slots: list[Slot]) -> dict[str, list[dict]]:
    """The records of the selections combined into the maps an edit uses ({map: [record, ...]}), before any
    painting on top; for the edit's metadata (the maps themselves are what the edit reads)."""
    used = ["strength"] + [f"exemplar {k + 1}" for k, slot in enumerate(slots)
                           if slot.image is not None and slot.region == "own map"] + list(REGION_TARGETS)
    return {name: list(st.selections[name]) for name in used if st.selections.get(name)}


def used_map(ctx: Context, st: StudioSession, canvas: dict | None, softness: float, slots: list[Slot]
             ) -> np.ndarray:
    """The combined map the edit will apply, as far as it is painted: the largest strength of the strength
    map and of the own maps of the exemplars that use one (regions from an alpha channel or a box are
    known only once the library places the exemplar, so the preview leaves them out)."""
    return _used(painted(st, canvas, softness), slots)


def _used(current: dict[str, np.ndarray], slots: list[Slot]) -> np.ndarray:
    """`used_map` from the painted maps (`painted`)."""
    used = [current["strength"], *(current[t] for t in REGION_TARGETS)]  # a painted region is edited too
    used += [current[f"exemplar {k + 1}"] for k, slot in enumerate(slots)
             if slot.image is not None and slot.region == "own map"]
    return np.maximum.reduce(used) if len(used) > 1 else used[0]


@dataclass
class Preview:
    """What the map preview shows: the map on the photo, the release schedule, and a line of figures."""

    overlay: Image.Image | None
    release: Image.Image | None
    summary: str  # markdown: how much of the photo is edited and grafted, and how many steps run


def _shown(st: StudioSession | None) -> bool:
    """Whether the session has a photo to preview on (previews show nothing otherwise, and never nag)."""
    return st is not None and not st.closed and st.history is not None


def previews(ctx: Context, st: StudioSession | None, canvas: dict | None, softness: float, slots: list[Slot],
             steps: Any, strength: Any) -> tuple[Preview, list[Image.Image | None]]:
    """The map preview (`preview`) and where each exemplar goes (`slot_preview`), from the painted maps
    computed once; the exemplar boxes the canvas shows (`boxes_of`) are kept in the session."""
    if not _shown(st):
        return Preview(None, None, ""), [None] * len(slots)
    current = painted(st, canvas, softness)
    st.boxes = boxes_of(ctx, st, current, slots)
    return (_map_preview(st, current, slots, steps, strength),
            [_slot_preview(ctx, st, current, slot, k) for k, slot in enumerate(slots)])


def boxes_of(ctx: Context, st: StudioSession, current: dict[str, np.ndarray], slots: list[Slot]) -> list[dict]:
    """The box each exemplar will be placed in, as the canvas draws it: {"slot": k (1-based), "box": [x, y, w,
    h], "label", "placed": whether it is the slot's own box (else the one its placement rule gives)}."""
    out = []
    for k, slot in enumerate(slots):
        region = current["strength"] if slot.region != "own map" else current[f"exemplar {k + 1}"]
        try:
            used = used_box(st.history.source.image, slot, region, ctx.max_pixels)
        except InputError:
            used = None  # fields being typed, an unreadable picture: Run says what is wrong
        if used is not None:
            (x, y, w, h), _ = used
            entry = {"slot": k + 1, "box": [x, y, w, h], "label": f"exemplar {k + 1}: {x}, {y}, {w}x{h}",
                     "placed": slot.placement == "box"}
            try:
                entry["image"], entry["inner"] = _thumbnail(str(slot.image), os.stat(slot.image).st_mtime_ns, (w, h),
                                                            slot.fit, ctx.max_pixels)
            except (OSError, InputError):
                pass  # the outline alone
            out.append(entry)
    return out


@functools.lru_cache(maxsize=32)
def _thumbnail(path: str, stamp: int, size: tuple[int, int], fit: str, max_pixels: int) -> tuple[str, list[int]]:
    """The exemplar as it will be fitted into a box of `size`, small, for the canvas to draw inside the box:
    (a JPEG data URL, [x, y, w, h] of the fitted picture inside the box). `stamp`: the file's modification time,
    so that a changed file is not served from the cache."""
    picture, _ = load_image(path, name="exemplar", max_pixels=max_pixels)
    fitted, _, (ox, oy) = placement._fitted(picture, None, size[0], size[1], fit)
    inner = [ox, oy, fitted.width, fitted.height]
    fitted = fitted.convert("RGB")
    fitted.thumbnail((256, 256))
    out = io.BytesIO()
    fitted.save(out, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii"), inner


def preview(ctx: Context, st: StudioSession | None, canvas: dict | None, softness: float, slots: list[Slot],
            steps: Any, strength: Any) -> Preview:
    """The map overlay (with its legend), the release-schedule preview and their figures; nothing
    before a photo. Steps and strength as the fields hold them: unusable values skip the schedule."""
    if not _shown(st):
        return Preview(None, None, "")
    return _map_preview(st, painted(st, canvas, softness), slots, steps, strength)


def _map_preview(st: StudioSession, current: dict[str, np.ndarray], slots: list[Slot], steps: Any, strength: Any
                 ) -> Preview:
    """`preview` from the painted maps."""
    photo = st.history.source.image
    combined = _used(current, slots)
    summary = (f"**Map:** {float((combined > 0).mean()) * 100:.1f} % of the photo is edited,"
               f" {float((combined >= 1).mean()) * 100:.1f} % at 100 % (where exemplars are grafted).")
    release = None
    try:
        num_steps, share = int(steps), float(strength)
        if num_steps >= 1 and 0 < share <= 1:
            release = release_preview(photo, combined, num_steps, share)
            summary += f" {schedule_steps(num_steps, share)} of {num_steps} steps run."
    except (TypeError, ValueError):
        pass
    return Preview(overlay_preview(photo, combined), release, summary)


def slot_preview(ctx: Context, st: StudioSession | None, canvas: dict | None, softness: float, slot: Slot, k: int
                 ) -> Image.Image | None:
    """Where exemplar k will go, drawn on the photo; nothing while its fields cannot be placed yet (a box
    being typed, an unreadable image): Run reports what is wrong, a preview does not nag."""
    if not _shown(st):
        return None
    return _slot_preview(ctx, st, painted(st, canvas, softness), slot, k)


def _slot_preview(ctx: Context, st: StudioSession, current: dict[str, np.ndarray], slot: Slot, k: int
                  ) -> Image.Image | None:
    """`slot_preview` from the painted maps."""
    region = current["strength"] if slot.region != "own map" else current[f"exemplar {k + 1}"]
    try:
        return placement_preview(st.history.source.image, slot, region, ctx.max_pixels)
    except InputError:
        return None


def swap_slot_maps(st: StudioSession | None, canvas: dict | None, i: int, j: int) -> dict:
    """Exemplars i and j trade places (0-based): their own maps go with them."""
    st = require(st)
    with st.busy("reorder"):
        require_photo(st)
        bake(st, canvas)
        a, b = f"exemplar {i + 1}", f"exemplar {j + 1}"
        st.bases[a], st.bases[b] = st.bases[b], st.bases[a]
        st.selections[a], st.selections[b] = st.selections.get(b, []), st.selections.get(a, [])
        return canvas_value(st)


def clear_slot_map(st: StudioSession | None, canvas: dict | None, k: int) -> dict | None:
    """Exemplar k was removed: its own map goes too."""
    st = require(st)
    if st.history is None:
        return None
    with st.busy("remove"):
        bake(st, canvas)
        st.bases[f"exemplar {k + 1}"] = np.zeros_like(st.bases["strength"])
        st.selections.pop(f"exemplar {k + 1}", None)
        return canvas_value(st)


__all__ = [
    "COMBINE",
    "SHAPES",
    "SHAPE_FIELDS",
    "Preview",
    "apply_shape",
    "bake",
    "boxes_of",
    "combine_into",
    "boxes_value",
    "canvas_value",
    "clear_map",
    "clear_slot_map",
    "current_map",
    "edit_inputs",
    "empty_maps",
    "feather_map",
    "invert_map",
    "load_map_file",
    "painted",
    "painted_selections",
    "region_inputs",
    "preview",
    "previews",
    "require",
    "require_photo",
    "shape_defaults",
    "shape_map",
    "slot_preview",
    "swap_slot_maps",
    "switch_target",
    "used_map",
]
