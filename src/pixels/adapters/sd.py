"""Stable Diffusion 1.x / 2.x: one CLIP text encoder, UNet2DConditionModel, AutoencoderKL."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..guidance import ClassifierFreeGuidance
from .base import Adapter, Conditioning


class StableDiffusionAdapter(Adapter):
    family = "sd"
    pipeline_classes = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline")

    # The safety checker is a separate classifier model; pixels edits, it does not filter.
    load_kwargs = {"safety_checker": None, "requires_safety_checker": False}

    def guidance(self, scale: float, scheduler=None) -> ClassifierFreeGuidance:
        # Guidance-distilled UNets (LCM) take the scale as an embedding instead of a second branch.
        if self.denoiser.config.time_cond_proj_dim is not None:
            return ClassifierFreeGuidance(1.0, distilled=scale)
        return ClassifierFreeGuidance(scale)

    def _timestep_cond(self, guidance: ClassifierFreeGuidance) -> torch.Tensor | None:
        dim = self.denoiser.config.time_cond_proj_dim
        if dim is None:
            return None
        w = torch.tensor(guidance.distilled - 1).repeat(1)
        return self.pipe.get_guidance_scale_embedding(w, embedding_dim=dim).to(self.device, self.dtype)

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance, image_size: tuple[int, int],
        prompt_images: Sequence = (),
    ) -> Conditioning:
        embeds, negative = self.pipe.encode_prompt(
            prompt, self.device, 1, guidance.enabled, negative_prompt
        )
        if guidance.enabled:
            embeds = torch.cat([negative, embeds])
        return Conditioning(
            kwargs={"encoder_hidden_states": embeds, "timestep_cond": self._timestep_cond(guidance)}
        )
