"""Short names for common models, and whether each is already in the local Hugging Face cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KnownModel:
    alias: str
    repo: str  # hub id ("" for models bundled with pixels)
    family: str
    note: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # recommended settings: `pixels edit` defaults


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("demo", "", "pixel", "bundled with pixels, offline; small pictures, no prompt",
               {"num_inference_steps": 100, "strength": 0.15, "guidance_scale": 1.0}),
    KnownModel("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd", "512 px",
               {"num_inference_steps": 50, "guidance_scale": 7.5}),
    KnownModel("sd21", "stabilityai/stable-diffusion-2-1", "sd", "768 px, v-prediction",
               {"num_inference_steps": 50, "guidance_scale": 7.5, "guidance_rescale": 0.7}),
    KnownModel("sd21-base", "stabilityai/stable-diffusion-2-1-base", "sd", "512 px",
               {"num_inference_steps": 50, "guidance_scale": 7.5}),
    KnownModel("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl", "1024 px",
               {"num_inference_steps": 40, "guidance_scale": 7.0}),
    KnownModel("sdxl-refiner", "stabilityai/stable-diffusion-xl-refiner-1.0", "sdxl",
               "the authors' setting", {"denoising_start": 0.6, "num_inference_steps": 100, "guidance_scale": 17.5}),
    KnownModel("sd15-inpaint", "stable-diffusion-v1-5/stable-diffusion-inpainting", "sd", "inpainting UNet",
               {"num_inference_steps": 50, "guidance_scale": 7.5}),
    KnownModel("sdxl-inpaint", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1", "sdxl", "inpainting UNet",
               {"num_inference_steps": 40, "guidance_scale": 7.0}),
    KnownModel("kandinsky22", "kandinsky-community/kandinsky-2-2-decoder", "kandinsky",
               "loads kandinsky-community/kandinsky-2-2-prior too; 768 px",
               {"num_inference_steps": 100, "guidance_scale": 4.0}),
    KnownModel("kandinsky22-inpaint", "kandinsky-community/kandinsky-2-2-decoder-inpaint", "kandinsky",
               "inpainting UNet; loads the prior too", {"num_inference_steps": 100, "guidance_scale": 4.0}),
    KnownModel("sd3", "stabilityai/stable-diffusion-3-medium-diffusers", "sd3", "gated",
               {"num_inference_steps": 28, "guidance_scale": 7.0}),
    KnownModel("sd35", "stabilityai/stable-diffusion-3.5-medium", "sd3", "gated",
               {"num_inference_steps": 40, "guidance_scale": 4.5}),
    KnownModel("sd35-large", "stabilityai/stable-diffusion-3.5-large", "sd3", "gated",
               {"num_inference_steps": 28, "guidance_scale": 3.5}),
    KnownModel("flux-schnell", "black-forest-labs/FLUX.1-schnell", "flux", "",
               {"num_inference_steps": 4, "guidance_scale": 0.0}),
    KnownModel("flux-dev", "black-forest-labs/FLUX.1-dev", "flux", "gated",
               {"num_inference_steps": 28, "guidance_scale": 3.5}),
)
BY_NAME = {m.alias: m for m in KNOWN_MODELS}  # short name -> model


@dataclass(frozen=True)
class SelectionModel:
    """A model that finds regions (`pixels.select`): what it does (`tasks`: "points" for clicks and boxes, "text"
    for phrases, "depth" for relative depth) and the hub model behind its short name."""

    alias: str
    repo: str
    tasks: tuple[str, ...]
    note: str = ""


SELECTION_MODELS: tuple[SelectionModel, ...] = (
    SelectionModel("sam2.1-tiny", "facebook/sam2.1-hiera-tiny", ("points",),
                   "SAM 2.1, Hiera tiny (39M parameters): the default for clicks and boxes"),
    SelectionModel("sam2.1-small", "facebook/sam2.1-hiera-small", ("points",), "SAM 2.1, Hiera small"),
    SelectionModel("sam2.1-base-plus", "facebook/sam2.1-hiera-base-plus", ("points",), "SAM 2.1, Hiera base+"),
    SelectionModel("sam2.1-large", "facebook/sam2.1-hiera-large", ("points",), "SAM 2.1, Hiera large"),
    SelectionModel("sam", "facebook/sam-vit-base", ("points",), "the first SAM, ViT-B"),
    SelectionModel("sam-huge", "facebook/sam-vit-huge", ("points",), "the first SAM, ViT-H"),
    SelectionModel("sam3", "facebook/sam3", ("text", "points"),
                   "SAM 3: the default for phrases (instances with scores); its tracker takes clicks; gated"),
    SelectionModel("grounding-dino-tiny", "IDEA-Research/grounding-dino-tiny", ("text",),
                   "boxes for a phrase, masked by the click model"),
    SelectionModel("grounding-dino-base", "IDEA-Research/grounding-dino-base", ("text",),
                   "boxes for a phrase, masked by the click model"),
    SelectionModel("clipseg", "CIDAS/clipseg-rd64-refined", ("text",), "light (150M parameters), coarse maps"),
    SelectionModel("depth-anything-v2-small", "depth-anything/Depth-Anything-V2-Small-hf", ("depth",),
                   "relative depth (25M parameters): the default for depth"),
    SelectionModel("depth-anything-v2-base", "depth-anything/Depth-Anything-V2-Base-hf", ("depth",),
                   "relative depth (98M parameters)"),
    SelectionModel("depth-anything-v2-large", "depth-anything/Depth-Anything-V2-Large-hf", ("depth",),
                   "relative depth (335M parameters)"),
)
SELECTION_BY_NAME = {m.alias: m for m in SELECTION_MODELS}  # short name -> selection model


def known(model: str, *, by_repo: bool = False) -> KnownModel | None:
    """The catalogue's entry for a short name (with `by_repo`, for its hub id too); None for anything else,
    and for a name that is also a local file or folder (which wins over the short name)."""
    from pathlib import Path

    entry = BY_NAME.get(model)
    if entry is None and by_repo:
        entry = next((m for m in KNOWN_MODELS if m.repo and m.repo == model), None)
    if entry is None or (entry.repo and Path(model).expanduser().exists()):
        return None
    return entry


def recommended(model: str, adapter: Any = None) -> dict[str, Any]:
    """The settings (by `EditSettings` name) a model works well with, the same for every front end: those the
    catalogue records for a known model (short name or hub id) over those of its family's adapter
    (`Adapter.recommended`, when the family is known: after loading) over nothing (pixels' defaults)."""
    entry = known(model, by_repo=True)
    return {**getattr(adapter, "recommended", {}), **(entry.settings if entry is not None else {})}


def is_cached(repo: str, filename: str = "model_index.json") -> bool:
    """Whether `filename` of hub model `repo` (its pipeline index, by default) is in the local Hugging Face
    cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return isinstance(found, str)


def table() -> list[dict[str, str]]:
    """One row per known model, with its local availability and its recommended settings (by parameter name)."""
    rows = []
    for m in KNOWN_MODELS:
        present = "bundled" if not m.repo else ("cached" if is_cached(m.repo) else "not cached")
        rows.append({"alias": m.alias, "model": m.repo or "(bundled)", "family": m.family,
                     "local": present,
                     "settings": dict(m.settings), "note": m.note})
    return rows


def selection_table() -> list[dict[str, str]]:
    """One row per known selection model (`pixels.select`), with what it does and its local availability."""
    return [{"alias": m.alias, "model": m.repo, "tasks": ", ".join(m.tasks),
             "local": "cached" if is_cached(m.repo, "config.json") else "not cached", "note": m.note}
            for m in SELECTION_MODELS]
