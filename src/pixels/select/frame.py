"""A photo's place in a segmentation model's square input, and the way back.

SAM resizes the photo so that its longest side fills the square and pads the rest (bottom and right) with
zeros: `fit="pad"`. SAM 2, EdgeTAM and SAM 3 stretch it to the square: `fit="stretch"`. Points and boxes in
photo pixels are scaled as the transformers processors scale them, and low-resolution mask logits come back at
the photo's size as their `post_process_masks` brings them: bilinear, without corner alignment, the padding cut
off first.

pixels prepares the pixels itself (PIL, bilinear with antialiasing), because the transformers image processors
of SAM 2 and SAM 3 need torchvision; the normalisation is the model's own (its preprocessor_config.json), or
the family's published one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # SAM, SAM 2, EdgeTAM
HALF = (0.5, 0.5, 0.5)  # SAM 3 and its tracker


@dataclass(frozen=True)
class Frame:
    """Where a photo of `width` x `height` pixels lies in a model input of `side` x `side` pixels."""

    width: int
    height: int
    side: int
    fit: str = "stretch"  # or "pad"

    @property
    def resized(self) -> tuple[int, int]:
        """(height, width) of the photo inside the input: the whole square when stretched; the longest side
        fitted, rounded as SAM's processor rounds, when padded."""
        if self.fit == "stretch":
            return self.side, self.side
        scale = self.side / max(self.height, self.width)
        return int(self.height * scale + 0.5), int(self.width * scale + 0.5)

    def points(self, xy) -> np.ndarray:
        """(N, 2) photo coordinates (x, y) in the input's coordinates."""
        new_h, new_w = self.resized
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        return xy * np.array([new_w / self.width, new_h / self.height])

    def boxes(self, xyxy) -> np.ndarray:
        """(N, 4) photo boxes (x0, y0, x1, y1) in the input's coordinates."""
        return self.points(np.asarray(xyxy, np.float64).reshape(-1, 2)).reshape(-1, 4)

    def pixels(self, photo: Image.Image, mean=IMAGENET_MEAN, std=IMAGENET_STD, rescale: float = 1 / 255) -> torch.Tensor:
        """The photo as the model's (1, 3, side, side) float32 input."""
        new_h, new_w = self.resized
        resized = photo.convert("RGB").resize((new_w, new_h), Image.BILINEAR)
        values = (np.asarray(resized, np.float32) * np.float32(rescale) - np.asarray(mean, np.float32)) \
            / np.asarray(std, np.float32)
        out = np.zeros((self.side, self.side, 3), np.float32)
        out[:new_h, :new_w] = values
        return torch.from_numpy(out).permute(2, 0, 1)[None].contiguous()

    def masks(self, low: torch.Tensor) -> torch.Tensor:
        """Low-resolution mask logits (..., h, w) of the input square at the photo's size (..., height, width)."""
        shape = low.shape
        flat = low.reshape(1, -1, *shape[-2:]).float()
        if self.fit == "pad":
            new_h, new_w = self.resized
            flat = torch.nn.functional.interpolate(flat, (self.side, self.side), mode="bilinear", align_corners=False)
            flat = flat[..., :new_h, :new_w]
        flat = torch.nn.functional.interpolate(flat, (self.height, self.width), mode="bilinear", align_corners=False)
        return flat.reshape(*shape[:-2], self.height, self.width)
