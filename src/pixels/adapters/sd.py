"""Stable Diffusion 1.x / 2.x: one CLIP text encoder, UNet2DConditionModel, AutoencoderKL."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.guidance import ClassifierFreeGuidance
from .base import Adapter, Conditioning


class StableDiffusionAdapter(Adapter):
    family = "sd"
    pipeline_classes = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline")

    # The safety checker is a separate classifier model; pixels edits, it does not filter.
    load_kwargs = {"safety_checker": None, "requires_safety_checker": False}
    takes_ip_adapter = True  # (and SDXL) diffusers' IP-Adapter, whose attention masks pixels uses
    takes_controlnet = True
    takes_regional_text = True  # (and SDXL) each region's text, attended by its masked cross-attention
    takes_regional_lora = True  # (and SDXL) LoRA deltas scaled per position

    @classmethod
    def single_file_pipeline(cls, keys: list[str] | None) -> str | None:
        return "StableDiffusionImg2ImgPipeline"  # the original layout, and what a pickle checkpoint is taken as

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

    # -- IP-Adapter: image prompts, global or masked to an exemplar's region --------------------------------
    @property
    def ip_adapter_loaded(self) -> bool:
        return getattr(self.denoiser, "encoder_hid_proj", None) is not None and \
            getattr(self.pipe, "image_encoder", None) is not None

    @property
    def takes_image_prompts(self) -> bool:
        return self.ip_adapter_loaded

    @property
    def masks_image_prompts(self) -> bool:
        return self.ip_adapter_loaded

    def image_conditions(self, guidance: ClassifierFreeGuidance, frame: tuple[int, int], prompt_images: Sequence,
                         regions: Sequence) -> tuple[dict, dict]:
        """The IP-Adapter's inputs: (added_cond_kwargs, cross_attention_kwargs) for one edit's images. Each image
        gets a mask over the padded frame (H, W): the whole frame for a prompt image, for a conditioned exemplar
        the pixels where its strength map is above 0. The mask carries the image's weight, so that the adapter's
        own scale stays 1 and nothing about an edit is left in the model between edits; diffusers resizes it to
        each attention layer's grid (IPAdapterMaskProcessor.downsample). Without any image, one blank image with
        an all-zero mask (the adapter's layers need embeddings; it adds exactly nothing)."""
        import numpy as np
        from diffusers.models.embeddings import ImageProjection
        from PIL import Image

        if not self.ip_adapter_loaded:
            return {}, {}
        items = [(image, weight, None) for image, weight in prompt_images] + list(regions)
        if not items:
            items = [(Image.new("RGB", (8, 8)), 0.0, None)]
        projection = self.denoiser.encoder_hid_proj.image_projection_layers[0]
        embeds, negative = self.pipe.encode_image([image for image, _, _ in items], self.device, 1,
                                                  not isinstance(projection, ImageProjection))
        embeds = torch.cat([negative[None], embeds[None]]) if guidance.enabled else embeds[None]
        masks = np.stack([float(weight) * (np.ones(frame) if m is None else (m > 0)) for _, weight, m in items])
        self.pipe.set_ip_adapter_scale(1.0)  # the weights are in the masks
        mask = torch.from_numpy(masks.astype(np.float32))[None].to(self.device)
        return {"image_embeds": [embeds.to(self.device, self.dtype)]}, {"ip_adapter_masks": [mask]}

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance, image_size: tuple[int, int],
        prompt_images: Sequence = (), regions: Sequence = (), generator: torch.Generator | None = None,
    ) -> Conditioning:
        embeds, negative = self.pipe.encode_prompt(
            prompt, self.device, 1, guidance.enabled, negative_prompt
        )
        if guidance.enabled:
            embeds = torch.cat([negative, embeds])
        kwargs = {"encoder_hidden_states": embeds, "timestep_cond": self._timestep_cond(guidance)}
        added, attention = self.image_conditions(guidance, image_size, prompt_images, regions)
        if added:
            kwargs |= {"added_cond_kwargs": added, "cross_attention_kwargs": attention}
        return Conditioning(kwargs=kwargs, shared=not added)  # image prompts are set per edit

    @torch.no_grad()
    def encode_text(self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance
                    ) -> torch.Tensor:
        embeds, negative = self.pipe.encode_prompt(prompt, self.device, 1, guidance.enabled, negative_prompt)
        return torch.cat([negative, embeds]) if guidance.enabled else embeds

    # -- ControlNet residuals for the model call ---------------------------------------------------------
    def control_kwargs(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> dict:
        """The residuals of the attached ControlNet for this step (none where its scale is 0)."""
        if cond.control is None or self.controlnet is None or (scale := cond.control.scale_at(t)) == 0:
            return {}
        extra = {}
        if "added_cond_kwargs" in cond.kwargs and "text_embeds" in cond.kwargs["added_cond_kwargs"]:
            added = cond.kwargs["added_cond_kwargs"]
            extra["added_cond_kwargs"] = {"text_embeds": added["text_embeds"], "time_ids": added["time_ids"]}
        states = cond.kwargs["encoder_hidden_states"]
        if cond.regional is not None:  # the ControlNet follows the edit's own text
            states = states[:, :cond.regional.tokens[0]]
        down, mid = self.controlnet(
            latents[:, : self.latent_channels], t, encoder_hidden_states=states,
            controlnet_cond=cond.control.image, conditioning_scale=scale, guess_mode=False, return_dict=False, **extra,
        )
        return {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
