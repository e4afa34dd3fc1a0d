"""SDXL base and refiner: two text encoders (the refiner has only the second), pooled embeddings and
micro-conditioning time ids (the refiner's carry an aesthetic score instead of the target size)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.guidance import ClassifierFreeGuidance
from .base import Conditioning
from .sd import StableDiffusionAdapter

AESTHETIC_SCORE = 6.0  # diffusers' default for the refiner's positive branch
NEGATIVE_AESTHETIC_SCORE = 2.5  # and for its negative branch


class StableDiffusionXLAdapter(StableDiffusionAdapter):
    family = "sdxl"
    pipeline_classes = (
        "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline"
    )
    load_kwargs = {}  # SDXL pipelines have no safety checker
    shared_with_refiner = ("vae", "text_encoder_2")  # the refiner's only text encoder is the base's second

    @property
    def is_refiner(self) -> bool:
        return bool(self.pipe.config.get("requires_aesthetics_score", False))

    @classmethod
    def single_file_pipeline(cls, keys: list[str] | None) -> str | None:
        if keys is not None and any(k.startswith(("conditioner.embedders.1.", "conditioner.embedders.0.model."))
                                    for k in keys):
            return "StableDiffusionXLImg2ImgPipeline"  # base: two text encoders; refiner: OpenCLIP-G only
        return None

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance, image_size: tuple[int, int],
        prompt_images: Sequence = (), regions: Sequence = (), generator: torch.Generator | None = None,
    ) -> Conditioning:
        pipe = self.pipe
        embeds, negative, pooled, negative_pooled = pipe.encode_prompt(
            prompt=prompt,
            device=self.device,
            num_images_per_prompt=1,
            do_classifier_free_guidance=guidance.enabled,
            negative_prompt=negative_prompt,  # None: zero embeddings (force_zeros_for_empty_prompt); "": encoded
        )
        if pipe.text_encoder_2 is None:
            projection_dim = int(pooled.shape[-1])
        else:
            projection_dim = pipe.text_encoder_2.config.projection_dim
        size = tuple(image_size)
        time_ids, negative_time_ids = pipe._get_add_time_ids(
            size, (0, 0), size, AESTHETIC_SCORE, NEGATIVE_AESTHETIC_SCORE, size, (0, 0), size,
            dtype=embeds.dtype, text_encoder_projection_dim=projection_dim,
        )
        if guidance.enabled:
            embeds = torch.cat([negative, embeds])
            pooled = torch.cat([negative_pooled, pooled])
            time_ids = torch.cat([negative_time_ids, time_ids])
        settings = {"refiner": self.is_refiner}
        if self.is_refiner:
            settings |= {"aesthetic_score": AESTHETIC_SCORE, "negative_aesthetic_score": NEGATIVE_AESTHETIC_SCORE}
        added, attention = self.image_conditions(guidance, image_size, prompt_images, regions)
        kwargs = {
            "encoder_hidden_states": embeds.to(self.device),
            "timestep_cond": self._timestep_cond(guidance),
            "added_cond_kwargs": {"text_embeds": pooled.to(self.device), "time_ids": time_ids.to(self.device), **added},
        }
        if attention:
            kwargs["cross_attention_kwargs"] = attention
        return Conditioning(kwargs=kwargs, settings=settings, shared=not added)  # image prompts are set per edit

    @torch.no_grad()
    def encode_text(self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance
                    ) -> torch.Tensor:
        embeds, negative, _, _ = self.pipe.encode_prompt(
            prompt=prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=guidance.enabled,
            negative_prompt=negative_prompt,
        )  # the pooled embeddings stay the edit's: they condition the whole frame
        return torch.cat([negative, embeds]) if guidance.enabled else embeds
