"""Preparing the one denoising loop, as plain functions with the data passed explicitly: the stages (which
model runs which timesteps with which conditioning), the latent surgery (encoded source and exemplars,
noises, keep map, grafts), and `diffuse`, which runs the loop on an edit's inputs and decodes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from .adapters import Adapter
from .crop import crop_around, encode_region, resize_map
from .errors import NonFiniteError
from .images import to_pil, to_tensor
from .inputs import Inputs, pad
from .limits import Limits, check_memory
from .loop import Stage, Surgery, blend_into_source, combine_grafts, denoise, step_kwargs
from .placement import region_box
from .release import first_needed_step, to_latent_map
from .schedulers import skipping_is_exact
from .settings import EditSettings

DEFAULT_SWITCH = 0.8  # base-to-refiner hand-off: the share of the schedule the base model runs
ENCODE_MARGIN = 64  # pixels of context around an exemplar's region with exemplar_encode="region"


def make_stages(
    base: Adapter, refiner: Adapter | None, settings: EditSettings, generator: torch.Generator,
    latent_size: tuple[int, int], frame: tuple[int, int], image_prompts: list[tuple[Image.Image, float]],
) -> list[Stage]:
    """The models that run the schedule: the base model, then the refiner from `switch_at` on.

    latent_size: (h, w) of the latents; frame: (H, W) of the padded picture."""
    def stage(adapter: Adapter, **truncation) -> Stage:
        sched = adapter.make_scheduler(settings.scheduler)
        timesteps = adapter.timesteps(sched, settings.num_inference_steps, settings.strength,
                                      latent_size=latent_size, **truncation)
        guidance = replace(adapter.guidance(settings.guidance_scale, sched), rescale=settings.guidance_rescale)
        adapter.check_prompt_images(image_prompts)
        cond = adapter.encode_prompt(settings.prompt, settings.negative_prompt, guidance, frame, image_prompts)
        return Stage(adapter, sched, timesteps, cond, guidance, step_kwargs(sched, generator, settings.eta))

    if refiner is None:
        return [stage(base, denoising_start=settings.denoising_start)]
    switch = DEFAULT_SWITCH if settings.switch_at is None else settings.switch_at
    first = stage(base, denoising_start=settings.denoising_start, denoising_end=switch)
    if len(first.timesteps) == 0:  # the edit starts after the switch: the refiner runs all of it
        return [stage(refiner, denoising_start=settings.denoising_start)]
    start = switch if settings.denoising_start is None else max(switch, settings.denoising_start)
    return [first, stage(refiner, denoising_start=start)]


def setting_notes(base: Adapter, refiner: Adapter | None, settings: EditSettings) -> list[str]:
    """Settings this model (or its scheduler) does not use, said rather than silently recorded."""
    notes: list[str] = []
    for adapter in (base, refiner) if refiner is not None else (base,):
        sched = adapter.make_scheduler(settings.scheduler)
        if settings.guidance_scale > 1 and adapter.ignores_guidance(adapter.guidance(settings.guidance_scale, sched)):
            notes.append(f"guidance_scale {settings.guidance_scale:g} is ignored: this {adapter.family} model runs"
                         " without guidance")
        if settings.eta and "eta" not in step_kwargs(sched, None, settings.eta):
            notes.append(f"eta {settings.eta:g} is ignored: {type(sched).__name__} takes no eta (DDIM does)")
    return list(dict.fromkeys(notes))


def make_surgery(
    adapter: Adapter, settings: EditSettings, pictures: list[np.ndarray], maps: list[np.ndarray],
    keep: torch.Tensor, generator: torch.Generator, inpaint: bool,
) -> Surgery:
    """Encode the padded source and exemplars (one VAE encode and one noise draw each, source first, as
    diffusers orders them) and combine the grafts.

    pictures: padded (H, W, 3) uint8, source first; maps: each exemplar's (H, W) strength at the padded
    size; keep: (1, 1, h, w) latent keep map of the combined strength."""
    device, dtype, f = adapter.device, adapter.dtype, adapter.vae_scale_factor
    latent_size = tuple(keep.shape[-2:])
    exemplar_keeps = [to_latent_map(1.0 - m, latent_size).to(device) for m in maps]

    def encode(picture: np.ndarray, region: tuple[int, int, int, int] | None = None):
        if region is None:
            latents = adapter.encode_image(to_tensor(Image.fromarray(picture)), generator)
        else:  # only the area the exemplar's latents are used in, on a canvas of source latents
            x, y, w, h = region
            part = adapter.encode_image(to_tensor(Image.fromarray(picture[y:y + h, x:x + w])), generator)
            latents = surgery.source.clone()
            latents[..., y // f:(y + h) // f, x // f:(x + w) // f] = part
        return latents, randn_tensor(latents.shape, generator=generator, device=device, dtype=latents.dtype)

    surgery = Surgery(*encode(pictures[0]), keep=keep)
    if len(pictures) > 1:
        frame = pictures[0].shape[:2]
        regions = [encode_region(m, frame, f, ENCODE_MARGIN) if settings.exemplar_encode == "region" else None
                   for m in maps]
        encoded = [encode(p, region) for p, region in zip(pictures[1:], regions)]
        latents, noises = [z for z, _ in encoded], [n for _, n in encoded]
        # keep = 1 - m is resized (as the reference resizes its keep map); the graft is where it is exactly 0
        graft_weights = [(~(k > 0)).to(dtype) for k in exemplar_keeps]
        surgery.graft, surgery.graft_noise, total = combine_grafts(graft_weights, latents, noises)
        surgery.graft_mask = total > 0
        if settings.mode == "blend":
            # gray pixels are pinned to (and released from) a strength-weighted mix with the exemplars
            weights = [(1 - k).to(dtype) for k in exemplar_keeps]
            mixed, mixed_noise, amount = combine_grafts(weights, latents, noises)
            surgery.source, surgery.source_noise = blend_into_source(
                surgery.source, surgery.source_noise, amount.clamp(max=1), mixed, mixed_noise
            )
    if inpaint:
        # the masked source of inpainting models: blank (mid-gray) where released, encoded after all draws
        surgery.blank = adapter.blank_latents(pictures[0].shape[:2], generator)
    return surgery


def diffuse(
    base: Adapter, refiner: Adapter | None, inputs: Inputs, settings: EditSettings, generator: torch.Generator,
    image_prompts: list[tuple[Image.Image, float]], *, scale_to: tuple[int, int] | None, limits: Limits,
    suggest_crop: bool, on_step: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Run the model on `inputs` (the frame, or a crop of it); returns the picture (H, W, 3) uint8 and what
    the run did, for the metadata. scale_to: (W, H) to diffuse at (a resized crop), or None."""
    f, multiple = base.vae_scale_factor, base.size_multiple
    src = np.asarray(inputs.source)
    height, width = src.shape[:2]
    pictures = [src] + [np.asarray(e) for e in inputs.exemplars]
    strength, maps = inputs.strength, inputs.exemplar_maps
    if scale_to is not None:
        pictures = [np.asarray(Image.fromarray(p).resize(scale_to, Image.LANCZOS)) for p in pictures]
        strength, *maps = [resize_map(m, scale_to) for m in [strength, *maps]]

    # 1. Pad to the model's size multiple; the latent keep map
    padded = [pad(p, multiple) for p in pictures]
    frame = padded[0].shape[:2]
    latent_size = (frame[0] // f, frame[1] // f)
    keep = to_latent_map(pad(1.0 - strength, multiple), latent_size).to(base.device)

    # 2. Limits that need the model, before any model work
    if limits.check_memory:
        crop = None
        if suggest_crop and (edited := region_box(strength)) is not None:
            crop = crop_around(edited, settings.crop_margin, (frame[1], frame[0]), multiple)[2:][::-1]
        batch = 2 if base.guidance(settings.guidance_scale).enabled else 1
        tiled = bool(getattr(base.autoencoder, "use_tiling", False))
        check_memory(base, frame, batch, tiled, crop_frame=crop, device=base.device)

    # 3. Stages (timesteps on fresh schedulers, conditioning), then the surgery
    stages = make_stages(base, refiner, settings, generator, latent_size, frame, image_prompts)
    surgery = make_surgery(base, settings, padded, [pad(m, multiple) for m in maps], keep, generator,
                           inpaint=any(s.adapter.inpaint for s in stages))

    # 4. Skip the model calls whose output the next pin overwrites, and denoise
    num_steps = sum(len(s.timesteps) for s in stages)
    exact = all(skipping_is_exact(s.scheduler, settings.eta) for s in stages)
    skip = settings.skip_steps == "always" or (settings.skip_steps == "auto" and exact)
    start = first_needed_step(keep, num_steps) if skip else 0
    latents, calls = denoise(stages, surgery, start, on_step)

    # 5. Decode with the last model, crop the padding, undo the resize
    decoded = stages[-1].adapter.decode(latents)
    if not bool(torch.isfinite(decoded).all()):
        raise NonFiniteError(
            f"the decoded image has NaN or infinite values ({str(decoded.dtype).removeprefix('torch.')} decoder);"
            " nothing was written. Use fp32 (--dtype fp32) or bf16 if half precision overflows"
        )
    out = np.array(to_pil(decoded))[: pictures[0].shape[0], : pictures[0].shape[1]]
    if scale_to is not None:
        out = np.asarray(Image.fromarray(out).resize((width, height), Image.LANCZOS))
    details = {
        "scheduler_class": type(stages[0].scheduler).__name__,
        **stages[0].cond.settings,
        "dtype": str(base.dtype).removeprefix("torch."),
        "switch_steps": len(stages[0].timesteps) if len(stages) > 1 else None,
        "steps_run": num_steps,
        "model_calls": calls,
        "skipped_steps": start,
        "diffused_size": [frame[1], frame[0]],
    }
    return out, details
