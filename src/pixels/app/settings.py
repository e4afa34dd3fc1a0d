"""Edit settings as the studio's fields give them: recommended defaults per model, validation that names
the field, and settings read back from an image that pixels wrote."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from pixels import EditSettings, InputError
from pixels.core.schedulers import SCHEDULERS as NAMED_SCHEDULERS
from pixels.core.settings import MODES, SKIP_STEPS
from pixels.inputs.images import load_image
from pixels.limits import MAX_MARGIN, MAX_STEPS
from pixels.models.catalog import recommended as catalog_recommended
from pixels.outputs.writers import read_metadata

SCHEDULERS = ("default", *NAMED_SCHEDULERS)  # "default": the model's own
MAX_SEED = 2**64 - 1
FIELDS = {  # EditSettings name -> the studio field that holds it (seed and crop are read apart)
    "prompt": "prompt", "negative_prompt": "negative_prompt", "num_inference_steps": "steps", "strength": "strength",
    "guidance_scale": "guidance", "scheduler": "scheduler", "mode": "mode", "crop_margin": "crop_margin",
    "skip_steps": "skip_steps", "eta": "eta",
}


@dataclass(frozen=True)
class Settings:
    """The settings fields of the studio, with the values an edit starts from."""

    prompt: str = ""  # only for models that take text
    negative_prompt: str = ""
    steps: int = 50  # the full schedule; strength truncates it
    strength: float = 1.0  # img2img strength: the last int(steps * strength) steps run
    guidance: float = 7.5  # classifier-free guidance; <= 1 turns it off
    seed: int | None = None  # None: a random seed, recorded and shown after the edit
    scheduler: str = "default"  # the model's own
    mode: str = "paper"  # the reference rule; "blend" mixes the exemplar in along gray pixels
    crop_auto: bool = False  # diffuse only a box around the edit
    crop_margin: int = 32  # pixels of context around the edit with crop_auto
    skip_steps: str = "auto"  # skip model calls while every pixel is pinned, when that is exact
    eta: float = 0.0  # DDIM eta
    # recommended settings without a field here ((EditSettings name, value) pairs: guidance_rescale for SD 2.1,
    # denoising_start for the SDXL refiner), passed on to every edit as `pixels edit` uses them
    extra: tuple[tuple[str, Any], ...] = ()


def recommended(model: str, adapter: Any = None) -> Settings:
    """The settings a model works well with: those the catalogue records for a known model (short name or
    hub id), over those its family's adapter recommends (`Adapter.recommended`: a pixel-space model starts
    from a short, gentle, unguided edit), over pixels' defaults."""
    recorded = catalog_recommended(model, adapter)
    values = {FIELDS[k]: v for k, v in recorded.items() if k in FIELDS}
    extra = tuple((k, v) for k, v in recorded.items() if k not in FIELDS)
    return replace(Settings(), **values, extra=extra)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    """A whole number from a number field (which gives floats), in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != round(value) or not low <= value <= high:
        raise InputError(f"{name}: expected a whole number in [{low}, {high}], got {value!r}")
    return int(value)


def seed_value(value: Any) -> int | None:
    """The seed field: empty (or None) for a random seed, else a whole number in [0, 2**64)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise InputError(f"seed: expected a whole number or nothing (random), got {value!r}") from None
    if isinstance(value, float) and value > 2**53:
        raise InputError(f"seed: {value!r} is too large for a number field to hold exactly; type it as text")
    return _integer("seed", value, 0, MAX_SEED)


def edit_kwargs(settings: Settings, takes_prompt: bool) -> dict[str, Any]:
    """The keyword arguments of `EditSession.apply` for these fields (and the model's `extra` settings),
    validated: bad values raise `InputError` naming the field, before any model work."""
    if not takes_prompt and (settings.prompt or settings.negative_prompt):
        raise InputError("prompt: this model is unconditional and takes no text; leave the prompts empty")
    kwargs = {name: getattr(settings, field) for name, field in FIELDS.items()}
    kwargs.update(dict(settings.extra), num_inference_steps=_integer("steps", settings.steps, 1, MAX_STEPS),
                  scheduler=None if settings.scheduler == "default" else settings.scheduler,
                  crop="auto" if settings.crop_auto else None,
                  crop_margin=_integer("crop margin", settings.crop_margin, 0, MAX_MARGIN))
    if not settings.negative_prompt:  # an empty field means no negative prompt (the model's own unconditional input)
        del kwargs["negative_prompt"]
    EditSettings(**kwargs)  # validated as it is made
    kwargs["seed"] = seed_value(settings.seed)
    return kwargs


def from_metadata(metadata: Any) -> Settings:
    """The studio's fields from a result's `pixels` metadata (what `EditResult.metadata` records)."""
    if not isinstance(metadata, dict):
        raise InputError("settings PNG: its pixels metadata is not a JSON object")
    values = asdict(Settings())
    for key, field in {**FIELDS, "seed": "seed"}.items():
        if metadata.get(key) is not None:
            values[field] = metadata[key]
    values["crop_auto"] = metadata.get("crop") == "auto"
    restored = Settings(**values)
    if restored.scheduler not in SCHEDULERS:
        raise InputError(f"settings PNG: scheduler {restored.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    edit_kwargs(restored, takes_prompt=True)  # every value checked as if typed into the fields
    return restored


def read_png_settings(path: str, max_pixels: int) -> Settings:
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


__all__ = ["FIELDS", "MODES", "SCHEDULERS", "SKIP_STEPS", "Settings", "edit_kwargs", "from_metadata",
           "read_png_settings", "recommended", "seed_value"]
