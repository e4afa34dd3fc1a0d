"""Image prompts: pictures mixed with the text prompt, each with a weight (Kandinsky-style conditioning)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import InputError, short
from ..limits import MAX_PIXELS, MAX_WEIGHT
from .images import ImageLike, load_image


def load_prompt_images(prompt_images: Sequence | None, max_pixels: int = MAX_PIXELS) -> list[tuple[Image.Image, float]]:
    """Check and load `[(image, weight), ...]` (a bare image means weight 1) into RGB images and floats."""
    if prompt_images is None:
        return []
    if isinstance(prompt_images, (str, bytes, Image.Image, np.ndarray)) or not isinstance(prompt_images, Sequence):
        raise InputError(
            f"expected a list of (image, weight) pairs, got {type(prompt_images).__name__}", param="prompt_images"
        )
    loaded = []
    for k, item in enumerate(prompt_images):
        name = f"prompt_images[{k}]"
        image: ImageLike
        if isinstance(item, tuple):
            if len(item) != 2:
                raise InputError(f"expected (image, weight), got a tuple of {len(item)}", param=name)
            image, weight = item
        else:
            image, weight = item, 1.0
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= MAX_WEIGHT:
            raise InputError(f"the weight must be a number in (0, {MAX_WEIGHT:g}], got {short(weight)}", param=name)
        picture, _ = load_image(image, name=name, max_pixels=max_pixels)
        loaded.append((picture, float(weight)))
    return loaded


def prompt_image_labels(prompt_images: Sequence | None, label) -> list[dict]:
    """What the metadata records of `prompt_images` as the caller gave them (checked by `load_prompt_images`):
    each image's label (`label(image)`, a path or a type name) and weight; a bare image has weight 1."""
    pairs = [item if isinstance(item, tuple) else (item, 1.0) for item in (prompt_images or [])]
    return [{"image": label(image), "weight": float(weight)} for image, weight in pairs]


def parse_prompt_image(text: str) -> tuple[str, float]:
    """`PATH[:WEIGHT]` from the command line (a path that exists as written wins over a weight suffix)."""
    import os

    path, sep, weight = text.rpartition(":")
    if not sep or os.path.exists(text):
        return text, 1.0
    try:
        return path, float(weight)
    except ValueError:
        return text, 1.0
