"""Masks on a denoiser's layer grids: a (R, h, w) mask resized to the positions of any layer of a UNet that
halves the frame (rounding up) at each level. Model-free: the regional layers of pixels and of its ComfyUI nodes
share it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def layer_grid(masks: torch.Tensor, positions: int) -> torch.Tensor:
    """The masks (R, h, w) resized to the grid of a layer with `positions` query positions: the UNet halves
    the latent frame (rounding up) at each level, so the grid is the frame divided by the first power of two
    that gives that many positions. Averaging (area) keeps a position fully outside a region exactly 0."""
    _, h, w = masks.shape
    for level in range(8):
        gh, gw = math.ceil(h / 2 ** level), math.ceil(w / 2 ** level)
        if gh * gw == positions:
            break
    else:
        raise ValueError(f"no grid of {positions} positions for a {h}x{w} latent frame")
    if (gh, gw) == (h, w):
        return masks.reshape(masks.shape[0], positions)
    resized = F.adaptive_avg_pool2d(masks[None].float(), (gh, gw))[0]
    return resized.reshape(masks.shape[0], positions)


__all__ = ["layer_grid"]
