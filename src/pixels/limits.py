"""Limits checked before any model work: input sizes and setting ranges (the memory check is
`pixels.models.estimate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import InputError

MAX_PIXELS = 64 * 1024 * 1024  # default input limit: 2^26 pixels (decompression bombs, absurd sizes)
MAX_STEPS = 10_000  # no released scheduler is trained with more timesteps than this
GUIDANCE_RANGE = (0.0, 100.0)  # classifier-free guidance scales in use lie far inside this
MAX_TEXT = 10_000  # characters of a prompt; text encoders read at most a few hundred tokens
MAX_MARGIN = 8192  # crop margin, pixels
MAX_CROP_RESIZE = 16384  # longest side of a resized crop, pixels
MAX_WEIGHT = 100.0  # prompt-image weight
MAX_EXEMPLARS = 64  # exemplars in one edit: each is a full-frame canvas, map and latent
MAX_REGIONS = 16  # regions with text of their own in one edit: each adds its tokens to every cross-attention
MAX_LORAS = 16  # LoRAs one region sets scales for
LORA_SCALE = (-4.0, 4.0)  # a LoRA's scale, for the edit or a region


@dataclass(frozen=True)
class Limits:
    """What an editor refuses before doing any work."""

    max_pixels: int = MAX_PIXELS  # largest image (source, exemplar, map, box, diffused crop) in pixels
    check_memory: bool = True  # refuse edits whose estimated peak memory exceeds what the device has free

    def __post_init__(self) -> None:
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise InputError(f"expected an integer >= 1, got {self.max_pixels!r}", param="max_pixels")


def finite(value: Any) -> float | None:
    """`value` as a float if it is a real, finite number (int, float or a numpy scalar; not a bool), else None."""
    import math
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        result = float(value)
    except (OverflowError, ValueError, TypeError):
        return None
    return result if math.isfinite(result) else None


def megapixels(value: float) -> int:
    """A limit given in megapixels (10^6 pixels) as a pixel count."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 10_000:
        raise InputError(f"expected a number in (0, 10000], got {value!r}", param="max_megapixels")
    return max(1, int(value * 1_000_000))
