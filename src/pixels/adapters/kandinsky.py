"""Kandinsky 2.2: a decoder UNet conditioned on CLIP image embeddings, made from text by a diffusion prior.

The adapter drives diffusers' combined pipelines (`KandinskyV22Img2ImgCombinedPipeline`, or the inpaint
one for 9-channel UNets), which hold the prior (`prior_pipe`) and the decoder's UNet, scheduler and MoVQ
autoencoder side by side. Differences from Stable Diffusion, each mirroring diffusers' Kandinsky 2.2
pipelines:

- conditioning: the prior turns the prompt into an image embedding; image prompts are CLIP-encoded and
  mixed in by weight (the prior's `interpolate`); the negative branch is the CLIP embedding of an all-zero
  image, or the prior's embedding of the negative prompt;
- latents: MoVQ latents, unscaled and not sampled (`movq.encode(x)["latents"]`), decoded without
  quantisation;
- the UNet predicts noise and variance (8 channels): guidance mixes the noise half only;
- the inpaint UNet takes [latents, masked source, keep mask], the mask being 1 where the source is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from ..core.guidance import ClassifierFreeGuidance
from ..errors import InputError
from .base import Adapter, Conditioning

LEARNED = ("learned", "learned_range")  # variance types whose scheduler reads the UNet's variance channels
LEARNED_VARIANCE_SCHEDULERS = ("DDPMScheduler",)  # pixels' schedulers that can use them
# diffusers' prepare_mask: a pixel next to a released one, in these six of its eight directions, is released too
GROW_OFFSETS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1))


def _learned_variance(scheduler) -> bool:
    """diffusers' test: does the scheduler step take the UNet's variance channels along with the noise?"""
    return scheduler.config.get("variance_type", None) in LEARNED


@dataclass(frozen=True)
class LearnedVarianceGuidance(ClassifierFreeGuidance):
    """Guidance for UNets that predict noise and variance stacked on the channels (2C of them).

    As diffusers' Kandinsky 2.2 pipelines do: guidance mixes the noise halves, the variance of the
    conditional branch is appended back when the scheduler uses a learned variance, and dropped otherwise.
    """

    channels: int = 4  # C, the latent channels
    keep_variance: bool = False  # the scheduler's variance_type is learned / learned_range

    def combine(self, output: torch.Tensor) -> torch.Tensor:
        """output: ((2)B, 2C, h, w) -> (B, 2C, h, w) with keep_variance, else (B, C, h, w)."""
        noise, variance = output.split(self.channels, dim=1)
        if self.enabled:
            noise = super().combine(noise)
            variance = variance.chunk(2)[1]
        return torch.cat([noise, variance], dim=1) if self.keep_variance else noise


def combined_pipeline(decoder, prior):
    """One combined pipeline from a Kandinsky 2.2 decoder pipeline and a `KandinskyV22PriorPipeline`
    (modules shared, not copied): what `Editor.from_pipe` needs when both were loaded separately."""
    parts = {**decoder.components, **{f"prior_{name}": module for name, module in prior.components.items()}}
    return _combined_class(decoder.unet, decoder.movq)(**parts)


def _combined_class(unet, movq) -> type:
    from diffusers import KandinskyV22Img2ImgCombinedPipeline, KandinskyV22InpaintCombinedPipeline

    inpaint = unet.config.in_channels > movq.config.latent_channels
    return KandinskyV22InpaintCombinedPipeline if inpaint else KandinskyV22Img2ImgCombinedPipeline


def grow_released(released: torch.Tensor) -> torch.Tensor:
    """diffusers' Kandinsky `prepare_mask`, vectorised: (B, 1, h, w) 0/1 released -> released grown by one
    pixel towards six of the eight neighbours (not the two anti-diagonal ones, as diffusers does)."""
    h, w = released.shape[-2:]
    padded = F.pad(released, (1, 1, 1, 1))
    grown = released
    for dy, dx in GROW_OFFSETS:
        grown = torch.maximum(grown, padded[..., 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w])
    return grown


class KandinskyV22Adapter(Adapter):
    family = "kandinsky"
    pipeline_classes = (
        "KandinskyV22Pipeline", "KandinskyV22Img2ImgPipeline", "KandinskyV22InpaintPipeline",
        "KandinskyV22CombinedPipeline", "KandinskyV22Img2ImgCombinedPipeline", "KandinskyV22InpaintCombinedPipeline",
    )
    prior_repo = "kandinsky-community/kandinsky-2-2-prior"  # the prior of every Kandinsky 2.2 decoder
    prior_steps = 25  # diffusers' default prior_num_inference_steps
    prior_guidance_scale = 4.0  # diffusers' default prior_guidance_scale
    takes_image_prompts = True
    prior_seed = 0  # the prior's random draws, when the edit's generator is not passed in

    def __init__(self, pipe) -> None:
        super().__init__(pipe)
        pipe.prior_pipe.set_progress_bar_config(disable=True)  # pixels reports progress itself

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, source: str, **kwargs):
        """A combined pipeline as saved, or a decoder with the Kandinsky 2.2 prior loaded beside it."""
        from diffusers import DiffusionPipeline, KandinskyV22PriorPipeline

        pipe = DiffusionPipeline.from_pretrained(source, **{**cls.load_kwargs, **kwargs})
        if getattr(pipe, "prior_pipe", None) is None:
            try:
                prior = KandinskyV22PriorPipeline.from_pretrained(cls.prior_repo, **kwargs)
            except OSError as error:  # the loader names the model; this names the prior and how to fetch it
                raise OSError(
                    f"the Kandinsky 2.2 prior {cls.prior_repo!r} it needs is not available; download it with:"
                    f"  hf download {cls.prior_repo}\n{error}"
                ) from None
            pipe = combined_pipeline(pipe, prior)
        return cls.prepare(pipe)

    @classmethod
    def prepare(cls, pipe):
        """The combined pipeline for this UNet (img2img, or inpaint for 9 channels); a decoder alone is kept
        as it is, for `check` to refuse."""
        if getattr(pipe, "prior_pipe", None) is None or getattr(pipe, "movq", None) is None:
            return pipe
        target = _combined_class(pipe.unet, pipe.movq)
        return pipe if type(pipe) is target else target(**pipe.components)

    @classmethod
    def check(cls, pipe) -> None:
        name = type(pipe).__name__
        unet, movq = getattr(pipe, "unet", None), getattr(pipe, "movq", None)
        if unet is None or movq is None:
            raise InputError("the pipeline needs both a unet and a movq component", param=name)
        if getattr(pipe, "prior_pipe", None) is None:
            raise InputError(
                f"Kandinsky 2.2 needs its prior to turn prompts into image embeddings; load the decoder"
                f" with Editor.from_pretrained (which loads {cls.prior_repo} too), or pass"
                " pixels.adapters.kandinsky.combined_pipeline(decoder, prior) to Editor.from_pipe", param=name
            )
        latent, config = movq.config.latent_channels, unet.config
        if config.in_channels not in (latent, 2 * latent + 1) or config.out_channels not in (latent, 2 * latent):
            raise InputError(
                f"the UNet maps {config.in_channels} to {config.out_channels} channels but MoVQ"
                f" latents have {latent}; expected {latent} or {2 * latent + 1} (inpainting) in, {latent} or"
                f" {2 * latent} (with variance) out", param=name
            )
        if config.addition_embed_type != "image":
            raise InputError(
                "expected a UNet conditioned on image embeddings (addition_embed_type 'image')", param=name
            )

    # -- properties --------------------------------------------------------------------------
    @property
    def autoencoder(self) -> torch.nn.Module:
        return self.pipe.movq

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.pipe.movq.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return self.pipe.movq.config.latent_channels

    @property
    def size_multiple(self) -> int:
        # Kandinsky's UNet blocks cannot upsample back odd sizes (diffusers rounds to 64 px for the real model).
        return self.vae_scale_factor * 2 ** (len(self.denoiser.config.block_out_channels) - 1)

    # -- conditioning ------------------------------------------------------------------------
    def make_scheduler(self, name: str | None):
        """As the base, and a scheduler that cannot use the UNet's variance is told it has none: a learned
        variance_type carried over from DDPM's config would otherwise reach DDIM's or DPM++'s step."""
        scheduler = super().make_scheduler(name)
        if _learned_variance(scheduler) and type(scheduler).__name__ not in LEARNED_VARIANCE_SCHEDULERS:
            scheduler.register_to_config(variance_type=None)
        return scheduler

    def guidance(self, scale: float, scheduler=None) -> ClassifierFreeGuidance:
        """Guidance that also splits off the variance channels; they go on to `scheduler` if it reads them."""
        if self.denoiser.config.out_channels != 2 * self.latent_channels:
            return ClassifierFreeGuidance(scale)  # a UNet without variance channels
        scheduler = self.pipe.scheduler if scheduler is None else scheduler
        return LearnedVarianceGuidance(scale, channels=self.latent_channels, keep_variance=_learned_variance(scheduler))

    @torch.no_grad()
    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance, image_size: tuple[int, int],
        prompt_images: Sequence = (), regions: Sequence = (), generator: torch.Generator | None = None,
    ) -> Conditioning:
        """Image embeddings: the prior's embedding of the prompt (weight 1; of the empty prompt when there is
        neither text nor image prompts) plus each prompt image's CLIP embedding times its weight.

        generator: the prior's random draws; None draws from a generator seeded with `prior_seed`.
        """
        seeded = generator is None
        generator = torch.Generator("cpu").manual_seed(self.prior_seed) if seeded else generator
        text = bool(prompt) or not prompt_images
        if text:  # as the combined pipelines call the prior: the negative prompt is its unconditional branch
            embeds, negative = self._prior(prompt, negative_prompt, generator)
            parts = [(embeds, 1.0)]
            origin = "prior's unconditional branch" + (" (negative prompt)" if negative_prompt else "")
        elif negative_prompt is None:  # as the prior's interpolate(): zero image embeds...
            negative, parts, origin = self._zero_embeds(), [], "zero image"
        else:  # ...or the prior's embedding of the negative prompt
            negative, parts, origin = self._prior(negative_prompt, None, generator)[0], [], "negative prompt"
        parts += [(self._image_embeds(image), float(weight)) for image, weight in prompt_images]
        embeds = torch.stack([e * w for e, w in parts]).sum(0)
        if guidance.enabled:
            embeds = torch.cat([negative, embeds])
        settings = {
            "prior_steps": self.prior_steps, "prior_guidance_scale": self.prior_guidance_scale,
            "prior_seed": self.prior_seed if seeded else "edit generator", "prompt_weight": 1.0 if text else None,
            "negative_image_embeds": origin,
        }
        return Conditioning(
            kwargs={"encoder_hidden_states": None,
                    "added_cond_kwargs": {"image_embeds": embeds.to(self.device, self.dtype)}},
            settings=settings,
        )

    def _prior(self, prompt: str, negative_prompt: str | None, generator: torch.Generator):
        """The prior's (image embeds, negative image embeds) for `prompt`, each (1, D)."""
        out = self.pipe.prior_pipe(
            prompt, negative_prompt=negative_prompt, num_inference_steps=self.prior_steps, generator=generator,
            guidance_scale=self.prior_guidance_scale, output_type="pt",
        )
        return out.image_embeds, out.negative_image_embeds

    def _zero_embeds(self) -> torch.Tensor:
        return self.pipe.prior_pipe.get_zero_embed(1, device=self.device)

    def _image_embeds(self, image: Image.Image) -> torch.Tensor:
        """CLIP image embedding (1, D) of a prompt image, preprocessed as the prior's interpolate() does."""
        prior = self.pipe.prior_pipe
        pixels = prior.image_processor(image, return_tensors="pt").pixel_values
        return prior.image_encoder(pixels.to(self.device, prior.image_encoder.dtype))["image_embeds"]

    # -- latent space ------------------------------------------------------------------------
    @torch.no_grad()
    def encode_image(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """MoVQ latents, unscaled and deterministic (no draw from `generator`), as diffusers' img2img."""
        movq = self.pipe.movq
        return movq.encode(image.to(self.device, movq.dtype))["latents"].to(self.dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        movq = self.pipe.movq
        return movq.decode(latents.to(movq.dtype), force_not_quantize=True)["sample"]

    def blank_latents(self, frame: tuple[int, int], generator: torch.Generator | None) -> torch.Tensor:
        """Zeros: `inpaint_input` blanks released pixels itself (the keep mask), so nothing is encoded."""
        f = self.vae_scale_factor
        return torch.zeros(1, self.latent_channels, frame[0] // f, frame[1] // f, device=self.device, dtype=self.dtype)

    def inpaint_input(self, latents: torch.Tensor, released: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Kandinsky's order and convention: [latents, masked source, keep mask], the mask 1 where the source
        is kept, after diffusers' prepare_mask grows the released area by a pixel; the masked source is 0
        where released (the blank frame's latents are not used)."""
        keep = 1 - grow_released(released)
        return torch.cat([latents, masked * keep, keep], dim=1)
