"""pixels' release rule as ComfyUI's per-step denoise mask function (`set_model_denoise_mask_function`).

ComfyUI's KSampler (KSamplerX0Inpaint) calls the function at every model evaluation with the current sigma and
the sampling run's sigmas; what it returns is the released part: where it is 0 the model's input is pinned to
the noised source latent and the prediction replaced by the clean one. This module maps the sigma to the step i
of the K steps of the run and answers with pixels' own rule, `pixels.core.release.keep_mask(keep, i, K)`
(pinned while keep > i/K), on the keep map `to_latent_map(1 - strength)` that pixels computes.
"""

from __future__ import annotations

import math

import torch

from pixels.core.release import keep_mask
from pixels.errors import InputError

RELEASES = ("reference", "current")
RELEASE_HELP = (
    "reference: the reference's trajectory (a pixel pinned at step i but released at step i+1 keeps the model's"
    " update of step i, as pixels and the reference code do); current: the mask of step i applied at step i"
    " (ComfyUI replaces the prediction of every pixel pinned at step i by the source, so each pixel is released"
    " one model update later than in the reference)"
)


def step_index(sigma: torch.Tensor, sigmas: torch.Tensor) -> int:
    """The step i (0-based, of len(sigmas) - 1) whose model evaluation runs at `sigma`.

    First-order samplers evaluate exactly at sigmas[i]; samplers with intermediate evaluations (Heun, DPM2,
    ...) evaluate between sigmas[i] and sigmas[i + 1], which belongs to step i."""
    s = float(sigma.reshape(-1)[0])
    levels = [float(v) for v in sigmas[:-1]]
    for i, level in enumerate(levels):
        if math.isclose(level, s, rel_tol=1e-5, abs_tol=0.0):
            return i
    inside = [i for i, level in enumerate(levels) if level > s]
    return inside[-1] if inside else 0


class ReleaseRule:
    """The denoise mask function of a PIXELS-patched MODEL: released = not keep_mask(keep, step, K).

    keep: (1, 1, h, w) float latent keep map (1 - strength, resized as pixels resizes it). offset 0 answers the
    mask of the current step (release "current"); offset 1 the mask of the next step (release "reference"):
    ComfyUI keeps a pixel whose prediction it replaced on the noised source (same noise, next sigma), so a pixel
    still pinned at step i but free at step i + 1 then takes the model's update of step i exactly as the
    reference loop gives it, while its input at step i is still the noised source."""

    def __init__(self, keep: torch.Tensor, offset: int) -> None:
        self.keep = keep
        self.offset = offset

    def released(self, step: int, steps: int, device=None) -> torch.Tensor:
        """(1, 1, h, w) bool: the pixels free at `step` of `steps` under this rule."""
        keep = self.keep if device is None else self.keep.to(device)
        return ~keep_mask(keep, min(step + self.offset, steps), steps)

    def __call__(self, sigma: torch.Tensor, denoise_mask: torch.Tensor, extra_options: dict) -> torch.Tensor:
        sigmas = extra_options["sigmas"]
        steps = len(sigmas) - 1
        if tuple(denoise_mask.shape[-2:]) != tuple(self.keep.shape[-2:]):
            raise InputError(
                f"the sampled latent is {denoise_mask.shape[-1]}x{denoise_mask.shape[-2]} but the strength map was"
                f" made for a {self.keep.shape[-1]}x{self.keep.shape[-2]} latent: sample the LATENT that PIXELS"
                " Surgery returns", param="model")
        released = self.released(step_index(sigma, sigmas), steps, denoise_mask.device)
        return released.to(denoise_mask.dtype).expand_as(denoise_mask)
