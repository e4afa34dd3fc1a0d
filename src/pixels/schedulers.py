"""Scheduler choice by short name; the model's own scheduler is the default."""

from __future__ import annotations

from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
)

from .errors import InputError

SCHEDULERS: dict[str, tuple[type, dict]] = {
    "ddim": (DDIMScheduler, {}),
    "euler": (EulerDiscreteScheduler, {}),
    "euler-a": (EulerAncestralDiscreteScheduler, {}),
    "dpm++2m": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
}
ALIASES = {"euler_a": "euler-a", "euler-ancestral": "euler-a", "dpmpp-2m": "dpm++2m", "dpmpp2m": "dpm++2m",
           "dpm++-2m": "dpm++2m", "dpm++_2m": "dpm++2m"}


def scheduler_name(name: str | None) -> str | None:
    """Canonical scheduler name (None = the model's own); raises InputError for unknown names."""
    if name is None or name == "default":
        return None
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SCHEDULERS:
        raise InputError(f"scheduler: unknown scheduler {name!r}; choose one of default, {', '.join(SCHEDULERS)}")
    return key


def make_scheduler(model_scheduler, name: str | None):
    """A fresh scheduler for one edit: schedulers are stateful, so the model's own is never stepped."""
    key = scheduler_name(name)
    if key is None:
        return type(model_scheduler).from_config(model_scheduler.config)
    cls, overrides = SCHEDULERS[key]
    return cls.from_config(model_scheduler.config, **overrides)
