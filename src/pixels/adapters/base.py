"""The model seam: one adapter per model family absorbs its quirks so one loop serves them all.

An adapter wraps a loaded diffusers pipeline and reuses its components (VAE, denoiser, text
encoders, `encode_prompt`); it never re-implements a pipeline's `__call__`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ..core.guidance import ClassifierFreeGuidance
from ..core.release import img2img_timesteps, to_latent_map
from ..core.schedulers import make_scheduler
from ..errors import InputError
from . import regional_lora, regions


@dataclass
class Conditioning:
    """Everything the denoiser needs besides latents and timestep, batched for guidance."""

    kwargs: dict[str, Any] = field(default_factory=dict)  # keyword arguments for the denoiser call
    settings: dict[str, Any] = field(default_factory=dict)  # family-specific settings, for metadata
    control: Any = None  # a ControlInput: ControlNet residuals added inside the model call
    shared: bool = True  # False: per-edit state (region masks, control) keeps the edit out of batches
    regional: Any = None  # a `regions.RegionalText`: text attended by region, set around the model call
    regional_lora: Any = None  # a `regional_lora.RegionalLoRA`: LoRA scales by region, set around the model call


class Adapter:
    """Base adapter for latent diffusion models with a VAE and an epsilon/v-predicting denoiser."""

    family: ClassVar[str] = "base"
    pipeline_classes: ClassVar[tuple[str, ...]] = ()  # `_class_name` values in model_index.json
    load_kwargs: ClassVar[dict[str, Any]] = {}  # extra `from_pretrained` arguments for this family
    preferred_dtype: ClassVar[torch.dtype] = torch.float16  # on GPUs with dtype "auto"
    takes_image_prompts: ClassVar[bool] = False  # `encode_prompt` uses prompt_images (image-embedding models)
    takes_text: ClassVar[bool] = True  # False: an unconditional model, which refuses prompts
    takes_ip_adapter: ClassVar[bool] = False  # diffusers' IP-Adapter with attention masks can be loaded into it
    takes_controlnet: ClassVar[bool] = False  # a ControlNet can be attached to its model call
    recommended: ClassVar[dict[str, Any]] = {}  # settings (EditSettings names) for models the catalogue lacks
    hands_over: ClassVar[bool] = True  # can share a schedule with a refiner (denoising_end / denoising_start)
    shared_with_refiner: ClassVar[tuple[str, ...]] = ("vae",)  # components a refiner reuses instead of loading
    unbatched_conditions: ClassVar[tuple[str, ...]] = ()  # denoiser arguments shared by a batch, not per edit
    takes_regional_text: ClassVar[bool] = False  # its cross-attention layers can attend to text by region
    takes_regional_lora: ClassVar[bool] = False  # its LoRA layers can be scaled by region

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.controlnet = None  # a ControlNet attached with Editor.load_controlnet (SD and SDXL)
        self.loras: dict[str, tuple[str, float]] = {}  # LoRAs loaded with Editor.load_lora: name -> (peft
        # adapter, the edit's scale)

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def single_file_pipeline(cls, keys: list[str] | None) -> str | None:
        """The pipeline class for an original-layout (A1111/ComfyUI) single-file checkpoint whose tensor
        names are `keys` (None: they cannot be read, a pickle) if it is one of this family's; else None."""
        return None

    @classmethod
    def load(cls, source: str, **kwargs):
        """Load this family's pipeline from a folder or hub id (diffusers' own loader)."""
        from diffusers import AutoPipelineForImage2Image

        return AutoPipelineForImage2Image.from_pretrained(source, **{**cls.load_kwargs, **kwargs})

    @classmethod
    def prepare(cls, pipe):
        """The pipeline variant this adapter drives, sharing `pipe`'s modules (img2img for latent models)."""
        if type(pipe).__name__.endswith("Img2ImgPipeline"):
            return pipe
        from diffusers import AutoPipelineForImage2Image

        return AutoPipelineForImage2Image.from_pipe(pipe)

    @classmethod
    def check(cls, pipe) -> None:
        """Refuse pipelines whose denoiser this adapter cannot drive."""
        unet, vae = getattr(pipe, "unet", None), getattr(pipe, "vae", None)
        if unet is None or vae is None:
            raise InputError("the pipeline needs both a unet and a vae component", param=type(pipe).__name__)
        channels, latent = unet.config.in_channels, vae.config.latent_channels
        if channels not in (latent, 2 * latent + 1):
            raise InputError(
                f"the UNet takes {channels} input channels but the VAE makes {latent};"
                f" expected {latent} (a generation model) or {2 * latent + 1} (an inpainting model)",
                param=type(pipe).__name__,
            )

    def check_refiner(self, refiner: Adapter) -> None:
        """Refuse a refiner that cannot continue this model's latents mid-schedule."""
        if not (self.hands_over and refiner.hands_over):
            alone = self.family if not self.hands_over else refiner.family
            raise InputError(f"{alone} models run the whole schedule alone; no base-to-refiner hand-off",
                             param="refiner")
        same_space = self.family == refiner.family and self.vae_scale_factor == refiner.vae_scale_factor \
            and self.latent_channels == refiner.latent_channels
        if not same_space:
            raise InputError(
                f"a {refiner.family} model cannot continue a {self.family} model's latents; the refiner must share"
                " the base model's latent space (e.g. SDXL base with SDXL refiner)", param="refiner"
            )

    def components_for_refiner(self) -> dict[str, Any]:
        """The loaded modules a refiner of this model reuses (passed to its loader), by component name."""
        return {name: module for name in self.shared_with_refiner
                if (module := getattr(self.pipe, name, None)) is not None}

    # -- properties --------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.pipe._execution_device

    @property
    def denoiser(self) -> torch.nn.Module:
        return self.pipe.unet

    @property
    def autoencoder(self) -> torch.nn.Module | None:
        """The model between pixels and latents (None for pixel-space models)."""
        return self.pipe.vae

    @property
    def dtype(self) -> torch.dtype:
        return self.denoiser.dtype

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell along each side."""
        return self.pipe.vae_scale_factor

    @property
    def native_size(self) -> int:
        """The side, in pixels, of the images the model was trained on."""
        return int(self.denoiser.config.sample_size) * self.vae_scale_factor

    @property
    def latent_channels(self) -> int:
        return self.pipe.vae.config.latent_channels

    @property
    def inpaint(self) -> bool:
        """Inpainting checkpoints take the mask and the masked source as extra input channels."""
        return self.denoiser.config.in_channels > self.latent_channels

    @property
    def size_multiple(self) -> int:
        """Frames are edge-padded to a multiple of this many pixels before encoding."""
        return self.vae_scale_factor

    # -- conditioning ------------------------------------------------------------------------
    def guidance(self, scale: float, scheduler=None) -> ClassifierFreeGuidance:
        """How outputs combine for the user's guidance `scale`, with `scheduler` (made for this edit)."""
        return ClassifierFreeGuidance(scale)

    def encode_prompt(
        self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance, image_size: tuple[int, int],
        prompt_images: Sequence = (), regions: Sequence = (), generator: torch.Generator | None = None,
    ) -> Conditioning:
        """The same signature for every family. image_size: (H, W) in pixels of the frame being denoised.
        prompt_images: (image, weight) pairs mixed into the conditioning (Kandinsky's image embeddings, or an
        IP-Adapter); regions: (image, weight, (H, W) map) image prompts masked to a region (an IP-Adapter's
        masks; `check_prompt_images` refuses them where the family cannot mask); generator: the random draws
        of a conditioning that makes any (Kandinsky's prior), None for a fixed seed."""
        raise NotImplementedError

    def ignores_guidance(self, guidance: ClassifierFreeGuidance) -> bool:
        """Whether the guidance scale has no effect on this model (one unguided branch, nothing embedded)."""
        return not guidance.enabled and guidance.distilled is None

    def merge_conditions(self, conds: list[Conditioning], guidance: ClassifierFreeGuidance) -> Conditioning:
        """The conditioning of several edits denoised together: each edit's tensors concatenated so that the
        batch reads [uncond of every edit, cond of every edit] when guidance is on, as `guidance.expand`
        lays out the latents. Values that are not per edit (None, shared ids) are taken from the first."""
        halves = 2 if guidance.enabled else 1

        def merge(name: str, values: list) -> Any:
            first = values[0]
            if isinstance(first, dict):
                return {k: merge(k, [v[k] for v in values]) for k in first}
            if name in self.unbatched_conditions or not torch.is_tensor(first) or first.shape[0] != halves:
                return first
            chunks = [value.chunk(halves) for value in values]
            return torch.cat([chunk[h] for h in range(halves) for chunk in chunks])

        return Conditioning(kwargs={k: merge(k, [c.kwargs[k] for c in conds]) for k in conds[0].kwargs},
                            settings=conds[0].settings)

    def check_prompt_images(self, prompt_images: Sequence, regions: Sequence = ()) -> None:
        """Refuse image prompts for models conditioned on text only, and region-masked image prompts (exemplars
        with a `condition`) for models that cannot mask them (the editor asks before encoding)."""
        if prompt_images and not self.takes_image_prompts:
            raise InputError(
                f"this {self.family} model is conditioned on text only; image prompts need a model conditioned on"
                " image embeddings (Kandinsky 2.2) or an IP-Adapter (SD and SDXL: Editor.load_ip_adapter())",
                param="prompt_images"
            )
        if regions and not self.masks_image_prompts:
            raise InputError(
                f"an exemplar's condition needs an IP-Adapter with region masks, which pixels supports for SD 1.x/2.x"
                f" and SDXL (load one with Editor.load_ip_adapter()); this is a {self.family} model"
                + ("" if self.takes_ip_adapter else ", which cannot mask image prompts by region"),
                param="exemplars"
            )

    @property
    def masks_image_prompts(self) -> bool:
        """Whether exemplars can condition their own region (an IP-Adapter with attention masks)."""
        return False

    # -- text by region ------------------------------------------------------------------------------
    def check_texts(self, texts: Sequence) -> None:
        """Refuse regional text and LoRA scales where this family cannot apply them by region (never a silent
        global prompt), and a region's LoRA this model has not loaded."""
        if not texts:
            return
        if not self.takes_text and any(t.prompt is not None or t.negative is not None for t in texts):
            raise InputError(f"this {self.family} model is unconditional: it takes no prompt, and no region's",
                             param="regions")
        if not self.takes_regional_text:
            raise InputError(
                f"a region's own prompt or LoRA scales need attention that can be masked by region, which pixels"
                f" supports for SD 1.x/2.x, SDXL, SD3 and Flux; this is a {self.family} model. Give the text as the"
                " edit's prompt and the LoRA at the edit's scale", param="regions"
            )
        if not self.takes_regional_lora and any(t.loras for t in texts):
            raise InputError(
                f"a region's own LoRA scales need LoRA layers that can be scaled by position, which pixels supports"
                f" for SD 1.x/2.x and SDXL; this is a {self.family} model. Apply the LoRA to the whole edit",
                param="loras"
            )

    def encode_text(self, prompt: str, negative_prompt: str | None, guidance: ClassifierFreeGuidance
                    ) -> torch.Tensor:
        """The text encoder's token states of one prompt, batched for guidance ([negative, prompt] when on)."""
        raise NotImplementedError

    def with_texts(self, cond: Conditioning, texts: Sequence, settings: Any, guidance: ClassifierFreeGuidance,
                   latent_size: tuple[int, int]) -> Conditioning:
        """`cond` with regional text: each region's prompt encoded (the edit's where it sets none) and laid out
        after the edit's own tokens, and the regions' maps (padded (H, W) each) for the cross-attention layers.
        The model call stays one per step however many regions."""
        if not texts:
            return cond
        # the LoRAs some region scales otherwise than the edit (each region's scales: its own, else the edit's);
        # a model without them (a refiner: LoRAs load into the base model) applies the text only
        edit = {name: scale for name, (_, scale) in self.loras.items()}
        scales = [{**edit, **{n: s for n, s in t.loras if n in edit}} for t in texts]
        varied = sorted({n for r in scales for n in r if r[n] != edit[n]})
        layers = regional_lora.lora_layers(self.denoiser, [self.loras[n][0] for n in varied]) if varied else ()
        on_text = {a for module, kind in layers if kind == "text" for a in module.lora_A}
        own = [t.prompt is not None or t.negative is not None
               or any(r[n] != edit[n] and self.loras[n][0] in on_text for n in varied) for t, r in zip(texts, scales)]
        maps = [to_latent_map(t.map, latent_size)[0] for t in texts]
        device = self.device  # the pipeline finds it by looking through its modules: once
        groups = [cond.kwargs["encoder_hidden_states"].to(device)]
        encoded: dict[tuple, torch.Tensor] = {}  # each distinct text once
        for t in (t for t, mine in zip(texts, own) if mine):  # a region with LoRA scales only: the edit's text
            groups.append(self._group_states(t.prompt, t.negative, settings, guidance, groups[0], encoded))
        if len(groups) > 1:
            states, tokens = regions.token_groups(groups)
            self.install_regional_text()
            cond.kwargs["encoder_hidden_states"] = states
            cond.regional = regions.RegionalText(torch.cat([m for m, mine in zip(maps, own) if mine]).to(device),
                                                 tokens)
        if varied:
            lora = [(t, m, r) for t, m, r in zip(texts, maps, scales) if any(r[n] != edit[n] for n in varied)]
            grouped = [r for r, mine in zip(scales, own) if mine]
            regional_lora.install(self.denoiser, layers)
            cond.regional_lora = regional_lora.RegionalLoRA(
                tuple(self.loras[n][0] for n in varied), tuple(edit[n] for n in varied),
                torch.cat([m for _, m, _ in lora]).to(device),
                tuple(tuple(r[n] for n in varied) for _, _, r in lora),
                tuple(tuple(r[n] for n in varied) for r in [edit, *grouped]), layers)
        cond.shared = False  # the masks are per edit
        cond.settings = {**cond.settings, "regional_text": len(groups) - 1, "regional_lora": len(varied)}
        return cond

    def install_regional_text(self) -> None:
        """Wrap the denoiser's attention layers that attend to text so that they can attend by region."""
        regions.install(self.denoiser)

    def _group_states(self, prompt: str | None, negative: str | None, settings: Any, guidance: ClassifierFreeGuidance,
                      edit: torch.Tensor, encoded: dict) -> torch.Tensor:
        """A region's token states, batched for guidance: the edit's own halves where it keeps the edit's prompt or
        negative prompt (the text encoder runs only for what differs), each distinct text encoded once."""
        prompt = settings.prompt if prompt is None else prompt
        negative = settings.negative_prompt if negative is None else negative
        key = (prompt, negative)
        if key not in encoded:
            if prompt == settings.prompt and negative == settings.negative_prompt:
                encoded[key] = edit
            elif guidance.enabled and negative == settings.negative_prompt:
                alone = self.encode_text(prompt, None, ClassifierFreeGuidance(1.0)).to(edit.device)
                encoded[key] = torch.cat([edit.chunk(2)[0], alone])
            else:
                encoded[key] = self.encode_text(prompt, negative, guidance).to(edit.device)
        return encoded[key]

    # -- sampling ----------------------------------------------------------------------------
    def make_scheduler(self, name: str | None):
        """A fresh scheduler for one edit: the model's own (name None) or one chosen by short name."""
        return make_scheduler(self.pipe.scheduler, name)

    def timesteps(
        self, scheduler, num_inference_steps: int, strength: float, *, latent_size: tuple[int, int],
        denoising_start: float | None = None, denoising_end: float | None = None,
    ) -> torch.Tensor:
        """Set `scheduler` up and return the timesteps this edit runs (img2img truncation).

        latent_size: (h, w) of the latents, for families whose schedule depends on the image size.
        denoising_end: stop there (a base model handing over to a refiner); the result may then be empty.
        """
        return img2img_timesteps(
            scheduler, num_inference_steps, strength, denoising_start, self.device, denoising_end
        )

    # -- latent space ------------------------------------------------------------------------
    def _vae_fp32(self) -> bool:
        # Mirrors diffusers: VAEs flagged `force_upcast` overflow in fp16, so they run in fp32.
        vae = self.pipe.vae
        return vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)

    def _latent_stats(self, like: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        cfg = self.pipe.vae.config
        mean, std = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
        if mean is None or std is None:
            return None, None
        shape = (1, len(mean), 1, 1)
        return (
            torch.tensor(mean).view(shape).to(like.device, like.dtype),
            torch.tensor(std).view(shape).to(like.device, like.dtype),
        )

    @torch.no_grad()
    def encode_image(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """image: (1, 3, H, W) in [-1, 1] -> scaled latents (1, C, H/f, W/f), sampled with `generator`."""
        vae = self.pipe.vae
        upcast = self._vae_fp32()
        if upcast:
            vae.to(torch.float32)
        try:
            x = image.to(self.device, torch.float32 if upcast else vae.dtype)
            latents = vae.encode(x).latent_dist.sample(generator)
        finally:
            if upcast:
                vae.to(torch.float16)
        latents = latents.to(self.dtype)
        mean, std = self._latent_stats(latents)
        if mean is not None:
            return (latents - mean) * vae.config.scaling_factor / std
        return vae.config.scaling_factor * latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latents: (1, C, h, w) -> image (1, 3, h*f, w*f) in [-1, 1] (unclamped)."""
        vae = self.pipe.vae
        mean, std = self._latent_stats(latents)
        if mean is not None:
            latents = latents * std / vae.config.scaling_factor + mean
        else:
            latents = latents / vae.config.scaling_factor
        upcast = self._vae_fp32()
        if upcast:
            vae.to(torch.float32)
        try:
            return vae.decode(latents.to(torch.float32 if upcast else vae.dtype), return_dict=False)[0]
        finally:
            if upcast:
                vae.to(torch.float16)

    def add_noise(self, scheduler, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Noised copy of `clean` at timestep `t` (the scheduler's forward process).

        Sigma-based diffusers schedulers read the sigma from their step index once `set_begin_index`
        was called, so this must be called at the step it is for, never precomputed for all steps.
        """
        return scheduler.add_noise(clean, noise, t.reshape(1))

    def scale_model_input(self, scheduler, latents: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Scheduler-specific input scaling (sigma schedulers divide by sqrt(sigma^2 + 1))."""
        return scheduler.scale_model_input(latents, t)

    def blank_latents(self, frame: tuple[int, int], generator: torch.Generator | None) -> torch.Tensor:
        """Inpainting checkpoints: what released pixels show in the masked source, for a padded frame (H, W):
        the latents of a blank (mid-gray) image, as diffusers encodes the masked image."""
        return self.encode_image(torch.zeros(1, 3, *frame), generator)

    def inpaint_input(self, latents: torch.Tensor, released: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """Inpainting checkpoints: the denoiser input with the mask and masked-source channels appended.

        latents: (B, C, h, w) scaled model input; released: (B, 1, h, w), 1 where the pixel is released
        (the inpainting mask); masked: (B, C, h, w) latents of the source with released pixels blanked.
        """
        return torch.cat([latents, released, masked], dim=1)

    # -- the model call ----------------------------------------------------------------------
    def predict(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """latents: (B, C, h, w), already expanded for guidance and scaled by the scheduler."""
        extra = self.control_kwargs(latents, t, cond)
        if cond.regional is None and cond.regional_lora is None:
            return self.denoiser(latents, t, return_dict=False, **cond.kwargs, **extra)[0]
        with regions.regional(cond.regional), regional_lora.applied(cond.regional_lora):
            return self.denoiser(latents, t, return_dict=False, **cond.kwargs, **extra)[0]

    def control_kwargs(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning) -> dict:
        """Extra denoiser arguments from a ControlNet for this step (families that take one)."""
        return {}
