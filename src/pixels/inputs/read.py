"""An edit's inputs, read once and placed on a source: every image and map decoded and checked before any
model work (all input errors surface here), then the exemplars placed on the source's canvas. A chain of
edits places the same read inputs on each new source; nothing is read twice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..core.control import Control
from ..core.frame import ImageLike, Inputs, RegionText
from ..core.placement import FITS, check_box, place, region_box
from ..core.settings import Exemplar, Region, check_text
from ..errors import InputError, short
from ..limits import LORA_SCALE, MAX_EXEMPLARS, MAX_LORAS, MAX_PIXELS, MAX_REGIONS, finite
from ..models.extensions import check_scale
from ..select import Select, resolve_selection
from .images import load_image, load_map

CANNY_THRESHOLDS = (100, 200)  # OpenCV's low and high hysteresis thresholds, as the ControlNet authors used
MAX_CONDITION = 5.0  # IP-Adapter scales in use lie within [0, 1.5]


def label(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
        return str(value)
    return f"<{type(value).__name__}>"


def nested(error: InputError, name: str) -> InputError:
    """`error` about a field of input `name`: its parameter prefixed with the input's (`strength_map.text`)."""
    return InputError(error.message, param=f"{name}.{error.param}" if error.param else name)


def select_on(select: Select, picture: Image.Image, name: str, records: dict[str, Any]) -> np.ndarray:
    """`select` found on `picture` by its model, as float64 (H, W) in [0, 1]; its record goes to `records[name]`
    for the metadata, and its errors name the input (`strength_map.points[0]`)."""
    try:
        selection = resolve_selection(select, picture)
    except InputError as error:
        raise nested(error, name) from None
    records[name] = selection.record
    return selection.strength.astype(np.float64)


def read_map(value: Any, name: str, image: Image.Image, invert: bool, max_pixels: int,
             records: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """A strength map given as an image, an array or a path, or as a `Select` found on `image` (the source) by
    its model (`select_on`); `invert` (how a map file is encoded) does not apply to a selection, which says
    `invert` itself."""
    if not isinstance(value, Select):
        return load_map(value, name=name, size=image.size, invert=invert, max_pixels=max_pixels)
    m, notes = load_map(select_on(value, image, name, records), name=name, size=image.size)
    return m, [*notes, f"{name}: selected ({value.text or 'clicks, boxes or depth'}), {(m > 0).mean():.0%} of the"
                       " photo"]


@dataclass(frozen=True)
class ReadExemplar:
    """One exemplar as read and checked, not yet placed."""

    picture: Image.Image  # 8-bit RGB
    alpha: np.ndarray | None  # (h, w) in [0, 1], or None when opaque
    strength_map: np.ndarray | None  # (H, W) at the source's size, inverted if asked; None: its alpha or box
    box: tuple[int, int, int, int] | None  # the checked box it goes into (None: aligned or fitted to its map)
    fit: str
    condition: float  # the weight its region is prompted with (0: none)
    prompt: Image.Image | None  # the image its region is prompted with (None when condition is 0)
    text: tuple = (None, None, ())  # its region's own prompt, negative prompt and LoRA scales (`region_text`)


@dataclass(frozen=True)
class ReadInputs:
    """Every image and map of one edit, read and checked; `place` puts them on a source."""

    source: Image.Image
    exemplars: tuple[ReadExemplar, ...]
    strength_map: np.ndarray | None  # the extra map, (H, W), inverted if asked
    labels: dict[str, Any]  # how each input was given (paths, or type names), for the metadata
    notes: tuple[str, ...]  # what reading converted (map sizes, transparency)
    regions: tuple[RegionText, ...] = ()  # each region's conditioning on its (H, W) map


def read_inputs(
    source: ImageLike,
    exemplars: Sequence[Exemplar] = (),
    strength_map: ImageLike | None = None,
    invert_map: bool = False,
    max_pixels: int = MAX_PIXELS,
    regions: Sequence[Region] = (),
) -> ReadInputs:
    """Read and check every image and map (no model needed): all input errors surface here."""
    image, _ = load_image(source, name="source", max_pixels=max_pixels)
    size = image.size
    notes: list[str] = []
    selected: dict[str, Any] = {}  # the record of each map given as a Select, by input name
    if isinstance(exemplars, Exemplar) or not isinstance(exemplars, Sequence):
        raise InputError(f"expected a list of Exemplar, got {type(exemplars).__name__}", param="exemplars")
    if len(exemplars) > MAX_EXEMPLARS:
        raise InputError(f"{len(exemplars)} exemplars, more than the limit of {MAX_EXEMPLARS} for one edit",
                         param="exemplars")
    read = []
    for k, exemplar in enumerate(exemplars):
        name = f"exemplars[{k}]"
        if not isinstance(exemplar, Exemplar):
            raise InputError(f"expected an Exemplar, got {type(exemplar).__name__}", param=name)
        picture, alpha = load_image(exemplar.image, name=name, max_pixels=max_pixels)
        if exemplar.cutout is not None:  # only the selected part of the exemplar is grafted
            if not isinstance(exemplar.cutout, Select):
                raise InputError(f"expected a Select, got {short(exemplar.cutout)}", param=f"{name}.cutout")
            cut = select_on(exemplar.cutout, picture, f"{name}.cutout", selected)
            alpha = cut if alpha is None else alpha * cut
            notes.append(f"{name}: cut out ({float((cut > 0).mean()):.0%} of the exemplar kept)")
        condition = finite(exemplar.condition) if isinstance(exemplar.condition, (int, float)) else None
        if condition is None or not 0 <= condition <= MAX_CONDITION:
            raise InputError(f"expected a weight in [0, {MAX_CONDITION:g}], got {short(exemplar.condition)}",
                             param=f"{name}.condition")
        prompt = None
        if condition > 0:  # the exemplar itself (or the image given for it) as its region's image prompt
            prompt = picture
            if exemplar.condition_image is not None:
                prompt, _ = load_image(exemplar.condition_image, name=f"{name}.condition_image", max_pixels=max_pixels)
        if exemplar.fit not in FITS:
            raise InputError(f"unknown fit {exemplar.fit!r}; choose one of {', '.join(FITS)}", param=f"{name}.fit")
        m = None
        if exemplar.strength_map is not None:
            m, map_notes = read_map(exemplar.strength_map, f"{name}.strength_map", image, invert_map, max_pixels,
                                    selected)
            notes += map_notes
        box = None if exemplar.box is None else check_box(exemplar.box, f"{name}.box", size, max_pixels)
        if m is None and alpha is None and box is None:
            raise InputError(
                "no strength_map, no alpha channel and no box: say where it goes with a map (-m MAP,"
                " strength_map=...) or a box (EXEMPLAR@X,Y,W,H, box=(x, y, w, h))", param=name
            )
        read.append(ReadExemplar(picture, alpha, m, box, exemplar.fit, condition, prompt,
                                 region_text(exemplar, name)))
    extra = None
    if strength_map is not None:
        extra, map_notes = read_map(strength_map, "strength_map", image, invert_map, max_pixels, selected)
        notes += map_notes
    read_regions = []
    if isinstance(regions, Region) or not isinstance(regions, Sequence):
        raise InputError(f"expected a list of Region, got {type(regions).__name__}", param="regions")
    if len(regions) > MAX_REGIONS:
        raise InputError(f"{len(regions)} regions, more than the limit of {MAX_REGIONS} for one edit", param="regions")
    for k, region in enumerate(regions):
        name = f"regions[{k}]"
        if not isinstance(region, Region):
            raise InputError(f"expected a Region, got {type(region).__name__}", param=name)
        text = region_text(region, name)
        if text == (None, None, ()):
            raise InputError("a region needs a prompt, a negative prompt or LoRA scales of its own", param=name)
        if region.strength_map is None:
            raise InputError("a region needs a strength_map: where its text applies", param=f"{name}.strength_map")
        m, map_notes = read_map(region.strength_map, f"{name}.strength_map", image, invert_map, max_pixels, selected)
        notes += map_notes
        read_regions.append(RegionText(*text[:2], m, text[2]))
    labels = {
        "source": label(source),
        "exemplars": [{"image": label(e.image),
                       "strength_map": selected.get(f"exemplars[{k}].strength_map", label(e.strength_map)),
                       "fit": e.fit, "condition": e.condition,
                       **({"cutout": selected[f"exemplars[{k}].cutout"]} if e.cutout is not None else {}),
                       **_text_labels(e)}
                      for k, e in enumerate(exemplars)],
        "strength_map": selected.get("strength_map", label(strength_map)),
        "regions": [{"strength_map": selected.get(f"regions[{k}].strength_map", label(r.strength_map)),
                     **_text_labels(r)} for k, r in enumerate(regions)],
    }
    return ReadInputs(image, tuple(read), extra, labels, tuple(notes), tuple(read_regions))


def region_text(given: Exemplar | Region, name: str) -> tuple[str | None, str | None, tuple]:
    """An exemplar's or a region's own (prompt, negative prompt, LoRA scales), checked; None (and no scales)
    where it has none. Which LoRAs the names mean is the editor's to say: they are the ones loaded into it."""
    for key in ("prompt", "negative_prompt"):
        value = getattr(given, key)
        if value is not None:
            check_text(f"{name}.{key}", value)
    return given.prompt, given.negative_prompt, lora_scales(given.loras, f"{name}.loras")


def lora_scales(value: Any, param: str) -> tuple[tuple[str | int, float], ...]:
    """A region's {LoRA: scale} checked: each LoRA named by text or by its position in the load order, each
    scale a number in [-4, 4] (as `Editor.load_lora` takes it)."""
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise InputError(f"expected a mapping of LoRA to scale ({{'style': 0.8}}), got {short(value)}", param=param)
    if len(value) > MAX_LORAS:
        raise InputError(f"{len(value)} LoRAs, more than the limit of {MAX_LORAS}", param=param)
    scales = []
    for key, scale in value.items():
        if isinstance(key, bool) or not (isinstance(key, int) and key >= 0 or isinstance(key, str) and key.strip()):
            raise InputError(f"expected a LoRA's name, source or position, got {short(key)}", param=param)
        scales.append((key, check_scale(scale, f"{param}[{key!r}]", *LORA_SCALE)))
    return tuple(scales)


def lora_scale_text(text: str) -> tuple[str, float]:
    """NAME[:SCALE] (a loaded LoRA's name or source, and a scale, default 1) from text, as `--lora-here` and the
    studio's fields take it; the scale's range is checked with the edit's other inputs (`lora_scales`)."""
    name, colon, tail = text.strip().rpartition(":")
    if colon and name:
        try:
            return name.strip(), float(tail)
        except ValueError:
            pass
    return text.strip(), 1.0


def lora_scales_text(text: str, param: str) -> dict[str, float]:
    """"style:0.8, every" -> {"style": 0.8, "every": 1.0}: LoRA scales written as text, comma-separated."""
    scales: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(","))):
        name, scale = lora_scale_text(part)
        if name in scales:
            raise InputError(f"LoRA {name!r} is scaled twice", param=param)
        scales[name] = scale
    return scales


def lora_scales_label(scales: Sequence[tuple[str | int, float]]) -> str:
    """The text `lora_scales_text` reads back: "style:0.8, every:1"."""
    return ", ".join(f"{name}:{scale:g}" for name, scale in scales)


def _text_labels(given: Exemplar | Region) -> dict[str, Any]:
    labels = {key: getattr(given, key) for key in ("prompt", "negative_prompt") if getattr(given, key) is not None}
    return labels | ({"loras": dict(given.loras)} if given.loras else {})


def place_inputs(read: ReadInputs, source: Image.Image | None = None, mode: str = "paper") -> Inputs:
    """Place the read exemplars on `source` (default: the source they were read with; a chain's next source
    has its size) and combine the maps. In paper mode an exemplar is grafted only where its map is exactly 1;
    a note says when it never is."""
    image = read.source if source is None else source
    size = image.size
    if size != read.source.size:
        raise InputError(f"a {size[0]}x{size[1]} source; the inputs were read for {read.source.size[0]}x"
                         f"{read.source.size[1]}", param="source")
    notes = list(read.notes)
    images, maps, boxes, conditions, texts = [], [], [], [], []
    for k, exemplar in enumerate(read.exemplars):
        name = f"exemplars[{k}]"
        picture, alpha, m, box = exemplar.picture, exemplar.alpha, exemplar.strength_map, exemplar.box
        if box is None and picture.size != size and m is not None:
            box = region_box(m)
            if box is not None:
                notes.append(f"{name}: {picture.size[0]}x{picture.size[1]} fitted ({exemplar.fit}) into its map's"
                             f" edited area, box {box}")
        if box is not None:
            picture, coverage = place(image, picture, alpha, box, exemplar.fit)
        else:
            coverage = alpha
            if picture.size != size:
                notes.append(f"{name}: resized from {picture.size[0]}x{picture.size[1]} to {size[0]}x{size[1]}")
                picture = picture.resize(size, Image.LANCZOS)
                if alpha is not None:
                    coverage = np.asarray(Image.fromarray(alpha.astype(np.float32), "F").resize(size), np.float64)
        if m is None:
            m, _ = load_map((np.clip(coverage, 0, 1) * 255).round().astype(np.uint8), name=f"{name} region", size=size)
            what = "its alpha channel" if exemplar.box is None else "the area it covers in its box"
            notes.append(f"{name}: no strength_map given, {what} is its region")
        if exemplar.prompt is not None:
            conditions.append((exemplar.prompt, exemplar.condition, k))
        if exemplar.text != (None, None, ()):
            texts.append(RegionText(*exemplar.text[:2], m, exemplar.text[2]))
        images.append(picture)
        maps.append(m)
        boxes.append(box)
    texts += list(read.regions)
    strengths = list(maps) + [r.map for r in read.regions] + \
        ([read.strength_map] if read.strength_map is not None else [])
    if strengths:
        combined = np.maximum.reduce(strengths) if len(strengths) > 1 else strengths[0]
    else:
        combined = np.ones((size[1], size[0]))  # no map at all: a plain full-frame edit
    labels = {**read.labels, "exemplars": [  # box: where it was placed (None: aligned with the source)
        {"image": given["image"], "strength_map": given["strength_map"], "box": box, "fit": given["fit"],
         "condition": given["condition"],
         **{key: given[key] for key in ("cutout", "prompt", "negative_prompt", "loras") if key in given}}
        for given, box in zip(read.labels["exemplars"], boxes)]}
    if mode == "paper":
        for k, m in enumerate(maps):
            if m.max() < 1.0:
                notes.append(
                    f"exemplars[{k}]: its map never reaches full strength (at most {m.max():.3g}), so in paper mode"
                    " it is never grafted: only pixels of strength exactly 1 take the exemplar. Paint the graft area"
                    " white (a colour reads as its luminance: pure red is 0.299), or use mode='blend'"
                )
    for text in texts:
        if not (text.map > 0).any():
            what = text.prompt if text.prompt is not None else text.negative
            what = f"text ({short(what)})" if what is not None else f"LoRA scales ({short(dict(text.loras))})"
            notes.append(f"a region's {what} has an empty map: it applies nowhere")
    texts = [text for text in texts if (text.map > 0).any()]
    return Inputs(image, images, maps, combined.astype(np.float64), labels, notes, conditions, texts=texts)


def control_picture(control: Control, source: Image.Image, max_pixels: int) -> Image.Image:
    """The control image at the source's size (RGB): the given one resized, or the source's Canny edges."""
    if control.kind == "image":
        picture, _ = load_image(control.image, name="control.image", max_pixels=max_pixels)
        return picture if picture.size == source.size else picture.resize(source.size, Image.BILINEAR)
    return canny(source)


def canny(source: Image.Image) -> Image.Image:
    """The source's Canny edges as an RGB control image (OpenCV, the ControlNet authors' thresholds)."""
    import cv2

    edges = cv2.Canny(np.asarray(source.convert("L")), *CANNY_THRESHOLDS)
    return Image.fromarray(np.stack([edges] * 3, -1))
