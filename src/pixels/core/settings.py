"""What one edit is made of: `Exemplar`, `Region`, `EditSettings` and `EditResult`.

`EditSettings` is the single declaration of every setting: each field carries its default, its help
text and its short name (`Option`, in the field's metadata: the spec-file key, and with dashes the
command-line flag), and is checked in `__post_init__`. The `pixels edit` flags, the spec schema and the
record a saved session keeps are all generated from these fields, so a new setting is one field here
plus the code that uses it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError, short
from ..limits import GUIDANCE_RANGE, MAX_CROP_RESIZE, MAX_MARGIN, MAX_STEPS, MAX_TEXT, finite
from .frame import ImageLike, RegionText
from .schedulers import SCHEDULERS, scheduler_name

MODES = ("paper", "blend")
PRESERVE = ("exact", "none")
SKIP_STEPS = ("auto", "always", "never")
EXEMPLAR_ENCODE = ("full", "region")


@dataclass(frozen=True)
class Option:
    """How a setting is presented outside Python: on the command line and in spec files."""

    help: str
    kind: str  # the spec schema's type: "string", "integer", "number", "boolean", "... or null"
    key: str | None = None  # the short name (default: the field name): the spec key; with dashes, the flag
    parse: Callable[[str], Any] | None = None  # reads the value from text, ValueError if it cannot (default: `kind`)
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    recorded: bool = True  # kept in a saved session's record (False: already applied to what is saved)
    bounds: tuple[float, float] | None = None  # the range `validate` holds a number to (ends open or closed)
    listed: tuple[str, ...] | None = None  # the values a chooser lists where `choices` does not restrict them


def setting(default: Any, help: str, kind: str, **option: Any) -> Any:
    return field(default=default, metadata={"option": Option(help, kind, **option)})


# -- values from text (command-line flags, CSV cells) ----------------------------------------------------
def _crop(text: str) -> str | tuple[int, int, int, int]:
    if text == "auto":
        return text
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise ValueError(f"expected auto or X,Y,W,H integers, got {text!r}")
    return box


def _crop_resize(text: str) -> int | str:
    if text == "native":
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected native or a number of pixels, got {text!r}") from None


def parse_seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a non-negative integer, got {text!r}") from None
    if not 0 <= value < 2**64:
        raise ValueError(f"expected an integer in [0, 2**64), got {text!r}")
    return value


# The seed is not a setting (a random one is drawn when it is absent, and a generator may replace it),
# but it has a flag and a spec key like one, and every saved session records it.
SEED = Option("random seed (default: random, recorded)", "integer or null", key="seed", parse=parse_seed,
              metavar="N")


@dataclass(frozen=True)
class EditSettings:
    """Every setting of one edit, checked on construction; recorded in the result's metadata."""

    prompt: str = setting("", "text guiding the edited pixels", "string", metavar="TEXT")
    negative_prompt: str | None = setting(
        None, "what the edit should avoid; an empty text is encoded as such, while no negative prompt at all"
        " (the default) uses the model's own unconditional input (zero embeddings for SDXL, a zero image for"
        " Kandinsky 2.2)", "string or null", metavar="TEXT")
    num_inference_steps: int = setting(50, "length of the full schedule, before img2img truncation (default 50)",
                                       "integer", key="steps", metavar="N", bounds=(1, MAX_STEPS))
    strength: float = setting(
        1.0, "img2img strength in (0, 1]: the share of the schedule that runs, as the model's diffusers img2img"
        " pipeline truncates it (default 1)", "number", metavar="F", bounds=(0.0, 1.0))
    denoising_start: float | None = setting(
        None, "start at this fraction of the schedule instead of using strength (SDXL refiner style)",
        "number or null", metavar="F", bounds=(0.0, 1.0))
    guidance_scale: float = setting(
        7.5, "classifier-free guidance scale; <= 1 turns guidance off (default 7.5); Flux dev takes it as an"
        " embedded scale, Flux schnell ignores it", "number", key="guidance", metavar="F", bounds=GUIDANCE_RANGE)
    scheduler: str | None = setting(
        None, "default (the model's own), " + ", ".join(SCHEDULERS) + " (flow models: default or euler)",
        "string or null", metavar="NAME", listed=("default", *SCHEDULERS))
    mode: str = setting("paper", "paper: the reference rule (default); blend: gray pixels also take in the"
                        " exemplar", "string", choices=MODES)
    invert_map: bool = setting(False, "maps use the reference convention: white = keep, black = full edit",
                               "boolean", recorded=False)
    preserve: str = setting("exact", "exact: strength-0 pixels are copied from the source (default)", "string",
                            choices=PRESERVE)
    guidance_rescale: float = setting(
        0.0, "in [0, 1]: pull the guided prediction's spread back toward the conditional one's (Lin et al. 2023,"
        " sec. 3.4; against over-exposure with v-prediction and zero-terminal-SNR models); 0 = off (default)",
        "number", metavar="F", bounds=(0.0, 1.0))
    eta: float = setting(0.0, "DDIM eta in [0, 1] (default 0)", "number", metavar="F", bounds=(0.0, 1.0))
    skip_steps: str = setting(
        "auto", "skip model calls while every pixel is still pinned: auto (only where the result is identical,"
        " default), always, never", "string", choices=SKIP_STEPS)
    crop: str | tuple[int, int, int, int] | None = setting(
        None, "diffuse only a box around the edited area and paste it back (faster for small edits)",
        "string or box or null", parse=_crop, metavar="auto|X,Y,W,H")
    crop_margin: int = setting(32, "context kept around the edited area when crop is auto (default 32)",
                               "integer", metavar="PX", bounds=(0, MAX_MARGIN))
    crop_resize: int | str | None = setting(
        None, "diffuse the crop with its longer side at N pixels (native: the model's training size)",
        "string or integer or null", parse=_crop_resize, metavar="N|native")
    switch_at: float | None = setting(
        None, "with a refiner: fraction of the schedule the base model runs (default 0.8)", "number or null",
        metavar="F", bounds=(0.0, 1.0))
    exemplar_encode: str = setting(
        "full", "full: encode each exemplar whole (the reference, default); region: only around its edited area"
        " (faster with many exemplars, approximate)", "string", choices=EXEMPLAR_ENCODE)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        def number(name: str, value: Any) -> float:
            if not isinstance(value, (int, float)) or (result := finite(value)) is None:
                raise InputError(f"expected a finite number, got {short(value)}", param=name)
            return result

        def integer(name: str, value: Any, low: int, high: int) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InputError(f"expected an integer in [{low}, {high}], got {short(value)}", param=name)
            return value

        def one_of(name: str, value: Any, choices: Sequence[str]) -> None:
            if not isinstance(value, str) or value not in choices:
                raise InputError(f"unknown value {short(value)}; choose one of {', '.join(choices)}", param=name)

        integer("num_inference_steps", self.num_inference_steps, 1, MAX_STEPS)
        if not 0.0 < number("strength", self.strength) <= 1.0:
            raise InputError(f"must lie in (0, 1], got {self.strength!r}", param="strength")
        if self.denoising_start is not None and not 0.0 < number("denoising_start", self.denoising_start) < 1.0:
            raise InputError(f"must lie in (0, 1), got {self.denoising_start!r}", param="denoising_start")
        low, high = GUIDANCE_RANGE
        if not low <= number("guidance_scale", self.guidance_scale) <= high:
            raise InputError(f"must lie in [{low:g}, {high:g}], got {self.guidance_scale!r}", param="guidance_scale")
        if not 0.0 <= number("guidance_rescale", self.guidance_rescale) <= 1.0:
            raise InputError(f"must lie in [0, 1], got {self.guidance_rescale!r}", param="guidance_rescale")
        if not 0.0 <= number("eta", self.eta) <= 1.0:
            raise InputError(f"must lie in [0, 1], got {self.eta!r}", param="eta")
        check_text("prompt", self.prompt)
        if self.negative_prompt is not None:
            check_text("negative_prompt", self.negative_prompt)
        one_of("mode", self.mode, MODES)
        if not isinstance(self.invert_map, bool):
            raise InputError(f"expected True or False, got {short(self.invert_map)}", param="invert_map")
        one_of("preserve", self.preserve, PRESERVE)
        if self.scheduler is not None and not isinstance(self.scheduler, str):
            raise InputError(f"expected a name, got {short(self.scheduler)}", param="scheduler")
        scheduler_name(self.scheduler)
        one_of("skip_steps", self.skip_steps, SKIP_STEPS)
        if self.crop is not None and self.crop != "auto":
            box = self.crop
            if isinstance(box, (str, bytes)) or not isinstance(box, Sequence) or len(box) != 4 or any(
                isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in box
            ) or box[2] < 1 or box[3] < 1:
                raise InputError(f"expected 'auto', None or an (x, y, w, h) box of integers, got {short(box)}",
                                 param="crop")
        integer("crop_margin", self.crop_margin, 0, MAX_MARGIN)
        if self.crop_resize not in (None, "native"):
            if isinstance(self.crop_resize, bool) or not isinstance(self.crop_resize, int) \
                    or not 8 <= self.crop_resize <= MAX_CROP_RESIZE:
                raise InputError(f"expected 'native' or an integer in [8, {MAX_CROP_RESIZE}],"
                                 f" got {short(self.crop_resize)}", param="crop_resize")
        one_of("exemplar_encode", self.exemplar_encode, EXEMPLAR_ENCODE)
        if self.switch_at is not None and not 0.0 < number("switch_at", self.switch_at) < 1.0:
            raise InputError(f"must lie in (0, 1), got {self.switch_at!r}", param="switch_at")

    def record(self) -> dict[str, Any]:
        """The settings a saved session keeps to replay this edit (the maps it keeps are already applied)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f, option in options() if option.recorded}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def options() -> Iterator[tuple[Any, Option]]:
    """(field, Option) for every setting, in declaration order."""
    for f in fields(EditSettings):
        yield f, f.metadata["option"]


def spec_key_of(name: str, option: Option) -> str:
    """The short name of a setting: its spec-file key (`num_inference_steps` -> `steps`)."""
    return option.key or name


def make_settings(settings: EditSettings | None = None, **overrides: Any) -> EditSettings:
    """`settings` (or the defaults) with `overrides` applied; unknown names are refused by name."""
    if settings is not None and not isinstance(settings, EditSettings):
        raise InputError(f"expected EditSettings or None, got {type(settings).__name__}", param="settings")
    known = {f.name for f in fields(EditSettings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise InputError(f"unknown setting {unknown[0]!r}; the settings are: {', '.join(sorted(known))}",
                         param=unknown[0])
    values = {f.name: getattr(settings, f.name) for f in fields(EditSettings)} if settings else {}
    return EditSettings(**{**values, **overrides})


# the settings that decide an edit's timesteps and guidance: edits that differ in one never share a batch_key
SCHEDULE_SETTINGS = ("num_inference_steps", "strength", "denoising_start", "guidance_scale", "guidance_rescale",
                     "scheduler", "eta", "switch_at")


def schedule_key(settings: Mapping[str, Any]) -> tuple:
    """Settings by name as a sortable value, equal for every edit that may share model calls: what
    `prepare.batch_key` compares, as far as the settings tell it without the model (a batch orders its rows
    by it)."""
    return tuple(str(settings.get(name)) for name in SCHEDULE_SETTINGS)


def steps_run(num_inference_steps: int, strength: float) -> int:
    """The img2img truncation, as diffusers' SD/SDXL img2img pipelines make it: an edit of `strength` runs the
    last int(N * strength) of the N steps of the schedule (with `denoising_start`, the schedule decides)."""
    return min(int(num_inference_steps * strength), num_inference_steps)


def no_steps_left(steps: int, strength: float) -> str:
    """Why `steps` at `strength` run nothing, and the smallest change of either that runs one."""
    fewest = math.ceil(1 / strength)
    while steps_run(fewest, strength) == 0:  # float rounding: 1 / 0.3 * 0.3 may fall short of 1
        fewest += 1
    weakest = math.ceil(1000 / steps) / 1000
    return (f"{steps} steps at strength {strength:g} run int({steps} x {strength:g}) = 0 denoising steps;"
            f" give at least {fewest} steps or a strength of at least {weakest:g}")


def check_seed(seed: Any) -> None:
    """None (a random seed is drawn and recorded) or an integer in [0, 2**64)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
        raise InputError(f"expected an integer in [0, 2**64), got {short(seed)}", param="seed")


def check_text(name: str, value: Any) -> None:
    """A prompt: a string of valid Unicode (no lone surrogates from undecodable bytes), of bounded length."""
    if not isinstance(value, str):
        raise InputError(f"expected a string, got {short(value)}", param=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"not valid UTF-8 text ({short(value)})", param=name) from None
    if len(value) > MAX_TEXT:
        raise InputError(f"{len(value)} characters, more than the limit of {MAX_TEXT}", param=name)


@dataclass(frozen=True)
class Exemplar:
    """A reference image and where it goes: its strength map (white = graft and edit, black = keep).

    Placement: with `box` the exemplar is fitted into that box; without one, an exemplar of the
    source's size is taken as already aligned (the reference behaviour), and one of another size is
    fitted into the bounding box of its map's edited area. The canvas around it is the source.
    """

    image: ImageLike  # PIL image, numpy array or path
    strength_map: ImageLike | None = None  # None: its alpha channel, or else its placed box, is its region
    box: tuple[int, int, int, int] | None = None  # (x, y, w, h) in source pixels
    fit: str = "cover"  # cover: fill the box, cropping; contain: all of it inside; stretch: to the box
    condition: float = 0.0  # > 0: also an IP-Adapter image prompt of this weight, masked to the exemplar's region
    condition_image: ImageLike | None = None  # the image prompted there (default: the exemplar image itself)
    cutout: Any = None  # a `pixels.select.Select` found on the exemplar image: only that part is grafted (its alpha)
    prompt: str | None = None  # its region's own text (None: the edit's prompt there)
    negative_prompt: str | None = None  # its region's own negative text (None: the edit's)
    loras: Mapping[str | int, float] | None = None  # its region's own LoRA scales, as `Region.loras`


@dataclass(frozen=True)
class Region:
    """A part of the photo with its own text or LoRA scales, and no exemplar: where its map is above 0 the model
    attends to `prompt` (and `negative_prompt`) instead of the edit's, and applies each LoRA `loras` names at
    that scale instead of the edit's, blending the two where the map is gray. Its map is also edited, as an
    exemplar's is: the edit's strength is the largest of every map. What a region does not set comes from the
    edit's settings."""

    strength_map: Any  # an image, array or path (white = edit), or a `pixels.select.Select` found on the photo
    prompt: str | None = None  # None: the edit's prompt (with only a negative prompt of its own)
    negative_prompt: str | None = None  # None: the edit's negative prompt
    loras: Mapping[str | int, float] | None = None  # {LoRA: scale}: a LoRA loaded into the editor (its name, its
    # source as loaded, or its position in the load order) at this scale here; unnamed ones keep the edit's scale


@dataclass
class EditResult:
    """What an edit made: the image (the source's size), its metadata (every setting, the model, the seed, the
    notes), and the inputs as they were applied (the combined strength map, the placed exemplars and their
    maps, the images their regions were prompted with, the control image)."""

    image: Image.Image  # same size as the source
    metadata: dict[str, Any]  # every setting used, the model, the seed, and notes on conversions
    strength_map: np.ndarray = field(repr=False)  # (H, W) combined strength actually applied
    exemplars: list[Image.Image] = field(default_factory=list, repr=False)  # as placed on the source canvas
    exemplar_maps: list[np.ndarray] = field(default_factory=list, repr=False)  # their (H, W) strength maps
    settings: EditSettings | None = field(default=None, repr=False)  # the settings the edit ran with
    condition_images: list[Image.Image | None] = field(default_factory=list, repr=False)  # per exemplar: the
    # image its region was prompted with (None: no condition)
    control_image: Image.Image | None = field(default=None, repr=False)  # what the ControlNet followed (source size)
    texts: list[RegionText] = field(default_factory=list, repr=False)  # what each exemplar or region conditioned
    # of its own (text, LoRA scales by name), on its (H, W) map as applied
