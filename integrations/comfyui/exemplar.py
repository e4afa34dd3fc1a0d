"""PIXELS Exemplar: an exemplar image placed on the source's canvas and encoded with the VAE.

Placement is pixels' own (`pixels.core.placement`): into a box with a fit, or "auto": into the bounding box of
its region (`region_box`), or aligned as it is when it already has the source's size. The canvas outside the
placed exemplar is the source, and the whole canvas is encoded, as pixels encodes exemplars by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from comfy_api.latest import io

from pixels.core.placement import FITS, check_box, place, region_box
from pixels.errors import InputError
from pixels.inputs.images import load_map

from .convert import from_pil, size_text, to_map, to_pil

Exemplars = io.Custom("PIXELS_EXEMPLARS")
PLACEMENTS = ("auto", "box")


@dataclass(frozen=True)
class Exemplar:
    """One placed exemplar: its latent and its region, for PIXELS Surgery."""

    latent: torch.Tensor  # (1, C, h, w): the VAE latent of the canvas (the source outside the exemplar)
    strength: np.ndarray  # (H, W) float64: its strength map on the source (1 = grafted in paper mode)
    size: tuple[int, int]  # (W, H) of the source it was placed on
    box: tuple[int, int, int, int] | None  # where it was placed; None: aligned with the source


def check_frame(size: tuple[int, int], factor: int, name: str) -> None:
    """Refuse a picture whose sides are not multiples of the VAE's factor (ComfyUI's encoder would crop it)."""
    if size[0] % factor or size[1] % factor:
        raise InputError(f"{size_text(size)} is not a multiple of {factor} pixels on each side (the VAE's factor):"
                         " scale or crop it first, e.g. with ImageScale or ImageCrop", param=name)


def make_exemplar(image, source, vae, placement: str, box, fit: str, alpha=None, region=None) -> Exemplar:
    """Place `image` on `source` (IMAGEs) as pixels places exemplars and encode the canvas with `vae`."""
    picture, frame = to_pil(image, "image"), to_pil(source, "source")
    size = frame.size
    check_frame(size, int(vae.spacial_compression_encode()), "source")
    if placement not in PLACEMENTS:
        raise InputError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}", param="placement")
    cover = None if alpha is None else to_map(alpha, "alpha")
    if cover is not None and cover.shape != (picture.height, picture.width):
        raise InputError(f"the alpha mask is {size_text(cover.shape[::-1])} but the exemplar image is"
                         f" {size_text(picture.size)}: give the exemplar's own mask", param="alpha")
    m = None if region is None else to_map(region, "region")
    if m is not None:
        if m.shape != (size[1], size[0]):
            raise InputError(f"the region mask is {size_text(m.shape[::-1])} but the source is {size_text(size)}",
                             param="region")
        if not m.any():
            raise InputError("the region mask is 0 everywhere: paint where the exemplar goes", param="region")
    if placement == "box":
        where = check_box(box, "box", size)
    elif picture.size != size:
        if m is None:
            raise InputError(f"a {size_text(picture.size)} exemplar on a {size_text(size)} source: connect a region"
                             " mask to fit it into, or choose placement 'box'", param="placement")
        where = region_box(m)
    else:
        where = None
    if where is not None:
        picture, cover = place(frame, picture, cover, where, fit)
    if m is None:
        if cover is None:
            raise InputError("an exemplar of the source's size with no alpha and no region: connect a region"
                             " mask or an alpha mask, or choose placement 'box'", param="region")
        # the covered area as an 8-bit map, as pixels reads an exemplar's coverage into its region
        m, _ = load_map((np.clip(cover, 0, 1) * 255).round().astype(np.uint8), name="exemplar region", size=size)
        if not m.any():
            raise InputError("the exemplar covers nothing: its alpha mask is 0 everywhere", param="alpha")
    latent = vae.encode(from_pil(picture)[..., :3])
    return Exemplar(latent.detach(), m, size, where)


class PixelsExemplar(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PixelsExemplar",
            display_name="PIXELS Exemplar",
            category="pixels",
            description="Place an exemplar image on the source and encode it: in paper mode it is grafted where"
                        " its region is exactly 1. Chain several through 'exemplars'.",
            inputs=[
                io.Image.Input("image", tooltip="the exemplar"),
                io.Image.Input("source", tooltip="the photo to edit (its size is the canvas)"),
                io.Vae.Input("vae"),
                io.Combo.Input("placement", options=list(PLACEMENTS), default="auto",
                               tooltip="auto: into the bounding box of the region mask, or aligned when the exemplar"
                                       " has the source's size; box: into x, y, width, height"),
                io.Int.Input("x", default=0, min=-16384, max=16384),
                io.Int.Input("y", default=0, min=-16384, max=16384),
                io.Int.Input("width", default=256, min=1, max=16384),
                io.Int.Input("height", default=256, min=1, max=16384),
                io.Combo.Input("fit", options=list(FITS), default="cover"),
                io.Mask.Input("alpha", optional=True, tooltip="the exemplar's own alpha (exemplar-sized)"),
                io.Mask.Input("region", optional=True,
                              tooltip="where it goes on the source (source-sized strength map); default: the area"
                                      " it covers"),
                Exemplars.Input("exemplars", optional=True, tooltip="exemplars placed before this one"),
            ],
            outputs=[Exemplars.Output(display_name="exemplars")],
        )

    @classmethod
    def execute(cls, image, source, vae, placement, x, y, width, height, fit, alpha=None, region=None,
                exemplars=None) -> io.NodeOutput:
        exemplar = make_exemplar(image, source, vae, placement, (x, y, width, height), fit, alpha, region)
        return io.NodeOutput(tuple(exemplars or ()) + (exemplar,))
