"""Photos to start from without uploading: the two that ship with pixels, and scikit-image's sample
photos when scikit-image is installed (offline either way)."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
from PIL import Image

from pixels import InputError
from pixels.demo import asset

SAMPLE_SIDE = 256  # scikit-image's photos are downscaled to this longer side: the demo model likes small pictures


def _sample(name: str) -> Callable[[], Image.Image]:
    def load() -> Image.Image:
        from skimage import data

        picture = Image.fromarray(np.asarray(getattr(data, name)())).convert("RGB")
        picture.thumbnail((SAMPLE_SIDE, SAMPLE_SIDE), Image.LANCZOS)
        return picture

    return load


def catalogue() -> dict[str, Callable[[], Image.Image]]:
    """Name shown in the studio -> a function returning the photo (loaded only when chosen)."""
    photos: dict[str, Callable[[], Image.Image]] = {
        "rocket (bundled, 192x128)": lambda: asset("rocket.png"),
        "moon (bundled)": lambda: asset("moon.png"),
    }
    if importlib.util.find_spec("skimage") is not None:
        for name in ("astronaut", "coffee", "chelsea"):
            photos[f"{name} (scikit-image, {SAMPLE_SIDE} px)"] = _sample(name)
    return photos


def bundled(name: str) -> Image.Image:
    photos = catalogue()
    if name not in photos:
        raise InputError(f"photo: unknown sample {name!r}; choose one of {', '.join(photos)}")
    return photos[name]()


__all__ = ["bundled", "catalogue"]
