"""Scheduler choice by short name; the model's own scheduler is the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InputError

# short name -> (diffusers class name, config overrides); the classes are imported when one is made
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}
SPELLINGS = {"euler_a": "euler-a", "euler-ancestral": "euler-a", "dpmpp-2m": "dpm++2m", "dpmpp2m": "dpm++2m",
             "dpm++-2m": "dpm++2m", "dpm++_2m": "dpm++2m"}

# diffusers class -> the sampler name A1111 (stable-diffusion-webui) writes in its `parameters` text, for the
# class's usual configuration; `a1111_sampler` refines it from the configuration where that is known
A1111_SAMPLERS: dict[str, str] = {
    "DDIMScheduler": "DDIM",
    "DDPMScheduler": "DDPM",
    "PNDMScheduler": "PLMS",  # PNDM without its Runge-Kutta warm-up steps, as Stable Diffusion ships it
    "EulerDiscreteScheduler": "Euler",
    "EulerAncestralDiscreteScheduler": "Euler a",
    "LMSDiscreteScheduler": "LMS",
    "HeunDiscreteScheduler": "Heun",
    "KDPM2DiscreteScheduler": "DPM2",
    "KDPM2AncestralDiscreteScheduler": "DPM2 a",
    "DPMSolverMultistepScheduler": "DPM++ 2M",
    "DPMSolverSDEScheduler": "DPM++ SDE",
    "UniPCMultistepScheduler": "UniPC",
    "LCMScheduler": "LCM",
    "FlowMatchEulerDiscreteScheduler": "Flow Match Euler",
}
KARRAS_SAMPLERS = ("Euler", "Euler a", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2M", "DPM++ 2M SDE", "DPM++ 3M SDE",
                   "DPM++ SDE")  # the A1111 samplers that take Karras sigmas, written "DPM++ 2M Karras"
_MULTISTEP = {("dpmsolver++", 2): "DPM++ 2M", ("sde-dpmsolver++", 2): "DPM++ 2M SDE",
              ("sde-dpmsolver++", 3): "DPM++ 3M SDE"}  # DPMSolverMultistepScheduler: (algorithm, order) -> name


def a1111_sampler(scheduler_class: str | None, config: Mapping[str, Any] | None = None) -> str | None:
    """The sampler name A1111 writes for a diffusers scheduler class ("DPM++ 2M", "Euler a"), with " Karras"
    when `config` (the scheduler's configuration, where known) uses Karras sigmas; the class name itself for a
    scheduler A1111 has no name for, and None for no class."""
    if not isinstance(scheduler_class, str) or not scheduler_class:
        return None
    config = config or {}
    name = A1111_SAMPLERS.get(scheduler_class)
    if scheduler_class == "DPMSolverMultistepScheduler":
        name = _MULTISTEP.get((config.get("algorithm_type", "dpmsolver++"), config.get("solver_order", 2)))
    elif scheduler_class == "PNDMScheduler" and config.get("skip_prk_steps") is False:
        name = "PNDM"
    if name is None:
        return scheduler_class
    return f"{name} Karras" if config.get("use_karras_sigmas") and name in KARRAS_SAMPLERS else name


def scheduler_name(name: str | None) -> str | None:
    """Canonical scheduler name (None = the model's own); raises InputError for unknown names."""
    if name is None or name == "default":
        return None
    key = SPELLINGS.get(name.lower(), name.lower())
    if key not in SCHEDULERS:
        raise InputError(f"unknown scheduler {name!r}; choose one of default, {', '.join(SCHEDULERS)}",
                         param="scheduler")
    return key


def make_scheduler(model_scheduler, name: str | None):
    """A fresh scheduler for one edit: schedulers are stateful, so the model's own is never stepped."""
    key = scheduler_name(name)
    if key is None:
        return type(model_scheduler).from_config(model_scheduler.config)
    import diffusers

    name, overrides = SCHEDULERS[key]
    return getattr(diffusers, name).from_config(model_scheduler.config, **overrides)


def skipping_is_exact(scheduler, eta: float = 0.0) -> bool:
    """Whether starting this scheduler mid-schedule gives the very latents a full run would give there.

    True for deterministic first-order solvers, whose step depends only on the current latents, the
    model output and the step position: DDIM with eta 0, Euler without churn, flow-matching Euler.
    Multistep solvers (DPM++, UniPC, PNDM) keep a history of model outputs and ancestral/stochastic
    ones draw noise at each step, so skipping steps changes their result slightly.
    """
    name = type(scheduler).__name__
    config = scheduler.config
    if name == "DDIMScheduler":
        return eta == 0.0
    if name == "EulerDiscreteScheduler":
        return True  # churn is a step argument pixels never sets (0: no noise is added)
    if name == "FlowMatchEulerDiscreteScheduler":
        return not config.get("stochastic_sampling", False)
    return False


def draws_noise(scheduler, eta: float) -> bool:
    """Whether a scheduler's steps draw noise (ancestral and stochastic samplers, DDIM with eta > 0): edits
    batched together would then share draws that each would have made alone, so they are not batched."""
    name, config = type(scheduler).__name__, scheduler.config
    if name == "DDIMScheduler":
        return eta > 0
    if name == "FlowMatchEulerDiscreteScheduler":
        return bool(config.get("stochastic_sampling", False))
    return name in ("EulerAncestralDiscreteScheduler", "DDPMScheduler", "KDPM2AncestralDiscreteScheduler",
                    "LCMScheduler", "TCDScheduler") or "sde" in str(config.get("algorithm_type", ""))
