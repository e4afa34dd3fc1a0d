"""An edit's pictures as the algorithm uses them: the source, the exemplars placed on its canvas and their
strength maps, cut to a crop when only part of the frame is diffused; and the conversions between pictures
and the tensors the models take."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Union

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]  # what every image argument accepts


class RegionText(NamedTuple):
    """What one exemplar's or region's map conditions of its own: its text (None: the edit's there) and its
    LoRA scales ((LoRA name, scale) pairs; a LoRA it does not name keeps the edit's scale there)."""

    prompt: str | None
    negative: str | None
    map: np.ndarray  # (H, W) in [0, 1]: where it applies, gray blending with the edit's own
    loras: tuple[tuple[str | int, float], ...] = ()

    def on(self, m: np.ndarray) -> RegionText:
        """The same conditioning on another map (a crop, a resized or padded map)."""
        return self._replace(map=m)


@dataclass
class Inputs:
    """Every image and map of one edit, loaded, checked and placed on the source's canvas."""

    source: Image.Image
    exemplars: list[Image.Image]
    exemplar_maps: list[np.ndarray]  # strength, (H, W) float64 each
    strength: np.ndarray  # combined strength, (H, W) float64
    labels: dict[str, Any]
    notes: list[str]
    conditions: list[tuple[Image.Image, float, int]] = field(default_factory=list)  # (exemplar, weight, index)
    control: Image.Image | None = None  # a ControlNet's control image, on the source's canvas
    texts: list[RegionText] = field(default_factory=list)  # per exemplar or region with text or LoRA scales of
    # its own


def crop_inputs(inputs: Inputs, box: tuple[int, int, int, int]) -> Inputs:
    """The part of every image and map inside `box` (x, y, w, h); image prompts are left whole."""
    x, y, w, h = box

    def cut(picture: Image.Image) -> Image.Image:
        return picture.crop((x, y, x + w, y + h))

    return Inputs(
        cut(inputs.source), [cut(e) for e in inputs.exemplars],
        [m[y:y + h, x:x + w] for m in inputs.exemplar_maps], inputs.strength[y:y + h, x:x + w],
        inputs.labels, inputs.notes, inputs.conditions, None if inputs.control is None else cut(inputs.control),
        [text.on(text.map[y:y + h, x:x + w]) for text in inputs.texts],
    )


def pad(array: np.ndarray, multiple: int) -> np.ndarray:
    """Edge-pad (H, W, ...) at the bottom and right up to a multiple: no border pixel is cropped away."""
    h, w = array.shape[:2]
    pad = ((0, -h % multiple), (0, -w % multiple)) + ((0, 0),) * (array.ndim - 2)
    return np.pad(array, pad, mode="edge")


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (1, 3, H, W) float32 in [-1, 1], as diffusers' image processor does."""
    import torch

    array = np.asarray(image.convert("RGB"), np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None] * 2.0 - 1.0


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) in [-1, 1] -> RGB PIL image, rounding as diffusers' postprocess does."""
    array = (tensor[0].float() / 2 + 0.5).clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray((array * 255).round().astype(np.uint8))
