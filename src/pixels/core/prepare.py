"""Preparing the one denoising loop, as plain functions with the data passed explicitly: the stages (which
model runs which timesteps with which conditioning), the latent surgery (encoded source and exemplars,
noises, keep map, grafts), `prepare` and `finish` around the loop for one edit, and `denoise_batch` for
several edits sharing model calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from ..adapters import Adapter
from ..errors import InputError, NonFiniteError
from .control import Control, control_input
from .crop import encode_region, resize_map
from .frame import Inputs, RegionText, pad, to_pil, to_tensor
from .loop import Stage, Surgery, denoise, graft_exemplars, step_kwargs
from .release import first_needed_step, to_latent_map
from .schedulers import draws_noise, skipping_is_exact
from .settings import EditSettings

DEFAULT_SWITCH = 0.8  # base-to-refiner hand-off: the share of the schedule the base model runs
ENCODE_MARGIN = 64  # pixels of context around an exemplar's region with exemplar_encode="region"


def make_stages(
    base: Adapter, refiner: Adapter | None, settings: EditSettings, generator: torch.Generator,
    latent_size: tuple[int, int], frame: tuple[int, int], image_prompts: list[tuple[Image.Image, float]],
    regions: list[tuple[Image.Image, float, np.ndarray]] = (), control: tuple[np.ndarray, Control] | None = None,
    texts: list[RegionText] = (),
) -> list[Stage]:
    """The models that run the schedule: the base model, then the refiner from `switch_at` on.

    latent_size: (h, w) of the latents; frame: (H, W) of the padded picture; regions: image prompts masked to
    a region (exemplar, weight, (H, W) map); control: the padded control image (H, W, 3) and its settings;
    texts: what regions condition of their own (text, LoRA scales by loaded adapter), on padded (H, W) maps."""
    def stage(adapter: Adapter, **truncation) -> Stage:
        sched = adapter.make_scheduler(settings.scheduler)
        timesteps = adapter.timesteps(sched, settings.num_inference_steps, settings.strength,
                                      latent_size=latent_size, **truncation)
        guidance = replace(adapter.guidance(settings.guidance_scale, sched), rescale=settings.guidance_rescale)
        adapter.check_prompt_images(image_prompts, regions)
        cond = adapter.encode_prompt(settings.prompt, settings.negative_prompt, guidance, frame, image_prompts,
                                     regions)
        cond = adapter.with_texts(cond, texts, settings, guidance, latent_size)
        if control is not None:
            if adapter.controlnet is None:
                raise InputError(f"this {adapter.family} model has no ControlNet: load one with"
                                 " Editor.load_controlnet() to use a control", param="control")
            cond.control = control_input(control[0], control[1], timesteps, 2 if guidance.enabled else 1,
                                         adapter.device, adapter.dtype)
            cond.shared = False  # the control image is per edit
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
        surgery.source, surgery.source_noise, surgery.graft, surgery.graft_noise, surgery.graft_mask = \
            graft_exemplars(surgery.source, surgery.source_noise, exemplar_keeps, latents, noises, settings.mode,
                            dtype)
    if inpaint:
        # the masked source of inpainting models: blank (mid-gray) where released, encoded after all draws
        surgery.blank = adapter.blank_latents(pictures[0].shape[:2], generator)
    return surgery


@dataclass
class Prepared:
    """One edit ready for the loop: its stages, its surgery, where it starts, and how to finish it."""

    stages: list[Stage]
    surgery: Surgery
    start: int  # the first step whose model call matters (step skipping)
    picture: tuple[int, int]  # (h, w) diffused, before padding
    size: tuple[int, int]  # (W, H) of the result, after undoing a crop resize
    frame: tuple[int, int]  # (H, W) padded
    resized: bool  # diffused at another size (crop_resize): resized back after decoding
    batchable: bool  # its steps draw no noise, so it may share model calls with other edits


def prepare(
    base: Adapter, refiner: Adapter | None, inputs: Inputs, settings: EditSettings, generator: torch.Generator,
    image_prompts: list[tuple[Image.Image, float]], *, scale_to: tuple[int, int] | None,
    control: Control | None = None,
) -> Prepared:
    """Everything before the loop for `inputs` (the frame, or a crop of it): padding, the keep map, stages,
    surgery and the first step.
    scale_to: (W, H) to diffuse at (a resized crop), or None."""
    f, multiple = base.vae_scale_factor, base.size_multiple
    src = np.asarray(inputs.source)
    height, width = src.shape[:2]
    pictures = [src] + [np.asarray(e) for e in inputs.exemplars]
    strength, maps = inputs.strength, inputs.exemplar_maps
    text_maps = [text.map for text in inputs.texts]
    control_picture = None if inputs.control is None else inputs.control
    if scale_to is not None:
        pictures = [np.asarray(Image.fromarray(p).resize(scale_to, Image.LANCZOS)) for p in pictures]
        strength, *maps = [resize_map(m, scale_to) for m in [strength, *maps]]
        text_maps = [resize_map(m, scale_to) for m in text_maps]
        if control_picture is not None:
            control_picture = control_picture.resize(scale_to, Image.BILINEAR)

    # 1. Pad to the model's size multiple; the latent keep map
    padded_pictures = [pad(p, multiple) for p in pictures]
    frame = padded_pictures[0].shape[:2]
    latent_size = (frame[0] // f, frame[1] // f)
    keep = to_latent_map(pad(1.0 - strength, multiple), latent_size).to(base.device)

    # 2. Stages (timesteps on fresh schedulers, conditioning), then the surgery
    padded_maps = [pad(m, multiple) for m in maps]
    regions = [(picture, weight, padded_maps[k]) for picture, weight, k in inputs.conditions]
    controls = None if control is None else (pad(np.asarray(control_picture), multiple), control)
    texts = [text.on(pad(m, multiple)) for text, m in zip(inputs.texts, text_maps)]
    stages = make_stages(base, refiner, settings, generator, latent_size, frame, image_prompts, regions, controls,
                         texts)
    surgery = make_surgery(base, settings, padded_pictures, padded_maps, keep, generator,
                           inpaint=any(s.adapter.inpaint for s in stages))

    # 3. Skip the model calls whose output the next pin overwrites
    num_steps = sum(len(s.timesteps) for s in stages)
    exact = all(skipping_is_exact(s.scheduler, settings.eta) for s in stages)
    skip = settings.skip_steps == "always" or (settings.skip_steps == "auto" and exact)
    start = first_needed_step(keep, num_steps) if skip else 0
    batchable = all(not draws_noise(s.scheduler, settings.eta) for s in stages)
    return Prepared(stages, surgery, start, pictures[0].shape[:2], (width, height), frame, scale_to is not None,
                    batchable)


def finish(prepared: Prepared, latents: torch.Tensor, calls: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode an edit's final latents (1, C, h, w) with the last model, crop the padding and undo a resize;
    returns the picture (H, W, 3) uint8 and what the run did, for the metadata."""
    stages = prepared.stages
    decoded = stages[-1].adapter.decode(latents)
    if not bool(torch.isfinite(decoded).all()):
        raise NonFiniteError(
            f"the decoded image has NaN or infinite values ({str(decoded.dtype).removeprefix('torch.')} decoder);"
            " nothing was written. Use dtype='fp32' (or 'bf16') if half precision overflows"
        )
    h, w = prepared.picture
    out = np.array(to_pil(decoded))[:h, :w]
    if prepared.resized:
        out = np.asarray(Image.fromarray(out).resize(prepared.size, Image.LANCZOS))
    details = {
        "scheduler_class": type(stages[0].scheduler).__name__,
        **stages[0].cond.settings,
        "dtype": str(stages[0].adapter.dtype).removeprefix("torch."),
        "switch_steps": len(stages[0].timesteps) if len(stages) > 1 else None,
        "steps_run": sum(len(s.timesteps) for s in stages),
        "model_calls": calls,
        "skipped_steps": prepared.start,
        "diffused_size": [prepared.frame[1], prepared.frame[0]],
    }
    return out, details


# -- several edits in one pass --------------------------------------------------------------------------------
def batch_key(prepared: Prepared) -> tuple | None:
    """What edits sharing model calls must have in common (the same frame, models, timesteps and guidance);
    None for an edit that must run alone. Edits whose `settings.schedule_key` differs never share one."""
    if not prepared.batchable or any(not s.cond.shared for s in prepared.stages):
        return None
    stages = tuple((id(s.adapter), type(s.scheduler).__name__, _config_key(s.scheduler),
                    tuple(s.timesteps.tolist()), s.guidance) for s in prepared.stages)
    return prepared.frame, stages, prepared.surgery.blank is not None


def _config_key(scheduler) -> str:
    """A scheduler's configuration as a comparable value: edits stepped by one scheduler must agree on it
    (solver order, prediction type...), not only on its class."""
    return json.dumps(dict(scheduler.config), sort_keys=True, default=str)


def _stack(parts: list[torch.Tensor | None], fill: list[torch.Tensor] | None = None) -> torch.Tensor:
    """(1, ...) tensors of several edits as one (B, ...) batch; `fill` stands in for a missing part."""
    return torch.cat([part if part is not None else fill[k] for k, part in enumerate(parts)])


def denoise_batch(batch: list[Prepared], on_step: Callable[[int, int], None] | None = None
                  ) -> list[tuple[torch.Tensor, int]]:
    """Denoise edits of one `batch_key` together: one model call per step for all of them, each keeping its
    own keep map, grafts, noises and conditioning. The batch starts at the earliest step any of them needs
    (an edit that would have started later is fully pinned until then, so its result is unchanged).
    Returns each edit's final latents (1, C, h, w) and the number of model calls."""
    first = batch[0]
    if len(batch) == 1:
        return [denoise(first.stages, first.surgery, first.start, on_step)]
    keys = {batch_key(p) for p in batch}
    if None in keys or len(keys) > 1:
        raise ValueError("denoise_batch: the edits do not share a frame, models, timesteps and guidance")
    surgeries = [p.surgery for p in batch]
    no_graft = [torch.zeros_like(s.keep, dtype=torch.bool) for s in surgeries]
    surgery = Surgery(
        source=_stack([s.source for s in surgeries]),
        source_noise=_stack([s.source_noise for s in surgeries]),
        keep=_stack([s.keep for s in surgeries]),
        graft=_stack([s.graft for s in surgeries], [s.source for s in surgeries]),
        graft_noise=_stack([s.graft_noise for s in surgeries], [s.source_noise for s in surgeries]),
        graft_mask=_stack([s.graft_mask for s in surgeries], no_graft),
        blank=None if first.surgery.blank is None else _stack([s.blank for s in surgeries]),
    )
    stages = [replace(stage, cond=stage.adapter.merge_conditions([p.stages[k].cond for p in batch], stage.guidance))
              for k, stage in enumerate(first.stages)]
    latents, calls = denoise(stages, surgery, min(p.start for p in batch), on_step)
    return [(latents[k:k + 1], calls) for k in range(len(batch))]
