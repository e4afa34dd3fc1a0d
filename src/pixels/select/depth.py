"""Depth -> strength: Depth Anything V2's relative depth of a photo, and the ramp that turns it into a map.

Depth Anything predicts relative inverse depth (larger = nearer), known only up to scale and shift, so pixels
uses it as an order: `relative_depth` rescales it to [0, 1] over the photo, 0 at the nearest pixel and 1 at the
farthest, and `depth_strength` maps that fraction through a ramp between `near` and `far`.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import NonFiniteError
from .frame import IMAGENET_MEAN, IMAGENET_STD
from .models import LoadedModel


def depth_strength(depth: np.ndarray, near: float, far: float, direction: str = "far", gamma: float = 1.0
                   ) -> np.ndarray:
    """Strength (H, W) from relative depth `depth` (H, W) in [0, 1] (0 nearest, 1 farthest).

    direction "far": 0 up to `near`, rising linearly to 1 at `far`, 1 beyond (the background changes most);
    "near": 1 up to `near`, falling to 0 at `far`. The ramp is raised to `gamma` (0 and 1 stay as they are).
    With near == far the ramp is a step: "far" selects depth >= far, "near" selects depth <= near."""
    d = np.asarray(depth, np.float64)
    if far > near:
        ramp = np.clip((d - near) / (far - near), 0.0, 1.0)
    else:
        ramp = (d >= far).astype(np.float64)
    if direction == "near":
        ramp = 1.0 - ramp if far > near else (d <= near).astype(np.float64)
    return ramp if gamma == 1.0 else ramp ** gamma


def relative_depth(disparity: np.ndarray) -> np.ndarray:
    """A depth model's relative inverse depth (larger = nearer) as a fraction of the photo's depth range: 0 at the
    nearest pixel, 1 at the farthest (all 0 for a flat prediction)."""
    d = np.asarray(disparity, np.float64)
    low, high = float(d.min()), float(d.max())
    if not high > low:
        return np.zeros_like(d)
    return (high - d) / (high - low)


def _multiple(value: float, multiple: int) -> int:
    """`value` rounded to a multiple of `multiple` (at least one), as the DPT processor constrains sizes."""
    return max(multiple, int(round(value / multiple)) * multiple)


def input_size(loaded: LoadedModel, width: int, height: int) -> tuple[int, int]:
    """(W, H) of the depth model's input: the photo scaled as little as possible to reach the processor's size
    on one side, keeping its aspect ratio, each side a multiple of the patch size (DPT's processor)."""
    pre = loaded.json_file("preprocessor_config.json")
    size = pre.get("size") if isinstance(pre.get("size"), dict) else {}
    out_h, out_w = int(size.get("height", 518)), int(size.get("width", 518))
    multiple = int(pre.get("ensure_multiple_of", getattr(loaded.model.config, "patch_size", 14)))
    scale_h, scale_w = out_h / height, out_w / width
    if pre.get("keep_aspect_ratio", True):
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
    return _multiple(scale_w * width, multiple), _multiple(scale_h * height, multiple)


@torch.no_grad()
def predict_disparity(loaded: LoadedModel, photo: Image.Image) -> np.ndarray:
    """The depth model's relative inverse depth at the photo's size (H, W), bicubic as its processor brings it
    back."""
    pre = loaded.json_file("preprocessor_config.json")
    mean, std = pre.get("image_mean", IMAGENET_MEAN), pre.get("image_std", IMAGENET_STD)
    rescale = float(pre.get("rescale_factor", 1 / 255))
    width, height = input_size(loaded, photo.width, photo.height)
    resized = photo.convert("RGB").resize((width, height), Image.BICUBIC)
    values = (np.asarray(resized, np.float32) * np.float32(rescale) - np.asarray(mean, np.float32)) \
        / np.asarray(std, np.float32)
    pixels = torch.from_numpy(values).permute(2, 0, 1)[None].contiguous().to(loaded.device, loaded.dtype)
    predicted = loaded.model(pixel_values=pixels).predicted_depth.float().cpu()
    predicted = predicted.reshape(1, 1, *predicted.shape[-2:])
    predicted = torch.nn.functional.interpolate(predicted, (photo.height, photo.width), mode="bicubic",
                                                align_corners=False)
    out = predicted[0, 0].numpy().astype(np.float64)
    if not np.isfinite(out).all():
        raise NonFiniteError(f"{loaded.name!r} predicted NaN or infinite depth at {loaded.dtype}; try dtype='fp32'")
    return out
