"""Flow-matching families: Stable Diffusion 3 / 3.5 (MMDiT) and Flux.1 (dev and schnell).

Both run a rectified-flow transformer with diffusers' FlowMatchEulerDiscreteScheduler: the noised
copy of a clean latent z at sigma s is (1 - s) z + s n (`scale_noise`), the model predicts the
velocity and one Euler step moves to the next sigma. The loop's latent surgery is unchanged; what
differs from the UNet families lives here: the img2img schedule (SD3/Flux pipelines truncate it
their own way and Flux shifts it by image size), the VAE's shift factor, the text encoders, and
for Flux the 2x2 packing of latents into tokens and its distilled guidance embedding.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ..core.guidance import ClassifierFreeGuidance
from ..core.release import check_steps
from ..core.schedulers import make_scheduler as fresh_scheduler
from ..core.schedulers import scheduler_name
from ..errors import InputError
from . import joint_regions, regions
from .base import Adapter, Conditioning

FLOW_SCHEDULERS = ("default", "euler")  # the scheduler names that apply to flow-matching models


def calculate_shift(config, image_seq_len: int, max_shift: float) -> float:
    """diffusers' `calculate_shift`: the resolution-dependent shift mu, read from a scheduler config.

    max_shift: the pipeline's default when the config has none (SD3 1.16, Flux 1.15).
    """
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift as shift

    return shift(
        image_seq_len, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
        config.get("base_shift", 0.5), config.get("max_shift", max_shift),
    )


def null_components(source: str) -> dict[str, None]:
    """Components a local pipeline folder lists as [null, null] (saved as None, e.g. SD3 without T5).

    diffusers loads such a folder only when these are passed as None explicitly; hub ids give {}.
    """
    index = Path(source) / "model_index.json"
    if not index.is_file():
        return {}
    entries = json.loads(index.read_text())
    return {name: None for name, value in entries.items() if not name.startswith("_") and value == [None, None]}


def flow_img2img_timesteps(scheduler, num_inference_steps: int, strength: float) -> torch.Tensor:
    """The SD3/Flux img2img pipelines' `get_timesteps` on a scheduler already set up.

    Unlike SD/SDXL (which keep int(N * strength) steps) they round after subtracting:
    t_start = int(N - N * strength), so e.g. N=6, strength=0.7 runs 5 steps, not 4.
    """
    init = min(num_inference_steps * strength, num_inference_steps)
    begin = int(max(num_inference_steps - init, 0)) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return scheduler.timesteps[begin:]


class FlowMatchingAdapter(Adapter):
    """Shared base of the rectified-flow transformer families (a `transformer` instead of a `unet`)."""

    preferred_dtype = torch.bfloat16  # SD3.5 and Flux are published in bf16
    hands_over = False  # their truncation and shift follow the whole schedule: see `timesteps`

    family = "flow"
    default_max_shift: ClassVar[float] = 1.15  # the family pipeline's `calculate_shift` default
    latent_patch: ClassVar[int] = 1  # latent cells per token side outside the transformer (Flux packs 2x2)

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, source: str, **kwargs):
        """diffusers' loader, told which components the folder was saved without (SD3 without its T5)."""
        return super().load(source, **{**null_components(source), **kwargs})

    @classmethod
    def transformer_channels(cls, latent_channels: int) -> int:
        """The transformer's `in_channels` for a VAE with `latent_channels`."""
        return latent_channels * cls.latent_patch**2

    @classmethod
    def check(cls, pipe) -> None:
        transformer, vae = getattr(pipe, "transformer", None), getattr(pipe, "vae", None)
        if transformer is None or vae is None:
            raise InputError("the pipeline needs both a transformer and a vae component", param=type(pipe).__name__)
        channels, expected = transformer.config.in_channels, cls.transformer_channels(vae.config.latent_channels)
        if channels != expected:
            raise InputError(
                f"the transformer takes {channels} input channels but the VAE's"
                f" {vae.config.latent_channels} latent channels make {expected}; inpainting, fill and control"
                f" variants of {cls.family} are not supported", param=type(pipe).__name__
            )

    # -- properties --------------------------------------------------------------------------
    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.transformer

    @property
    def native_size(self) -> int:
        return int(self.pipe.default_sample_size) * self.vae_scale_factor

    @property
    def inpaint(self) -> bool:
        return False  # no flow-matching inpainting checkpoint is supported (check() refuses them)

    @property
    def patch_size(self) -> int:
        """Latent cells per side of one transformer token."""
        return self.latent_patch * int(getattr(self.denoiser.config, "patch_size", 1))

    @property
    def size_multiple(self) -> int:
        return self.vae_scale_factor * self.patch_size

    # -- sampling ----------------------------------------------------------------------------
    def make_scheduler(self, name: str | None):
        """A fresh scheduler: the model's own (None) or flow-matching Euler ("euler") on the model's config.

        The DDPM-family solvers (ddim, euler-a, dpm++2m) integrate noise predictions, not velocities.
        """
        key = scheduler_name(name)
        if key is None:
            return fresh_scheduler(self.pipe.scheduler, None)
        if key != "euler":
            raise InputError(
                f"{name!r} is a solver for noise-prediction models and does not apply to flow-matching"
                f" models ({self.family}); choose one of {', '.join(FLOW_SCHEDULERS)}"
                " (FlowMatchEulerDiscreteScheduler on the model's schedule)", param="scheduler"
            )
        from diffusers import FlowMatchEulerDiscreteScheduler

        return FlowMatchEulerDiscreteScheduler.from_config(self.pipe.scheduler.config)

    def schedule_kwargs(self, scheduler, num_inference_steps: int, latent_size: tuple[int, int]) -> dict[str, Any]:
        """`scheduler.set_timesteps` arguments, as the family's img2img pipeline passes them."""
        raise NotImplementedError

    def timesteps(
        self, scheduler, num_inference_steps: int, strength: float, *, latent_size: tuple[int, int],
        denoising_start: float | None = None, denoising_end: float | None = None,
    ) -> torch.Tensor:
        if denoising_start is not None:
            raise InputError(
                f"not supported for flow-matching models ({self.family}); use strength to start"
                " later in the schedule", param="denoising_start"
            )
        if denoising_end is not None:
            raise InputError(
                f"flow-matching models ({self.family}) cannot hand the schedule over to a refiner;"
                " edit without one", param="denoising_end"
            )
        check_steps(scheduler, num_inference_steps)
        scheduler.set_timesteps(device=self.device, **self.schedule_kwargs(scheduler, num_inference_steps, latent_size))
        return flow_img2img_timesteps(scheduler, num_inference_steps, strength)

    def add_noise(self, scheduler, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        # scale_noise reads sigma at the step index (or the begin index before the first step): call it at its step.
        return scheduler.scale_noise(clean, t.reshape(1), noise)

    def scale_model_input(self, scheduler, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return latents  # flow matching feeds the noised latents as they are

    # -- latent space ------------------------------------------------------------------------
    def _latent_stats(self, like: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """SD3/Flux VAEs normalise latents as (z - shift_factor) * scaling_factor: that is the base class's
        (z - mean) * scaling_factor / std with mean = shift_factor and std = 1 (exact in floating point),
        so the base encode/decode, fp16 upcast included, serve unchanged."""
        shift = self.pipe.vae.config.get("shift_factor") or 0.0
        shape = (1, self.latent_channels, 1, 1)
        return (
            torch.full(shape, shift, device=like.device, dtype=like.dtype),
            torch.ones(shape, device=like.device, dtype=like.dtype),
        )


class StableDiffusion3Adapter(FlowMatchingAdapter):
    """SD3 / SD3.5: CLIP-L and CLIP-G (pooled projections) plus an optional T5-XXL, with classifier-free guidance."""

    family = "sd3"
    pipeline_classes = ("StableDiffusion3Pipeline", "StableDiffusion3Img2ImgPipeline")
    default_max_shift = 1.16
    max_sequence_length: ClassVar[int] = 256  # T5 tokens, the pipeline's default
    takes_regional_text = True  # each region's text attended with the image on its own (`joint_regions`)

    def install_regional_text(self) -> None:
        joint_regions.install(self.denoiser, text_first=False)

    def schedule_kwargs(self, scheduler, num_inference_steps: int, latent_size: tuple[int, int]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"num_inference_steps": num_inference_steps}
        if scheduler.config.get("use_dynamic_shifting", False):
            tokens = (latent_size[0] // self.patch_size) * (latent_size[1] // self.patch_size)
            kwargs["mu"] = calculate_shift(scheduler.config, tokens, self.default_max_shift)
        return kwargs

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance, image_size: tuple[int, int],
        prompt_images: Sequence = (), regions: Sequence = (), generator: torch.Generator | None = None,
    ) -> Conditioning:
        embeds, negative, pooled, negative_pooled = self.pipe.encode_prompt(
            prompt=prompt, prompt_2=None, prompt_3=None, device=self.device, num_images_per_prompt=1,
            do_classifier_free_guidance=guidance.enabled, negative_prompt=negative_prompt,
            max_sequence_length=self.max_sequence_length,
        )
        if guidance.enabled:
            embeds, pooled = torch.cat([negative, embeds]), torch.cat([negative_pooled, pooled])
        return Conditioning(
            kwargs={"encoder_hidden_states": embeds, "pooled_projections": pooled},
            settings={"t5_encoder": self.pipe.text_encoder_3 is not None},
        )

    @torch.no_grad()
    def encode_text(self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance
                    ) -> torch.Tensor:
        embeds, negative, _, _ = self.pipe.encode_prompt(
            prompt=prompt, prompt_2=None, prompt_3=None, device=self.device, num_images_per_prompt=1,
            do_classifier_free_guidance=guidance.enabled, negative_prompt=negative_prompt,
            max_sequence_length=self.max_sequence_length,
        )  # the pooled projections stay the edit's: they condition the whole frame
        return torch.cat([negative, embeds]) if guidance.enabled else embeds

    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        timestep = t.expand(latents.shape[0])
        with regions.regional(cond.regional):
            return self.denoiser(hidden_states=latents, timestep=timestep, return_dict=False, **cond.kwargs)[0]


class FluxAdapter(FlowMatchingAdapter):
    """Flux.1 dev (guidance-distilled: the scale is an embedding) and schnell (timestep-distilled: none).

    Both run one branch (no classifier-free guidance, no negative prompt). Latents stay (B, C, h, w)
    for the surgery and are packed into 2x2-patch tokens only for the model call.
    """

    family = "flux"
    pipeline_classes = ("FluxPipeline", "FluxImg2ImgPipeline")
    unbatched_conditions = ("txt_ids", "img_ids")  # positions, the same for every edit of one size
    latent_patch = 2
    max_sequence_length: ClassVar[int] = 512  # T5 tokens, the pipeline's default
    takes_regional_text = True  # each region's text attended with the image on its own (`joint_regions`)

    def install_regional_text(self) -> None:
        joint_regions.install(self.denoiser, text_first=True)

    @property
    def guidance_embeds(self) -> bool:
        """True for guidance-distilled checkpoints (dev), False for schnell."""
        return bool(self.denoiser.config.get("guidance_embeds", False))

    def guidance(self, scale: float, scheduler=None) -> ClassifierFreeGuidance:
        # The scale goes into the model as an embedding (dev) instead of a second branch.
        return ClassifierFreeGuidance(1.0, distilled=float(scale))

    def ignores_guidance(self, guidance: ClassifierFreeGuidance) -> bool:
        return not self.guidance_embeds  # schnell: timestep-distilled, no guidance at all

    def schedule_kwargs(self, scheduler, num_inference_steps: int, latent_size: tuple[int, int]) -> dict[str, Any]:
        tokens = (latent_size[0] // self.latent_patch) * (latent_size[1] // self.latent_patch)
        return {
            "sigmas": np.linspace(1.0, 1 / num_inference_steps, num_inference_steps),
            "mu": calculate_shift(scheduler.config, tokens, self.default_max_shift),
        }

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance, image_size: tuple[int, int],
        prompt_images: Sequence = (), regions: Sequence = (), generator: torch.Generator | None = None,
    ) -> Conditioning:
        if negative_prompt:
            raise InputError(
                "Flux models are guidance-distilled and run no unconditional branch; leave it empty",
                param="negative_prompt",
            )
        embeds, pooled, text_ids = self.pipe.encode_prompt(
            prompt=prompt, prompt_2=None, device=self.device, num_images_per_prompt=1,
            max_sequence_length=self.max_sequence_length,
        )
        h, w = (side // self.vae_scale_factor // self.latent_patch for side in image_size)
        image_ids = self.pipe._prepare_latent_image_ids(1, h, w, self.device, embeds.dtype)
        scale = None
        if self.guidance_embeds:
            scale = torch.full([1], guidance.distilled, device=self.device, dtype=torch.float32)
        return Conditioning(
            kwargs={"encoder_hidden_states": embeds, "pooled_projections": pooled, "txt_ids": text_ids,
                    "img_ids": image_ids, "guidance": scale},
            settings={"distilled_guidance": guidance.distilled if self.guidance_embeds else None},
        )

    @torch.no_grad()
    def encode_text(self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance
                    ) -> torch.Tensor:
        if negative_prompt:
            raise InputError("Flux models are guidance-distilled and run no unconditional branch; a region's"
                             " negative prompt has nothing to act on", param="regions")
        embeds, _, _ = self.pipe.encode_prompt(prompt=prompt, prompt_2=None, device=self.device,
                                               num_images_per_prompt=1, max_sequence_length=self.max_sequence_length)
        return embeds  # the pooled projections stay the edit's: they condition the whole frame

    def with_texts(self, cond: Conditioning, texts: Sequence, settings: Any, guidance: ClassifierFreeGuidance,
                   latent_size: tuple[int, int]) -> Conditioning:
        """As every family's, with the text positions (`txt_ids`) of every group: each group's text is at the
        positions the edit's own text is at."""
        cond = super().with_texts(cond, texts, settings, guidance, latent_size)
        if cond.regional is not None:
            ids = cond.kwargs["txt_ids"]
            if any(n != ids.shape[0] for n in cond.regional.tokens):
                raise ValueError(f"regional text: token groups of {cond.regional.tokens} tokens, expected"
                                 f" {ids.shape[0]} each")
            cond.kwargs["txt_ids"] = torch.cat([ids] * len(cond.regional.tokens))
        return cond

    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        b, c, h, w = latents.shape
        tokens = self.pipe._pack_latents(latents, b, c, h, w)
        timestep = t.expand(b).to(latents.dtype) / 1000  # Flux takes the timestep in [0, 1]
        with regions.regional(cond.regional):
            out = self.denoiser(hidden_states=tokens, timestep=timestep, return_dict=False, **cond.kwargs)[0]
        f = self.vae_scale_factor
        return self.pipe._unpack_latents(out, h * f, w * f, f)
