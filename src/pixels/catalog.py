"""Short names for common models, and whether each is already in the local Hugging Face cache."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownModel:
    alias: str
    repo: str  # hub id ("" for models bundled with pixels)
    family: str
    supported: bool  # whether this version of pixels can edit with it
    note: str = ""


KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel("demo", "", "pixel", True, "bundled with pixels, offline; small pictures, no prompt"),
    KnownModel("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", "sd", True),
    KnownModel("sd21", "stabilityai/stable-diffusion-2-1", "sd", True, "768 px, v-prediction"),
    KnownModel("sd21-base", "stabilityai/stable-diffusion-2-1-base", "sd", True),
    KnownModel("sdxl", "stabilityai/stable-diffusion-xl-base-1.0", "sdxl", True),
    KnownModel("sdxl-refiner", "stabilityai/stable-diffusion-xl-refiner-1.0", "sdxl", True,
               "the authors' setting: --denoising-start 0.6 --steps 100 --guidance 17.5"),
    KnownModel("sd15-inpaint", "stable-diffusion-v1-5/stable-diffusion-inpainting", "sd", True, "inpainting UNet"),
    KnownModel("sdxl-inpaint", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1", "sdxl", True, "inpainting UNet"),
    KnownModel("kandinsky22", "kandinsky-community/kandinsky-2-2-decoder", "kandinsky", True,
               "loads kandinsky-community/kandinsky-2-2-prior too; 768 px, --guidance 4"),
    KnownModel("kandinsky22-inpaint", "kandinsky-community/kandinsky-2-2-decoder-inpaint", "kandinsky", True,
               "inpainting UNet; loads the prior too"),
    KnownModel("sd3", "stabilityai/stable-diffusion-3-medium-diffusers", "sd3", True, "gated; --steps 28 --guidance 7"),
    KnownModel("sd35", "stabilityai/stable-diffusion-3.5-medium", "sd3", True,
               "gated; --steps 40 --guidance 4.5"),
    KnownModel("sd35-large", "stabilityai/stable-diffusion-3.5-large", "sd3", True,
               "gated; --steps 28 --guidance 3.5"),
    KnownModel("flux-schnell", "black-forest-labs/FLUX.1-schnell", "flux", True, "--steps 4 --guidance 0"),
    KnownModel("flux-dev", "black-forest-labs/FLUX.1-dev", "flux", True,
               "gated; --steps 28 --guidance 3.5"),
)
BY_NAME = {m.alias: m for m in KNOWN_MODELS}  # short name -> model


def resolve_alias(model: str) -> str:
    """The hub id behind a short name (unchanged for anything else, including "demo")."""
    known = BY_NAME.get(model)
    return known.repo if known is not None and known.repo else model


def is_cached(repo: str) -> bool:
    """Whether the pipeline index of hub model `repo` is in the local Hugging Face cache (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "model_index.json")
    return isinstance(found, str)


def table() -> list[dict[str, str]]:
    """One row per known model, with its local availability."""
    rows = []
    for m in KNOWN_MODELS:
        present = "bundled" if not m.repo else ("cached" if is_cached(m.repo) else "not cached")
        rows.append({"alias": m.alias, "model": m.repo or "(bundled)", "family": m.family,
                     "supported": "yes" if m.supported else "no", "local": present, "note": m.note})
    return rows
