"""The studio's settings: one field per `EditSettings` setting and the seed, generated from the declaration
(`pixels.core.settings.options`), named by their spec keys, starting from the model's recommended settings
(`pixels.models.catalog.recommended`). A setting added to the declaration appears in the studio by itself.

Values travel as a mapping {spec key: value as its field holds it}: text fields give text ("" for none), number
fields numbers, choosers their choice. `edit_kwargs` turns them into `Editor.edit` arguments, with errors that
name the field by its spec key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pixels import EditSettings, InputError
from pixels.core.settings import SEED, Option, options, spec_key_of
from pixels.inputs.images import load_image
from pixels.inputs.spec import spec_param
from pixels.models.catalog import recommended as catalog_recommended
from pixels.outputs.writers import read_metadata

MAIN = ("prompt", "negative_prompt", "steps", "strength", "guidance", "seed", "scheduler", "mode")  # on the
# panel, in this order; every other setting is under "Advanced", in declaration order
TEXT = ("prompt", "negative_prompt", "guidance")  # what a model that takes no text does not use


@dataclass(frozen=True)
class Field:
    """One studio field: the setting it sets, its spec key (its name on the page, in the endpoint and in the
    element id `pixels-<key>`) and how the page presents it."""

    name: str  # the Python name: an EditSettings field, or "seed"
    key: str
    option: Option
    default: Any  # pixels' default

    @property
    def widget(self) -> str:
        """checkbox, radio (a closed list), dropdown (a listed one), integer, number, slider (a fraction) or text
        (free text, and values read from text: seeds, crop boxes)."""
        kind = self.option.kind
        if kind == "boolean":
            return "checkbox"
        if self.option.choices:
            return "radio"
        if self.option.listed:
            return "dropdown"
        if self.option.parse is not None or kind.startswith("string"):
            return "text"
        if kind.startswith("integer"):
            return "integer"
        bounds = self.option.bounds
        return "slider" if bounds is not None and bounds[1] <= 1 and kind == "number" else "number"

    @property
    def label(self) -> str:
        return self.key.replace("_", " ").capitalize()


FIELDS: tuple[Field, ...] = tuple(Field(f.name, spec_key_of(f.name, option), option, f.default)
                                  for f, option in options()) + (Field("seed", "seed", SEED, None),)
BY_KEY = {f.key: f for f in FIELDS}
ORDER = tuple(BY_KEY[key] for key in MAIN) + tuple(f for f in FIELDS if f.key not in MAIN)  # as the page shows them


def shown(field: Field, value: Any) -> Any:
    """A setting's value as its field holds it: text for text fields ("" for none), "default" for the model's
    own scheduler, "x,y,w,h" for a crop box."""
    if field.widget == "dropdown" and value is None:
        return field.option.listed[0]
    if field.widget == "text":
        if value is None:
            return ""
        return ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)
    return value


def recommended(model: str, adapter: Any = None) -> dict[str, Any]:
    """{spec key: field value} every field starts from: the settings the catalogue records for a known model
    (short name or hub id), over those its family's adapter recommends, over pixels' defaults."""
    recorded = catalog_recommended(model, adapter)
    return {f.key: shown(f, recorded.get(f.name, f.default)) for f in FIELDS}


def _read(field: Field, value: Any) -> Any:
    """A field's value as the setting's value; a value the field cannot hold raises InputError naming it."""
    option, widget = field.option, field.widget
    if widget == "text":
        text = "" if value is None else str(value).strip()
        if not text:  # an empty field: no value (no negative prompt: the model's own unconditional input)
            return None if "null" in option.kind else ""
        if option.parse is None:
            return str(value)
        try:
            return option.parse(text)
        except ValueError as error:
            raise InputError(str(error), param=field.key) from None
    if widget == "dropdown":
        return None if value in (None, "", option.listed[0]) else value
    if widget in ("integer", "number", "slider"):
        if value is None or value == "":
            if "null" in option.kind:
                return None
            raise InputError("give a number", param=field.key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"expected a number, got {value!r}", param=field.key)
        if widget == "integer":
            if value != round(value):
                raise InputError(f"expected a whole number, got {value!r}", param=field.key)
            return int(value)
        return float(value)
    return value


def check_steps(steps: Any, max_steps: int | None, param: str) -> None:
    """A shared server's limit on the schedule an edit asks for (`pixels app --max-steps`)."""
    if max_steps is not None and isinstance(steps, int) and steps > max_steps:
        raise InputError(f"this server runs at most {max_steps} steps per edit, got {steps}", param=param)


def edit_kwargs(values: Mapping[str, Any], takes_prompt: bool, max_steps: int | None = None) -> dict[str, Any]:
    """`Editor.edit` keyword arguments (settings by Python name, and the seed) for {spec key: field value};
    fields not given keep pixels' defaults. Checked as `EditSettings` checks them, and against the server's
    `max_steps`, before any model work; an error names the field by its spec key."""
    unknown = sorted(set(values) - set(BY_KEY))
    if unknown:
        raise InputError(f"unknown settings {unknown}; known: {', '.join(BY_KEY)}")
    kwargs = {BY_KEY[key].name: _read(BY_KEY[key], value) for key, value in values.items()}
    if not takes_prompt and (kwargs.get("prompt") or kwargs.get("negative_prompt")):
        raise InputError("this model is unconditional and takes no text; leave the prompts empty", param="prompt")
    seed = kwargs.pop("seed", None)
    check_steps(kwargs.get("num_inference_steps"), max_steps, "steps")
    try:
        EditSettings(**kwargs)  # validated as it is made
    except InputError as error:
        raise InputError(error.message, param=spec_param(error.param) if error.param else None) from None
    return {**kwargs, "seed": seed}


def from_metadata(metadata: Any) -> dict[str, Any]:
    """{spec key: field value} from a result's `pixels` metadata (what `EditResult.metadata` records), each
    value checked as if typed into its field."""
    if not isinstance(metadata, dict):
        raise InputError("settings PNG: its pixels metadata is not a JSON object")
    values = {f.key: shown(f, metadata.get(f.name, f.default)) for f in FIELDS if f.option.recorded}
    # (not invert_map: what a saved edit records is already applied to its maps)
    try:
        edit_kwargs(values, takes_prompt=True)
    except InputError as error:
        raise InputError(f"settings PNG: {error}") from None
    return values


def read_png_settings(path: str, max_pixels: int) -> dict[str, Any]:
    """The settings of an image that pixels wrote (a PNG's `pixels` text chunk, or the EXIF of a JPEG or
    WebP: `pixels.outputs.writers.read_metadata`), checked like typed values.

    The file is first read as any input is (format allow-list, size limit), then its metadata."""
    load_image(path, name="settings PNG", max_pixels=max_pixels)
    try:
        metadata = read_metadata(path)
    except (OSError, ValueError):  # a text chunk Pillow refuses (too large), or the file changed meanwhile
        metadata = None
    if metadata is None:
        raise InputError("settings PNG: it has no pixels metadata (only PNGs that pixels wrote carry it)")
    return from_metadata(metadata)


__all__ = ["BY_KEY", "FIELDS", "Field", "MAIN", "ORDER", "TEXT", "check_steps", "edit_kwargs", "from_metadata",
           "read_png_settings",
           "recommended", "shown"]
