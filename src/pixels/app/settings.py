"""Edit settings as the studio's fields give them: recommended defaults per model, validation that names
the field, and settings read back from a PNG that pixels wrote."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from PIL import Image

from pixels import EditSettings, InputError
from pixels.images import load_image

try:  # the model catalogue's module was renamed from pixels.models
    from pixels.catalog import KNOWN_MODELS
except ImportError:  # pragma: no cover - older pixels
    from pixels.models import KNOWN_MODELS

SCHEDULERS = ("default", "ddim", "euler", "euler-a", "dpm++2m")
SKIP_STEPS = ("auto", "always", "never")
MODES = ("paper", "blend")
MAX_SEED = 2**64 - 1
METADATA_LIMIT = 1024 * 1024  # characters of a `pixels` text chunk read back (Pillow caps chunks near this too)


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


def recommended(model: str, family: str | None) -> Settings:
    """The settings a model works well with: those the catalogue records for a known model (its
    `settings`, or flags in its `note` in older catalogues), else pixels' defaults; the bundled demo
    model and other pixel-space models get a short, gentle, unguided edit."""
    known = next((m for m in KNOWN_MODELS if model in (m.alias, m.repo)), None)
    base = Settings(steps=100, strength=0.2, guidance=1.0) if family == "pixel" or model == "demo" else Settings()
    recorded = dict(getattr(known, "settings", None) or {})
    if not recorded and known is not None:  # older catalogues: "--steps 4 --guidance 0" in the note
        steps, guidance = re.search(r"--steps (\d+)", known.note), re.search(r"--guidance ([\d.]+)", known.note)
        recorded = {**({"num_inference_steps": int(steps[1])} if steps else {}),
                    **({"guidance_scale": float(guidance[1])} if guidance else {})}
    fields_ = {"num_inference_steps": "steps", "strength": "strength", "guidance_scale": "guidance",
               "scheduler": "scheduler", "eta": "eta"}
    values = {fields_[k]: v for k, v in recorded.items() if k in fields_}
    return replace(base, **values)


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
    """The keyword arguments of `EditSession.apply` for these fields, validated: bad values raise
    `InputError` naming the field, before any model work."""
    if not takes_prompt and (settings.prompt or settings.negative_prompt):
        raise InputError("prompt: this model is unconditional and takes no text; leave the prompts empty")
    kwargs = {
        "prompt": settings.prompt,
        "num_inference_steps": _integer("steps", settings.steps, 1, 10_000),
        "strength": settings.strength, "guidance_scale": settings.guidance,
        "scheduler": None if settings.scheduler == "default" else settings.scheduler, "mode": settings.mode,
        "crop": "auto" if settings.crop_auto else None,
        "crop_margin": _integer("crop margin", settings.crop_margin, 0, 8192),
        "skip_steps": settings.skip_steps, "eta": settings.eta,
    }
    for name, value in (("strength", settings.strength), ("guidance", settings.guidance), ("eta", settings.eta)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{name}: expected a number, got {value!r}")
    if settings.negative_prompt:  # an empty field means no negative prompt (the model's own unconditional input)
        kwargs["negative_prompt"] = settings.negative_prompt
    EditSettings(**kwargs).validate()
    kwargs["seed"] = seed_value(settings.seed)
    return kwargs


def from_metadata(metadata: Any) -> Settings:
    """The studio's fields from a result's `pixels` metadata (what `EditResult.metadata` records)."""
    if not isinstance(metadata, dict):
        raise InputError("settings PNG: its pixels metadata is not a JSON object")
    defaults = Settings()
    known = {
        "prompt": "prompt", "negative_prompt": "negative_prompt", "num_inference_steps": "steps",
        "strength": "strength", "guidance_scale": "guidance", "seed": "seed", "scheduler": "scheduler",
        "mode": "mode", "crop_margin": "crop_margin", "skip_steps": "skip_steps", "eta": "eta",
    }
    values = asdict(defaults)
    for key, field in known.items():
        if metadata.get(key) is not None:
            values[field] = metadata[key]
    values["crop_auto"] = metadata.get("crop") == "auto"
    restored = Settings(**values)
    if restored.scheduler not in SCHEDULERS:
        raise InputError(f"settings PNG: scheduler {restored.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    edit_kwargs(restored, takes_prompt=True)  # every value checked as if typed into the fields
    return restored


def read_png_settings(path: str, max_pixels: int) -> Settings:
    """The settings of a PNG that pixels wrote (its `pixels` text chunk), checked like typed values.

    The file is first read as any input is (format allow-list, size limit), then its text chunks."""
    load_image(path, name="settings PNG", max_pixels=max_pixels)
    try:
        with Image.open(path, formats=["PNG"]) as image:
            text = image.info.get("pixels")
    except (OSError, ValueError):  # another format (load_image accepted it) or a text chunk Pillow refuses
        text = None
    if not isinstance(text, str):
        raise InputError("settings PNG: it has no pixels metadata (only PNGs that pixels wrote carry it)")
    if len(text) > METADATA_LIMIT:
        raise InputError(f"settings PNG: its pixels metadata is longer than {METADATA_LIMIT:,} characters")
    try:
        metadata = json.loads(text)
    except ValueError:
        raise InputError("settings PNG: its pixels metadata is not valid JSON") from None
    return from_metadata(metadata)


__all__ = ["MODES", "SCHEDULERS", "SKIP_STEPS", "Settings", "edit_kwargs", "from_metadata", "read_png_settings",
           "recommended", "seed_value"]
