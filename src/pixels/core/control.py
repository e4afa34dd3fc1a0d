"""ControlNet guidance for an edit: which control image, how strong, and over which part of the schedule.

The control image is given (`kind="image"`) or computed from the source by a kind that needs no extra
model (`kind="canny"`: OpenCV's Canny edges). It is prepared like the source: cut to the crop, resized with
it, padded to the model's size multiple, so that it lines up with the latents. The residuals are computed
inside the adapter's model call (`Adapter.predict`), so the denoising loop stays the same loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError, short
from ..limits import finite
from .frame import ImageLike

KINDS = ("canny", "image")


@dataclass(frozen=True)
class Control:
    """ControlNet guidance: `kind` "canny" (edges of the source) or "image" (`image`, a control image made
    elsewhere: depth, pose, edges...), its `scale`, and the fractions of the schedule it acts over."""

    kind: str = "canny"
    image: ImageLike | None = None  # kind="image": the control image (resized to the source's size)
    scale: float = 1.0  # controlnet_conditioning_scale; 0 leaves the edit as without ControlNet
    start: float = 0.0  # control_guidance_start: the share of the schedule before the control acts
    end: float = 1.0  # control_guidance_end: the share after which it stops

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown kind {short(self.kind)}; choose one of {', '.join(KINDS)}", param="control")
        if (self.kind == "image") != (self.image is not None):
            raise InputError("kind 'image' takes an image, and only it does", param="control.image")
        for name in ("scale", "start", "end"):
            value = finite(getattr(self, name))
            if value is None or not (0 <= value <= (10 if name == "scale" else 1)):
                raise InputError(f"expected a number in [0, {10 if name == 'scale' else 1}], got"
                                 f" {short(getattr(self, name))}", param=f"control.{name}")
        if self.start >= self.end:
            raise InputError(f"start ({self.start}) must come before end ({self.end})", param="control.start")

    def label(self) -> dict[str, Any]:
        image = self.image if self.image is None or isinstance(self.image, str) else f"<{type(self.image).__name__}>"
        return {"kind": self.kind, "image": None if image is None else str(image), "scale": self.scale,
                "start": self.start, "end": self.end}


@dataclass
class ControlInput:
    """What a model call needs to add ControlNet residuals: the control image as a tensor (B, 3, H, W) in
    [0, 1] (batched like the latents for guidance) and the conditioning scale at each timestep."""

    image: torch.Tensor
    scales: dict[float, float] = field(default_factory=dict)  # timestep -> scale (0 where it does not act)

    def scale_at(self, t: torch.Tensor) -> float:
        return self.scales.get(float(t), 0.0)


def control_input(picture: np.ndarray, control: Control, timesteps: torch.Tensor, batch: int, device, dtype
                  ) -> ControlInput:
    """The control image (padded frame (H, W, 3) uint8) for the model, and its scale per timestep: diffusers'
    `controlnet_keep`, i.e. it acts at step i of n while start <= i/n and (i+1)/n <= end."""
    tensor = torch.from_numpy(picture.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    n = len(timesteps)
    scales = {float(t): control.scale * (1.0 - float(i / n < control.start or (i + 1) / n > control.end))
              for i, t in enumerate(timesteps)}
    return ControlInput(tensor.repeat(batch, 1, 1, 1).to(device, dtype), scales)
