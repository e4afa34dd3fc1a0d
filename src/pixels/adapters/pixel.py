"""Pixel-space, unconditional diffusion models (diffusers `DDPMPipeline`/`DDIMPipeline`: a UNet2DModel).

The "latent" is the image itself in [-1, 1] (no VAE: encode and decode are the identity, scale
factor 1), so latent surgery grafts exemplar pixels directly. pixels' bundled demo model is one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..core.guidance import ClassifierFreeGuidance
from ..errors import InputError
from .base import Adapter, Conditioning


class PixelSpaceAdapter(Adapter):
    family = "pixel"
    pipeline_classes = ("DDPMPipeline", "DDIMPipeline")
    takes_text = False  # unconditional: the exemplars and maps steer the edit
    # small pixel-space models: a short, gentle, unguided edit (the bundled demo has its own, in the catalogue)
    recommended = {"num_inference_steps": 100, "strength": 0.2, "guidance_scale": 1.0}

    @classmethod
    def load(cls, source: str, **kwargs):
        from diffusers import DiffusionPipeline

        return DiffusionPipeline.from_pretrained(source, **{**cls.load_kwargs, **kwargs})

    @classmethod
    def prepare(cls, pipe):
        return pipe

    @classmethod
    def check(cls, pipe) -> None:
        unet = getattr(pipe, "unet", None)
        if unet is None or unet.config.in_channels != unet.config.out_channels:
            raise InputError("expected a UNet mapping images to noise of the same shape", param=type(pipe).__name__)
        if unet.config.in_channels != 3:
            raise InputError(
                f"pixel-space models must work on RGB images, this UNet takes"
                f" {unet.config.in_channels} channels", param=type(pipe).__name__
            )

    @property
    def device(self) -> torch.device:
        return self.denoiser.device

    @property
    def autoencoder(self) -> None:
        return None  # the model works on pixels

    @property
    def vae_scale_factor(self) -> int:
        return 1

    @property
    def latent_channels(self) -> int:
        return self.denoiser.config.in_channels

    @property
    def native_size(self) -> int:
        return int(self.denoiser.config.sample_size)

    @property
    def size_multiple(self) -> int:
        # The UNet halves the resolution len(blocks) - 1 times and cannot upsample back odd sizes.
        return 2 ** (len(self.denoiser.config.block_out_channels) - 1)

    def guidance(self, scale: float, scheduler=None) -> ClassifierFreeGuidance:
        return ClassifierFreeGuidance(1.0)  # unconditional: there is no second branch to guide with

    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance, image_size: tuple[int, int],
        prompt_images: Sequence = (), regions: Sequence = (), generator: torch.Generator | None = None,
    ) -> Conditioning:
        if prompt or negative_prompt:
            raise InputError(
                "this model is unconditional and takes no text; give no prompt and no negative prompt"
                " (the exemplars and maps steer the edit)", param="prompt"
            )
        return Conditioning(settings={"conditioning": "none (unconditional model)"})

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return image.to(self.device, self.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        return self.denoiser(latents, t, return_dict=False)[0]
