"""Edit specs: one or more edits in a YAML (or JSON) file, applied in order, validated key by key.

    source: photo.jpg            # optional when SOURCE is given on the command line
    edits:
      - exemplars:
          - {image: fox.png, map: fox-region.png}         # map optional (alpha or box is the region)
          - {image: sky.png, box: [0, 0, 640, 200], fit: contain, condition: 0.6}  # IP-Adapter weight
        map: grass.png            # prompt-only region (optional)
        prompt: a red fox in the grass
        regions:                  # parts with text of their own (SD, SDXL); an exemplar takes prompt: too
          - {map: left.png, prompt: a red fox, fur}
          - {map: {text: the lamp}, prompt: brass lamp, warm light, negative_prompt: dark}
        control: {kind: canny, scale: 0.8}                # with a ControlNet loaded (optional)
        steps: 50
        strength: 0.8
        seed: 7
      - map: vignette.png
        prompt: evening light
        mode: blend

Relative paths are relative to the spec file. Errors name the offending key, e.g. `edits[1].strength`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.settings import SEED, Exemplar, Region, options, spec_key_of
from ..errors import InputError, first_line, short
from ..files import read_text
from ..limits import MAX_EXEMPLARS, MAX_REGIONS, finite
from ..select import Select
from .read import nested

# spec key -> (Editor.edit argument, expected type), from the settings' declaration
EDIT_KEYS: dict[str, tuple[str, str]] = {
    spec_key_of(f.name, option): (f.name, option.kind) for f, option in options()
} | {spec_key_of("seed", SEED): ("seed", SEED.kind)}
KEY_OF_ARGUMENT = {argument: key for key, (argument, _) in EDIT_KEYS.items()} | {"strength_map": "map"}  # Editor.edit
# argument -> spec key
PROMPT_IMAGE_KEYS = {"image": "path", "weight": "number"}
EXEMPLAR_KEYS = {"image": "path", "map": "path or selection", "box": "[x, y, w, h]", "fit": "string",
                 "condition": "number", "cutout": "selection", "prompt": "string", "negative_prompt": "string",
                 "loras": "{LoRA: scale}"}
REGION_KEYS = {"map": "path or selection", "prompt": "string", "negative_prompt": "string", "loras": "{LoRA: scale}"}
CONTROL_KEYS = {"kind": "string", "image": "path", "scale": "number", "start": "number", "end": "number"}
TOP_KEYS = {"source": "path", "edits": "list of edits"}
MAX_SPEC_BYTES = 1024 * 1024  # a spec lists edits and paths: a megabyte is thousands of edits
MAX_NODES = 100_000  # values in the document once YAML aliases are expanded
MAX_DEPTH = 16
MAX_EDITS = 1000


@dataclass
class EditSpec:
    exemplars: list[Exemplar] = field(default_factory=list)
    strength_map: str | Select | None = None  # a path, or a selection found on the photo (`map: {text: ...}`)
    settings: dict[str, Any] = field(default_factory=dict)  # Editor.edit keyword arguments

    def paths(self) -> list[str]:
        """Every input file the edit names: exemplars, their maps and prompt images, the map, a control image."""
        found = [str(e.image) for e in self.exemplars]
        found += [str(e.strength_map) for e in self.exemplars if isinstance(e.strength_map, (str, Path))]
        found += [str(e.condition_image) for e in self.exemplars if isinstance(e.condition_image, str)]
        found += [str(self.strength_map)] if isinstance(self.strength_map, (str, Path)) else []
        found += [str(r.strength_map) for r in self.settings.get("regions", []) if isinstance(r.strength_map, (str, Path))]
        found += [str(path) for path, _ in self.settings.get("prompt_images", []) if isinstance(path, str)]
        control = self.settings.get("control")
        found += [str(control.image)] if control is not None and isinstance(control.image, str) else []
        return found


@dataclass
class Spec:
    path: Path
    source: str | None
    edits: list[EditSpec]

    def paths(self) -> list[str]:
        """Every input file the spec names (for checks that an output does not overwrite one)."""
        return ([self.source] if self.source else []) + [path for edit in self.edits for path in edit.paths()]


def spec_param(param: str) -> str:
    """An `Editor.edit` parameter as the spec key that sets it, nested parts included:
    `num_inference_steps` -> `steps`, `exemplars[1].strength_map` -> `exemplars[1].map`."""
    root = re.split(r"[\[.]", param, maxsplit=1)[0]
    rest = re.sub(r"\.strength_map\b", ".map", param[len(root):])
    return KEY_OF_ARGUMENT.get(root, root) + rest


def _check_type(where: str, value: Any, kind: str) -> None:
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and finite(value) is not None,
        "boolean": isinstance(value, bool),
        "box": isinstance(value, list) and len(value) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
    }
    allowed = [k.strip() for k in kind.split(" or ")]
    if value is None and "null" in allowed:
        return
    if not any(ok.get(k, False) for k in allowed):
        raise InputError(f"expected {kind}, got {short(value)}", param=where)


def _unknown(where: str, mapping: dict, allowed) -> None:
    extra = sorted((k for k in mapping if k not in allowed), key=str)
    if extra:
        raise InputError(f"unknown key {short(extra[0])}; allowed: {', '.join(allowed)}", param=where)


def resolve_path(where: str, value: Any, base: Path) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"expected a file path, got {short(value)}", param=where)
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def parse_spec(data: Any, base: Path, name: str = "spec") -> Spec:
    """Validate a loaded spec document; paths are resolved against `base`."""
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping with an 'edits' list, got {type(data).__name__}", param=name)
    _unknown(name, data, TOP_KEYS)
    source = resolve_path(f"{name}.source", data["source"], base) if data.get("source") is not None else None
    edits = data.get("edits")
    if not isinstance(edits, list) or not edits:
        raise InputError(f"expected a non-empty list of edits, got {short(edits)}", param=f"{name}.edits")
    if len(edits) > MAX_EDITS:
        raise InputError(f"{len(edits)} edits, more than the limit of {MAX_EDITS}", param=f"{name}.edits")
    return Spec(base, source, [parse_edit(edit, f"edits[{i}]", base) for i, edit in enumerate(edits)])


def parse_edit(edit: Any, where: str, base: Path, extra_keys: tuple[str, ...] = ()) -> EditSpec:
    """Validate one edit (a mapping of spec keys, exemplars and map); `extra_keys` are allowed and left to
    the caller (a batch row's source and output)."""
    if not isinstance(edit, dict):
        raise InputError(f"expected a mapping, got {short(edit)}", param=where)
    _unknown(where, edit, [*EDIT_KEYS, "exemplars", "map", "control", "prompt_images", "regions", *extra_keys])
    settings = {}
    for key, (argument, kind) in EDIT_KEYS.items():
        if key in edit:
            _check_type(f"{where}.{key}", edit[key], kind)
            settings[argument] = edit[key]
    if edit.get("control") is not None:
        settings["control"] = parse_control(edit["control"], f"{where}.control", base)
    if edit.get("prompt_images"):
        settings["prompt_images"] = parse_prompt_images(edit["prompt_images"], f"{where}.prompt_images", base)
    if edit.get("regions"):
        settings["regions"] = parse_regions(edit["regions"], f"{where}.regions", base)
    exemplars = []
    for at, item in _image_items(edit.get("exemplars", []), f"{where}.exemplars", "exemplars", EXEMPLAR_KEYS):
        box = item.get("box")
        if box is not None and (not isinstance(box, list) or len(box) != 4
                                or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)):
            raise InputError(f"expected [x, y, w, h] integers, got {short(box)}", param=f"{at}.box")
        fit = item.get("fit", "cover")
        _check_type(f"{at}.fit", fit, "string")
        condition = item.get("condition", 0.0)
        _check_type(f"{at}.condition", condition, "number")
        strength_map = spec_map(item.get("map"), f"{at}.map", base)
        cutout = item.get("cutout")
        if cutout is not None:
            if not isinstance(cutout, dict):
                raise InputError(f"expected a selection such as {{text: the lamp}}, got {short(cutout)}",
                                 param=f"{at}.cutout")
            cutout = spec_map(cutout, f"{at}.cutout", base)
        exemplars.append(Exemplar(resolve_path(f"{at}.image", item["image"], base), strength_map,
                                  tuple(box) if box else None, fit, float(condition), cutout=cutout,
                                  **_texts(item, at)))
    return EditSpec(exemplars, spec_map(edit.get("map"), f"{where}.map", base), settings)


def spec_map(value: Any, where: str, base: Path) -> str | Select | None:
    """A spec's `map`: a path (relative to the spec's folder), or a mapping of selection fields
    (`{text: "the sofa", grow: 4}`, as `pixels.select.Select` takes them) found on the photo when the edit runs."""
    if value is None:
        return None
    if isinstance(value, dict):
        try:
            return Select.from_dict(value)
        except InputError as error:
            raise nested(error, where) from None
    return resolve_path(where, value, base)


def _texts(item: dict, at: str) -> dict[str, Any]:
    """An exemplar's or a region's own `prompt`, `negative_prompt` and `loras` ({name: scale}), type-checked."""
    for key in ("prompt", "negative_prompt"):
        if item.get(key) is not None:
            _check_type(f"{at}.{key}", item[key], "string")
    loras = item.get("loras")
    if loras is not None:
        if not isinstance(loras, dict):
            raise InputError(f"expected a mapping of LoRA name to scale ({{style: 0.8}}), got {short(loras)}",
                             param=f"{at}.loras")
        for name, scale in loras.items():
            _check_type(f"{at}.loras.{name}", scale, "number")
    return {key: item[key] for key in ("prompt", "negative_prompt", "loras") if item.get(key) is not None}


def parse_regions(value: Any, where: str, base: Path) -> list[Region]:
    """A spec's `regions` ([{map: left.png, prompt: a red fox}, ...]): parts of the photo with text of their own."""
    if not isinstance(value, list):
        raise InputError(f"expected a list of {{map: ..., prompt: ...}}, got {short(value)}", param=where)
    if len(value) > MAX_REGIONS:
        raise InputError(f"{len(value)} regions, more than the limit of {MAX_REGIONS} for one edit", param=where)
    found = []
    for k, item in enumerate(value):
        at = f"{where}[{k}]"
        if not isinstance(item, dict) or "map" not in item:
            raise InputError(f"expected a mapping with a 'map' (a path or a selection), got {short(item)}", param=at)
        _unknown(at, item, REGION_KEYS)
        texts = _texts(item, at)
        if not texts:
            raise InputError("a region needs a prompt, a negative_prompt or loras of its own", param=at)
        found.append(Region(spec_map(item["map"], f"{at}.map", base), **texts))
    return found


def parse_prompt_images(value: Any, where: str, base: Path) -> list[tuple[str, float]]:
    """A spec's `prompt_images` ([cat.png, {image: style.png, weight: 0.5}]) as (path, weight) pairs."""
    pairs = []
    for at, item in _image_items(value, where, "prompt images", PROMPT_IMAGE_KEYS):
        weight = item.get("weight", 1.0)
        _check_type(f"{at}.weight", weight, "number")
        pairs.append((resolve_path(f"{at}.image", item["image"], base), float(weight)))
    return pairs


def _image_items(value: Any, where: str, what: str, keys: dict) -> list[tuple[str, dict]]:
    """A list of images (`path`, or a mapping with an `image` path and `keys`), at most MAX_EXEMPLARS of them,
    as (where each is, its mapping)."""
    if not isinstance(value, list):
        raise InputError(f"expected a list, got {short(value)}", param=where)
    if len(value) > MAX_EXEMPLARS:
        raise InputError(f"{len(value)} {what}, more than the limit of {MAX_EXEMPLARS} for one edit", param=where)
    found = []
    for k, item in enumerate(value):
        at = f"{where}[{k}]"
        if isinstance(item, str):
            item = {"image": item}
        if not isinstance(item, dict) or "image" not in item:
            raise InputError(f"expected a mapping with an 'image' path, got {short(item)}", param=at)
        _unknown(at, item, keys)
        found.append((at, item))
    return found


def parse_control(value: Any, where: str, base: Path):
    """A spec's `control` ({kind: canny, scale: 0.8} or {kind: image, image: depth.png}) as a `Control`."""
    from ..core.control import Control

    if not isinstance(value, dict):
        raise InputError(f"expected a mapping such as {{kind: canny, scale: 0.8}}, got {short(value)}", param=where)
    _unknown(where, value, CONTROL_KEYS)
    for key, kind in CONTROL_KEYS.items():
        if key in value and key != "image":
            _check_type(f"{where}.{key}", value[key], kind)
    image = resolve_path(f"{where}.image", value["image"], base) if value.get("image") is not None else None
    try:
        return Control(value.get("kind", "canny"), image, value.get("scale", 1.0), value.get("start", 0.0),
                       value.get("end", 1.0))
    except InputError as error:
        raise InputError(error.message, param=f"{where}{(error.param or '')[len('control'):]}") from None


def check_size(data: Any, name: str) -> None:
    """Refuse documents too deep or too large once aliases are expanded (YAML anchors can make a small
    file describe billions of values): the walk stops at the first limit crossed."""
    count = 0
    stack = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise InputError(
                f"more than {MAX_NODES:,} values (YAML aliases expand); this is not an edit spec", param=name
            )
        if depth > MAX_DEPTH:
            raise InputError(f"nested more than {MAX_DEPTH} levels deep; this is not an edit spec", param=name)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for pair in value.items() for v in pair)
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def read_document(file: Path, param: str, max_bytes: int) -> Any:
    """A YAML or JSON file (`.json` is JSON, anything else YAML's safe loader) as data, refused when it is
    larger than `max_bytes`, does not parse, or expands (YAML aliases) beyond the limits of a spec."""
    import yaml

    text = read_text(file, param, max_bytes)
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, RecursionError, yaml.YAMLError) as error:
        raise InputError(f"cannot parse {str(file)!r}: {first_line(error)}", param=param) from None
    check_size(data, file.name)
    return data


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML or JSON spec file (UTF-8, with or without a byte-order mark)."""
    file = Path(path).expanduser()
    return parse_spec(read_document(file, "spec", MAX_SPEC_BYTES), file.parent, name=file.name)


def check_settings(settings: dict[str, Any]):
    """An edit's settings (Editor.edit keyword arguments: settings by name, seed, prompt_images, control)
    checked without the model; returns the EditSettings."""
    from ..core.settings import check_seed, make_settings

    check_seed(settings.get("seed"))
    return make_settings(**{k: v for k, v in settings.items()
                            if k not in ("seed", "prompt_images", "control", "regions")})
