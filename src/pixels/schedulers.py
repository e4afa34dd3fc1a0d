"""Scheduler choice by short name; the model's own scheduler is the default."""

from __future__ import annotations

from .errors import InputError

# short name -> (diffusers class name, config overrides); the classes are imported when one is made
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "dpm++2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}
SPELLINGS = {"euler_a": "euler-a", "euler-ancestral": "euler-a", "dpmpp-2m": "dpm++2m", "dpmpp2m": "dpm++2m",
             "dpm++-2m": "dpm++2m", "dpm++_2m": "dpm++2m"}


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
