"""The release schedule: which timesteps run, and when each latent pixel is released.

PIXELS (arXiv 2501.09826) and Differential Diffusion (Levin & Fried 2023) pin a pixel whose
keep value is m to the noised source while m > i/K, i.e. for about the first m*K of K steps.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .settings import no_steps_left, steps_run


def img2img_timesteps(
    scheduler, num_inference_steps: int, strength: float, denoising_start: float | None, device: torch.device,
    denoising_end: float | None = None,
) -> torch.Tensor:
    """Set the scheduler up and return the truncated img2img timesteps t_0 > ... > t_{K-1}.

    Same truncation as diffusers' SD/SDXL img2img pipelines, so a full-strength edit runs the very
    same steps: `strength` keeps the last int(N * strength) steps; `denoising_start` (SDXL refiner
    style) keeps the steps below the training timestep (1 - denoising_start) * T instead;
    `denoising_end` (SDXL base style) stops before the training timestep (1 - denoising_end) * T.
    """
    check_steps(scheduler, num_inference_steps)
    scheduler.set_timesteps(num_inference_steps, device=device)
    order = getattr(scheduler, "order", 1)
    if denoising_start is None:
        begin = (num_inference_steps - steps_run(num_inference_steps, strength)) * order
    else:
        train_steps = scheduler.config.num_train_timesteps
        cutoff = int(round(train_steps - denoising_start * train_steps))
        count = int((scheduler.timesteps < cutoff).sum().item())
        if order == 2 and count % 2 == 0:
            count += 1
        begin = len(scheduler.timesteps) - count
    timesteps = scheduler.timesteps[begin:]
    if denoising_end is not None:
        train_steps = scheduler.config.num_train_timesteps
        cutoff = int(round(train_steps - denoising_end * train_steps))
        timesteps = timesteps[: int((timesteps >= cutoff).sum().item())]
    if len(timesteps) == 0 and denoising_end is None:
        if denoising_start is None:
            raise InputError(no_steps_left(num_inference_steps, strength), param="strength")
        raise InputError(f"{denoising_start:g} with {num_inference_steps} steps leaves no denoising step: the"
                         " schedule has none below it; lower it or give more steps", param="denoising_start")
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(begin)
    return timesteps


def check_steps(scheduler, num_inference_steps: int) -> None:
    """Refuse more steps than the timesteps the model's scheduler was trained with (before any model work)."""
    trained = scheduler.config.get("num_train_timesteps")
    if trained and num_inference_steps > trained:
        raise InputError(
            f"{num_inference_steps} is more than the {trained} timesteps this model's"
            f" scheduler ({type(scheduler).__name__}) was trained with; use at most {trained}",
            param="num_inference_steps",
        )


def to_latent_map(pixel_map: np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a (H, W) map to latent resolution `size` = (h, w): bilinear, no antialias, as the reference.

    Returns (1, 1, h, w) float32.
    """
    t = torch.as_tensor(pixel_map, dtype=torch.float32)[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=False)


def keep_mask(keep: torch.Tensor, step: int, num_steps: int) -> torch.Tensor:
    """Pixels still pinned to the noised source at step `step` of `num_steps`: keep > step / K (strict)."""
    return keep > step / num_steps



def first_needed_step(keep: torch.Tensor, num_steps: int) -> int:
    """The first step whose model call matters: one before the first step that releases any pixel.

    While every pixel is pinned, the model's output is overwritten by the next step's pin, so the calls
    before this step can be skipped. With nothing ever released only the last call is needed.
    """
    for step in range(num_steps):
        if not bool(keep_mask(keep, step, num_steps).all()):
            return max(step - 1, 0)
    return num_steps - 1
