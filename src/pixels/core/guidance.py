"""Guidance, kept apart from sampling: how the model's conditional and unconditional outputs combine."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ClassifierFreeGuidance:
    """Classifier-free guidance (Ho & Salimans 2022): uncond + scale * (cond - uncond).

    The batch is [uncond, cond], the order diffusers uses, so embeddings line up with its pipelines.
    """

    scale: float  # 1.0 (or less) disables guidance: one model call on the conditional branch only
    distilled: float | None = None  # guidance-distilled models (LCM, Flux dev): the scale fed in as an embedding
    rescale: float = 0.0  # Lin et al. 2023 (eq. 15-16): mix of the std-rescaled guided output; 0 = plain CFG

    @property
    def enabled(self) -> bool:
        return self.scale > 1.0

    def expand(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (B, C, h, w) -> (2B, C, h, w) when guidance is on."""
        return torch.cat([latents] * 2) if self.enabled else latents

    def combine(self, output: torch.Tensor) -> torch.Tensor:
        """output: (2B, ...) -> (B, ...) guided prediction."""
        if not self.enabled:
            return output
        uncond, cond = output.chunk(2)
        guided = uncond + self.scale * (cond - uncond)
        if self.rescale == 0:
            return guided
        # "Common Diffusion Noise Schedules and Sample Steps are Flawed", sec. 3.4: match the spread of the
        # conditional prediction, then mix with the plain guided output (as diffusers' rescale_noise_cfg)
        dims = list(range(1, guided.ndim))
        rescaled = guided * (cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True))
        return self.rescale * rescaled + (1 - self.rescale) * guided
