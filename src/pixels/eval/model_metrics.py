"""Model-based edit measures (CLIP-I, CLIP-T, DINO) through transformers, when the weights are available.

These read local weights only by default (a folder, or a hub id already in the cache), so they never
start a download in the middle of an evaluation; a missing model raises `ModelNotFoundError` saying
how to get it, and `pixels evaluate` reports the measure as skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError, ModelNotFoundError, first_line, unsafe_pickle

CLIP_MODEL = "openai/clip-vit-base-patch32"
DINO_MODEL = "facebook/dino-vits16"


def _load(kind: str, model: str, local_files_only: bool, allow_unsafe_pickle: bool = False):
    """The model and its processor. Only .safetensors weights are read unless `allow_unsafe_pickle`:
    pickle weights (.bin) can run arbitrary code when loaded."""
    from transformers import AutoImageProcessor, AutoModel, CLIPModel, CLIPProcessor

    weights = {"local_files_only": local_files_only, "use_safetensors": None if allow_unsafe_pickle else True}
    try:
        if kind == "clip":
            return CLIPModel.from_pretrained(model, **weights).eval(), \
                CLIPProcessor.from_pretrained(model, local_files_only=local_files_only)
        return AutoModel.from_pretrained(model, **weights).eval(), \
            AutoImageProcessor.from_pretrained(model, local_files_only=local_files_only)
    except (OSError, ValueError) as error:
        if not allow_unsafe_pickle and "safetensors" in str(error).lower():
            raise unsafe_pickle(model, kind) from None
        raise ModelNotFoundError(
            f"model {model!r} is not available locally ({first_line(error)}); download it"
            f" with `hf download {model}` or pass a local folder", param=kind
        ) from None


def crop_to_region(image: Any, region: np.ndarray | None) -> Any:
    """The bounding box of `region` (the edited area), so image-level scores look at the edit."""
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    if region is None:
        return picture
    ys, xs = np.nonzero(np.asarray(region, bool))
    if len(xs) == 0:
        raise InputError("is empty", param="region")
    return picture.convert("RGB").crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=-1).item())


@torch.no_grad()
def clip_scores(result: Any, exemplar: Any | None = None, prompt: str | None = None, region: np.ndarray | None = None,
                model: str = CLIP_MODEL, local_files_only: bool = True, allow_unsafe_pickle: bool = False
                ) -> dict[str, float]:
    """CLIP-I: cosine of CLIP image embeddings of result and exemplar (inside `region`'s box);
    CLIP-T: cosine of the result's image embedding and the prompt's text embedding."""
    clip, processor = _load("clip", model, local_files_only, allow_unsafe_pickle)
    scores: dict[str, float] = {}
    image = crop_to_region(result, region)
    embedding = clip.get_image_features(**processor(images=image, return_tensors="pt"))
    embedding = getattr(embedding, "pooler_output", embedding)
    if exemplar is not None:
        other = clip.get_image_features(**processor(images=crop_to_region(exemplar, region), return_tensors="pt"))
        scores["clip_i"] = _cosine(embedding, getattr(other, "pooler_output", other))
    if prompt:
        text = clip.get_text_features(**processor(text=[prompt], return_tensors="pt", padding=True))
        scores["clip_t"] = _cosine(embedding, getattr(text, "pooler_output", text))
    return scores


@torch.no_grad()
def dino_score(result: Any, exemplar: Any, region: np.ndarray | None = None, model: str = DINO_MODEL,
               local_files_only: bool = True, allow_unsafe_pickle: bool = False) -> dict[str, float]:
    """DINO: cosine of the ViT [CLS] features of result and exemplar (inside `region`'s box)."""
    vit, processor = _load("dino", model, local_files_only, allow_unsafe_pickle)

    def features(image: Any) -> torch.Tensor:
        out = vit(**processor(images=crop_to_region(image, region), return_tensors="pt"))
        return out.last_hidden_state[:, 0]

    return {"dino": _cosine(features(result), features(exemplar))}


def _frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance of Gaussians fitted to feature sets (N, D): |mu_a - mu_b|^2 + Tr(Sa + Sb - 2 sqrt(Sa Sb))."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    # Tr sqrt(Sa Sb) = sum of sqrt eigenvalues of the symmetric sqrt(Sa) Sb sqrt(Sa)
    values, vectors = torch.linalg.eigh(cov_a)
    root_a = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


@torch.no_grad()
def frechet_distance(images: list, references: list, model: str = DINO_MODEL, local_files_only: bool = True,
                     allow_unsafe_pickle: bool = False) -> float:
    """FD-DINO: Frechet distance between the DINO [CLS] features of two image sets (lower = closer).

    The set-level counterpart of FID with a self-supervised ViT instead of Inception-v3, as recommended by
    Stein et al. (NeurIPS 2023); compare values only across runs that use the same encoder.
    """
    if len(images) < 2 or len(references) < 2:
        raise InputError(
            f"needs at least 2 images per set, got {len(images)} and {len(references)}", param="frechet_distance"
        )
    vit, processor = _load("dino", model, local_files_only, allow_unsafe_pickle)

    def features(batch: list) -> torch.Tensor:
        pictures = [crop_to_region(image, None).convert("RGB") for image in batch]
        return vit(**processor(images=pictures, return_tensors="pt")).last_hidden_state[:, 0]

    return _frechet(features(images), features(references))
