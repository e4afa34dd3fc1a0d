"""Model-family adapters, chosen from the pipeline class a model folder declares."""

from __future__ import annotations

from ..errors import InputError
from .base import Adapter, Conditioning
from .sd import StableDiffusionAdapter
from .sdxl import StableDiffusionXLAdapter

ADAPTERS: tuple[type[Adapter], ...] = (StableDiffusionAdapter, StableDiffusionXLAdapter)

SUPPORTED_PIPELINES: dict[str, type[Adapter]] = {
    name: adapter for adapter in ADAPTERS for name in adapter.pipeline_classes
}


def adapter_class(pipeline_class: str, model: str = "model") -> type[Adapter]:
    """The adapter for a diffusers pipeline class name (the `_class_name` of model_index.json)."""
    try:
        return SUPPORTED_PIPELINES[pipeline_class]
    except KeyError:
        supported = ", ".join(sorted(SUPPORTED_PIPELINES))
        raise InputError(
            f"{model}: model family {pipeline_class!r} is not supported; supported pipelines: {supported}"
        ) from None


def adapter_for(pipe) -> Adapter:
    """Wrap a loaded diffusers pipeline, after checking its denoiser is one the adapter can drive."""
    cls = adapter_class(type(pipe).__name__, getattr(pipe, "name_or_path", None) or type(pipe).__name__)
    unet = getattr(pipe, "unet", None)
    vae = getattr(pipe, "vae", None)
    if unet is None or vae is None:
        raise InputError(f"{type(pipe).__name__}: the pipeline needs both a unet and a vae component")
    if unet.config.in_channels != vae.config.latent_channels:
        raise InputError(
            f"{type(pipe).__name__}: the UNet takes {unet.config.in_channels} input channels but the VAE makes"
            f" {vae.config.latent_channels}; inpainting checkpoints (9-channel UNets) are not supported yet"
        )
    return cls(pipe)


__all__ = ["ADAPTERS", "SUPPORTED_PIPELINES", "Adapter", "Conditioning", "adapter_class", "adapter_for"]
