"""The one denoising loop, with the latent surgery of PIXELS (arXiv 2501.09826, Sec. 3) inside it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..adapters import Adapter, Conditioning
from ..errors import NonFiniteError
from .guidance import ClassifierFreeGuidance
from .release import keep_mask


@dataclass
class Surgery:
    """What the loop blends. Latents are (1, C, h, w); masks are (1, 1, h, w) and broadcast over C."""

    source: torch.Tensor  # clean source latents zS
    source_noise: torch.Tensor  # the one noise draw for the source, shared by every step
    keep: torch.Tensor  # float keep map in [0, 1] (1 - strength): pinned while keep > i/K
    graft: torch.Tensor | None = None  # clean exemplar latents, combined over all exemplars
    graft_noise: torch.Tensor | None = None  # their noise, combined with unit variance
    graft_mask: torch.Tensor | None = None  # bool: where the exemplar latents replace the source at step 0
    blank: torch.Tensor | None = None  # inpainting models: latents of a blank frame, shown where released


def combine_grafts(
    weights: list[torch.Tensor], latents: list[torch.Tensor], noises: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Merge several exemplars into one, in latent space.

    weights: (1, 1, h, w) per exemplar, >= 0 (binary graft regions in paper mode); latents, noises:
    (1, C, h, w) per exemplar. Where weights overlap the clean latents are averaged by weight and the
    noises combined as sum(w n) / sqrt(sum(w^2)), which keeps unit variance; where only one exemplar
    has weight its own latents and noise pass unchanged. Returns (latents, noise, total weight).
    """
    stacked = torch.stack(weights)
    total = stacked.sum(0)
    latent = sum(w * z for w, z in zip(weights, latents)) / torch.where(total > 0, total, 1)
    norm = stacked.square().sum(0).sqrt()
    noise = sum(w * n for w, n in zip(weights, noises)) / torch.where(norm > 0, norm, 1)
    return latent, noise, total


def blend_into_source(
    source: torch.Tensor, source_noise: torch.Tensor, amount: torch.Tensor, graft: torch.Tensor,
    graft_noise: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend mode: what a pixel is pinned to, and released from, becomes a mix of source and exemplar.

    amount: (1, 1, h, w) in [0, 1]. Clean latents mix linearly; noises mix as
    ((1 - a) nS + a nE) / sqrt((1 - a)^2 + a^2), so the noised mix keeps the schedule's noise level.
    amount 0 returns the source exactly, amount 1 the exemplar exactly.
    """
    keep = 1 - amount
    clean = keep * source + amount * graft
    noise = (keep * source_noise + amount * graft_noise) / (keep.square() + amount.square()).sqrt()
    return clean, noise


def graft_exemplars(
    source: torch.Tensor, source_noise: torch.Tensor, keeps: list[torch.Tensor], latents: list[torch.Tensor],
    noises: list[torch.Tensor], mode: str, dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The latent surgery of exemplars on a source: keeps are the exemplars' keep maps 1 - m resized to the
    latent (as the reference resizes its keep map), (1, 1, h, w) each; latents and noises theirs, (1, C, h, w).

    Each exemplar is grafted where its keep map is exactly 0 (several are merged by `combine_grafts`); in blend
    mode what the source's pixels are pinned to and released from becomes their strength-weighted mix with the
    exemplars (`blend_into_source`). dtype: of the weights (default the source's). Returns (source, source
    noise, graft, graft noise, graft mask (bool))."""
    dtype = source.dtype if dtype is None else dtype
    graft, graft_noise, total = combine_grafts([(~(k > 0)).to(dtype) for k in keeps], latents, noises)
    if mode == "blend":
        mixed, mixed_noise, amount = combine_grafts([(1 - k).to(dtype) for k in keeps], latents, noises)
        source, source_noise = blend_into_source(source, source_noise, amount.clamp(max=1), mixed, mixed_noise)
    return source, source_noise, graft, graft_noise, total > 0


def step_kwargs(scheduler, generator: torch.Generator | None, eta: float = 0.0) -> dict:
    """Extra `scheduler.step` arguments that only some schedulers accept (as diffusers passes them)."""
    params = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict = {}
    if "eta" in params:
        kwargs["eta"] = eta
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


@dataclass
class Stage:
    """One model's share of the schedule (SDXL base then refiner hands the latents on mid-schedule)."""

    adapter: Adapter
    scheduler: Any
    timesteps: torch.Tensor
    cond: Conditioning
    guidance: ClassifierFreeGuidance
    step_kwargs: dict


def _resume(scheduler, skipped: int) -> None:
    """Start `scheduler` `skipped` steps later than it was set up to (for sigma-indexed schedulers)."""
    begin = getattr(scheduler, "begin_index", None)
    if skipped and begin is not None:
        scheduler.set_begin_index(begin + skipped * getattr(scheduler, "order", 1))


@torch.no_grad()
def denoise(
    stages: list[Stage],
    surgery: Surgery,
    start: int = 0,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, int]:
    """Run the K steps of all stages as one schedule; returns the final latents (1, C, h, w) and the
    number of model calls made.

    A pixel is pinned while keep > i/K, with i counted across stages. Steps before `start` are
    skipped (see `schedule.first_needed_step`): the latents at `start` are rebuilt from the source.
    """
    num_steps = sum(len(stage.timesteps) for stage in stages)
    latents: torch.Tensor | None = None
    calls = 0
    finite: list[tuple[int, str, torch.Tensor]] = []  # (step, family, whether its latents were all finite)
    i = -1
    for stage in stages:
        adapter, scheduler, guidance = stage.adapter, stage.scheduler, stage.guidance
        _resume(scheduler, min(max(start - (i + 1), 0), len(stage.timesteps)))
        for t in stage.timesteps:
            i += 1
            if i < start:
                continue
            pinned = keep_mask(surgery.keep, i, num_steps)
            noised_source = adapter.add_noise(scheduler, surgery.source, surgery.source_noise, t)
            if latents is None:
                # Latent surgery: the released pixels start from the noised exemplar where it is grafted.
                latents = noised_source
                if surgery.graft is not None:
                    noised_graft = adapter.add_noise(scheduler, surgery.graft, surgery.graft_noise, t)
                    latents = torch.where(surgery.graft_mask, noised_graft, latents)
            # Pin the pixels not yet released to the noised source (Differential Diffusion).
            latents = torch.where(pinned, noised_source, latents)

            model_input = adapter.scale_model_input(scheduler, guidance.expand(latents), t)
            if adapter.inpaint:
                # Inpainting models see which pixels are still to be made and the source around them.
                assert surgery.blank is not None
                masked = torch.where(pinned, surgery.source, surgery.blank)
                model_input = adapter.inpaint_input(
                    model_input, guidance.expand((~pinned).to(latents.dtype)), guidance.expand(masked)
                )
            prediction = guidance.combine(adapter.predict(model_input, t, stage.cond))
            latents = scheduler.step(prediction, t, latents, **stage.step_kwargs, return_dict=False)[0]
            calls += 1
            finite.append((i, adapter.family, torch.isfinite(latents).all()))  # read once, after the loop
            if on_step is not None:
                on_step(i + 1 - start, num_steps - start)
    assert latents is not None
    _check_finite(finite, num_steps, latents.dtype)
    return latents, calls


def _check_finite(finite: list[tuple[int, str, torch.Tensor]], num_steps: int, dtype: torch.dtype) -> None:
    """Raise at the first step whose latents were NaN or infinite. The flags stay on the device during the
    loop, so that checking them costs no synchronisation per step on a GPU."""
    if not finite or bool(torch.stack([flag for _, _, flag in finite]).all()):
        return
    i, family, _ = next(item for item in finite if not bool(item[2]))
    raise NonFiniteError(
        f"the latents became NaN or infinite at step {i + 1} of {num_steps} ({family} model,"
        f" {str(dtype).removeprefix('torch.')}); nothing was written. Lower the guidance scale,"
        " or use dtype='fp32' (or 'bf16') if half precision overflows"
    )
