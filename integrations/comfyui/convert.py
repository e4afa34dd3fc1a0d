"""ComfyUI's IMAGE and MASK tensors to and from what pixels' functions take, with clear errors on bad input.

IMAGE is a (B, H, W, C) float tensor in [0, 1]; MASK is (B, H, W) or (H, W), float in [0, 1]. pixels works on
PIL images, 8-bit arrays and float64 (H, W) maps.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from pixels.errors import InputError


def one_image(image: torch.Tensor, name: str) -> torch.Tensor:
    """The one (H, W, C) picture of an IMAGE input (a batch of one)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputError(f"expected an IMAGE of shape (batch, height, width, channels), got {shape}", param=name)
    if image.shape[0] != 1:
        raise InputError(f"expected one image, got a batch of {image.shape[0]}", param=name)
    return image[0]


def to_pil(image: torch.Tensor, name: str) -> Image.Image:
    """An IMAGE input as an RGB PIL image (8 bits a channel, rounded)."""
    picture = one_image(image, name)[..., :3]
    if picture.shape[-1] == 1:
        picture = picture.expand(-1, -1, 3)
    array = (picture.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(array, "RGB")


def from_pil(picture: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a (1, H, W, 3) IMAGE."""
    return torch.from_numpy(np.asarray(picture.convert("RGB"), np.float32) / 255.0)[None]


def to_map(mask: torch.Tensor, name: str) -> np.ndarray:
    """A MASK input (one mask) as a float64 (H, W) map, checked to be finite and within [0, 1]."""
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3) or mask.numel() == 0:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InputError(f"expected a MASK of shape (height, width) or (batch, height, width), got {shape}",
                         param=name)
    if mask.ndim == 3:
        if mask.shape[0] != 1:
            raise InputError(f"expected one mask, got a batch of {mask.shape[0]}", param=name)
        mask = mask[0]
    values = mask.detach().to(torch.float64).cpu().numpy()
    if not np.isfinite(values).all():
        raise InputError("the mask contains NaN or infinite values", param=name)
    if values.min() < 0 or values.max() > 1:
        raise InputError(f"mask values must lie in [0, 1], got min {values.min():g}, max {values.max():g}",
                         param=name)
    return values


def from_map(values: np.ndarray) -> torch.Tensor:
    """A float (H, W) map as a (1, H, W) float32 MASK."""
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None]


def size_text(size: tuple[int, int]) -> str:
    """(W, H) as 'WxH'."""
    return f"{size[0]}x{size[1]}"
