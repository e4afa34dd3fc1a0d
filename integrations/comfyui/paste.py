"""PIXELS Paste Back: the pixels of strength 0 copied exactly from the source after decoding."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from pixels.core.crop import resize_map
from pixels.errors import InputError

from .convert import size_text, to_map


def paste_back(image: torch.Tensor, source: torch.Tensor, strength) -> torch.Tensor:
    """`image` (B, H, W, C) with every pixel of strength 0 taken from `source` (1 or B images of its size).
    A strength MASK of another size is resized to the image first (bilinear; pixels' `resize_map`)."""
    for name, value in (("image", image), ("source", source)):
        if not isinstance(value, torch.Tensor) or value.ndim != 4:
            raise InputError("expected an IMAGE (batch, height, width, channels)", param=name)
    if image.shape[1:] != source.shape[1:]:
        raise InputError(
            f"the decoded image is {size_text((image.shape[2], image.shape[1]))} with {image.shape[3]} channels,"
            f" the source {size_text((source.shape[2], source.shape[1]))} with {source.shape[3]}: decode the latent"
            " made from this source", param="source")
    if source.shape[0] not in (1, image.shape[0]):
        raise InputError(f"a batch of {source.shape[0]} sources for {image.shape[0]} images", param="source")
    m = to_map(strength, "strength")
    height, width = image.shape[1:3]
    if m.shape != (height, width):
        m = resize_map(m, (width, height))
    keep = torch.from_numpy(m == 0).to(image.device)[None, ..., None]
    return torch.where(keep, source.to(image), image)


class PixelsPasteBack(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PixelsPasteBack",
            display_name="PIXELS Paste Back",
            category="pixels",
            description="Copy every pixel of strength 0 from the source, bit for bit (the VAE changes them"
                        " slightly otherwise).",
            inputs=[io.Image.Input("image", tooltip="the decoded edit"), io.Image.Input("source"),
                    io.Mask.Input("strength", tooltip="0 = keep exactly")],
            outputs=[io.Image.Output(display_name="image")],
        )

    @classmethod
    def execute(cls, image, source, strength) -> io.NodeOutput:
        return io.NodeOutput(paste_back(image, source, strength))
