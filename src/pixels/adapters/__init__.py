"""Model-family adapters, chosen from the pipeline class a model folder declares."""

from __future__ import annotations

from ..errors import InputError
from .base import Adapter, Conditioning
from .flow import FluxAdapter, StableDiffusion3Adapter
from .kandinsky import KandinskyV22Adapter
from .pixel import PixelSpaceAdapter
from .sd import StableDiffusionAdapter
from .sdxl import StableDiffusionXLAdapter

ADAPTERS: tuple[type[Adapter], ...] = (StableDiffusionAdapter, StableDiffusionXLAdapter, PixelSpaceAdapter)
ADAPTERS += (StableDiffusion3Adapter, FluxAdapter)
ADAPTERS += (KandinskyV22Adapter,)

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
            f"model family {pipeline_class!r} is not supported; supported pipelines: {supported}", param=model
        ) from None


def single_file_pipeline(keys: list[str] | None) -> str:
    """The pipeline class of an original-layout single-file checkpoint, from its tensor names (None: a
    pickle, whose names cannot be read safely): the first family that claims it, subclasses (SDXL) before
    the families they extend (SD)."""
    for adapter in sorted(ADAPTERS, key=lambda a: -len(a.__mro__)):
        if (pipeline := adapter.single_file_pipeline(keys)) is not None:
            return pipeline
    raise InputError("not a single-file checkpoint of a family pixels knows", param="model")


def adapter_for(pipe) -> Adapter:
    """Wrap a loaded diffusers pipeline, after checking its denoiser is one the adapter can drive."""
    cls = adapter_class(type(pipe).__name__, getattr(pipe, "name_or_path", None) or type(pipe).__name__)
    cls.check(pipe)
    return cls(pipe)


__all__ = ["ADAPTERS", "SUPPORTED_PIPELINES", "Adapter", "Conditioning", "adapter_class", "adapter_for",
           "single_file_pipeline"]
