"""PIXELS Surgery: the starting latent with the exemplars grafted in, and a MODEL that releases pixels by
pixels' rule, for ComfyUI's own KSampler or SamplerCustom.

The graft is pixels' own (`pixels.core.loop.graft_exemplars`, as `pixels.core.prepare.make_surgery` calls
it): each exemplar's keep map 1 - m is resized to the latent as the reference resizes it, the exemplar's latents
replace the source where it is exactly 0, several exemplars are merged, and in blend mode the rest of the source is
mixed with them. ComfyUI pins the not yet released pixels to the latent it samples, noised: that latent is
the grafted one, so the pixels are pinned to exactly what pixels' loop pins them to.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io

from pixels.core.loop import graft_exemplars
from pixels.core.release import to_latent_map
from pixels.errors import InputError
from pixels.inputs.maps import combine

from .convert import from_map, size_text, to_map
from .exemplar import Exemplar, Exemplars
from .release import RELEASE_HELP, RELEASES, ReleaseRule

MODES = ("paper", "blend")


def graft(source: torch.Tensor, exemplars: list[Exemplar], mode: str) -> torch.Tensor:
    """The source latents (B, C, h, w) with the exemplars' latents grafted (and, in blend mode, mixed) in, by
    pixels' own surgery (`graft_exemplars`); ComfyUI draws the noise itself, so the noises given are zeros."""
    size = tuple(source.shape[-2:])
    keeps = [to_latent_map(1.0 - e.strength, size).to(source.device) for e in exemplars]
    latents = [e.latent.to(source) for e in exemplars]
    zeros = [torch.zeros_like(z) for z in latents]
    base, _, grafted, _, where = graft_exemplars(source, torch.zeros_like(source), keeps, latents, zeros, mode)
    return torch.where(where, grafted, base)


def check_fit(shape: tuple[int, int], latent: torch.Tensor, name: str) -> None:
    """Refuse an (H, W) map that is not the latent's picture size (the same whole factor on both sides)."""
    (height, width), (h, w) = shape, latent.shape[-2:]
    if height % h or width % w or height // h != width // w:
        raise InputError(f"{size_text((width, height))} does not match the {w}x{h} latent (the picture it was"
                         f" encoded from is {w}x{h} times the VAE's factor, e.g. {w * 8}x{h * 8})", param=name)


def surgery(model, latent: dict, mode: str, release: str, strength=None, exemplars=None):
    """(patched MODEL, LATENT to sample with its noise_mask, combined strength MASK)."""
    if mode not in MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}", param="mode")
    if release not in RELEASES:
        raise InputError(f"unknown release {release!r}; choose one of {', '.join(RELEASES)}", param="release")
    source = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(source, torch.Tensor) or source.ndim != 4:
        raise InputError("expected an image LATENT (batch, channels, height, width)", param="latent")
    exemplars = list(exemplars or ())
    maps = [e.strength for e in exemplars]
    for k, e in enumerate(exemplars):
        check_fit(e.strength.shape, source, f"exemplars[{k}]")
        if tuple(e.latent.shape[1:]) != tuple(source.shape[1:]):
            raise InputError(f"its latent has shape {tuple(e.latent.shape[1:])}, the source latent"
                             f" {tuple(source.shape[1:])}: encode both with the same VAE", param=f"exemplars[{k}]")
    if strength is not None:
        m = to_map(strength, "strength")
        check_fit(m.shape, source, "strength")
        maps.append(m)
    if not maps:
        raise InputError("nothing to edit: connect a strength mask or at least one exemplar", param="strength")
    shapes = {m.shape for m in maps}
    if len(shapes) > 1:
        sizes = ", ".join(size_text(s[::-1]) for s in sorted(shapes))
        raise InputError(f"the strength mask and the exemplars were made for different sizes: {sizes}",
                         param="strength")
    combined = combine(maps, "max") if len(maps) > 1 else maps[0]
    if not combined.any():
        raise InputError("the strength mask is 0 everywhere: nothing would change", param="strength")
    keep = to_latent_map(1.0 - combined, tuple(source.shape[-2:]))
    samples = graft(source, exemplars, mode) if exemplars else source.clone()
    out = {**latent, "samples": samples, "noise_mask": from_map(combined)[None]}
    patched = model.clone()
    patched.set_model_denoise_mask_function(ReleaseRule(keep, 1 if release == "reference" else 0))
    return patched, out, from_map(combined)


class PixelsSurgery(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PixelsSurgery",
            display_name="PIXELS Surgery",
            category="pixels",
            description="Graft the exemplars into the source latent and patch the model with PIXELS' release"
                        " rule (a pixel of strength s is pinned to the source for the first (1 - s) K of K"
                        " steps). Sample the returned LATENT with the returned MODEL in any KSampler.",
            inputs=[
                io.Model.Input("model"),
                io.Latent.Input("latent", tooltip="the source, VAE-encoded"),
                io.Combo.Input("mode", options=list(MODES), default="paper",
                               tooltip="paper: the reference rule; blend: gray pixels also take in the exemplar"),
                io.Combo.Input("release", options=list(RELEASES), default="reference", tooltip=RELEASE_HELP),
                io.Mask.Input("strength", optional=True,
                              tooltip="1 = change fully, 0 = keep exactly, gray = partial (source-sized)"),
                Exemplars.Input("exemplars", optional=True),
            ],
            outputs=[io.Model.Output(display_name="model"), io.Latent.Output(display_name="latent"),
                     io.Mask.Output(display_name="strength")],
        )

    @classmethod
    def execute(cls, model, latent, mode, release, strength=None, exemplars=None) -> io.NodeOutput:
        return io.NodeOutput(*surgery(model, latent, mode, release, strength, exemplars))

