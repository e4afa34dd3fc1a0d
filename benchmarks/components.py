"""Full-size SD 1.5 / SDXL architectures at random weights, built offline, plus benchmark inputs.

Speed does not depend on the weights, so the benchmarks build the real architectures (same layer
sizes as the public checkpoints) with random initialisation instead of downloading them. `tiny=True`
builds the test suite's tiny models (`pixels.testing.tiny`) instead, for smoke runs that finish in seconds.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here may reach the network

import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionXLImg2ImgPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from pixels import Editor
from pixels.testing import tiny

MODELS = ("sd15", "sdxl")

# --- configurations -------------------------------------------------------------------------------

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)

SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32,
)

SD_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
)

CLIP_L = dict(  # SD 1.5's text encoder, also SDXL's first one
    hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
    max_position_embeddings=77, vocab_size=49408, hidden_act="quick_gelu", projection_dim=768,
)

CLIP_BIGG = dict(  # SDXL's second text encoder (OpenCLIP ViT-bigG/14)
    hidden_size=1280, intermediate_size=5120, num_attention_heads=20, num_hidden_layers=32,
    max_position_embeddings=77, vocab_size=49408, hidden_act="gelu", projection_dim=1280,
)

def make_tokenizer(folder: Path) -> CLIPTokenizer:
    """A CLIP tokenizer from a letter-level vocabulary (its vocabulary is tiny; the encoders' are full size)."""
    return tiny.make_tokenizer(folder)


def _text_config(base: dict, **extra) -> CLIPTextConfig:
    return CLIPTextConfig(**base, bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra)


def build_sd15(folder: Path, tiny_model: bool = False) -> StableDiffusionImg2ImgPipeline:
    """SD 1.5 img2img pipeline: full-size UNet, VAE and CLIP text encoder at random weights (or the tiny one)."""
    if tiny_model:
        return tiny.build_sd(folder)
    return StableDiffusionImg2ImgPipeline(
        vae=AutoencoderKL(**SD_VAE, sample_size=512, scaling_factor=0.18215),
        text_encoder=CLIPTextModel(_text_config(CLIP_L)), tokenizer=make_tokenizer(folder / "tok"),
        unet=UNet2DConditionModel(**SD15_UNET), scheduler=tiny.make_scheduler(), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )


def build_sdxl(folder: Path, tiny_model: bool = False) -> StableDiffusionXLImg2ImgPipeline:
    """SDXL base img2img pipeline: full-size UNet, VAE and both text encoders at random weights (or the tiny one)."""
    if tiny_model:
        return tiny.build_sdxl(folder)
    tokenizer = make_tokenizer(folder / "tok")
    return StableDiffusionXLImg2ImgPipeline(
        vae=AutoencoderKL(**SD_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True),
        unet=UNet2DConditionModel(**SDXL_UNET), scheduler=tiny.make_scheduler(),
        text_encoder=CLIPTextModel(_text_config(CLIP_L)),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(CLIP_BIGG)), tokenizer=tokenizer, tokenizer_2=tokenizer,
    )


@dataclass
class Components:
    """One pipeline and the pixels editor sharing its modules, plus what was built."""

    model: str
    tiny: bool
    pipe: object
    editor: Editor
    device: torch.device
    dtype: torch.dtype
    build_s: float


def build(model: str, device: str, dtype: torch.dtype, tiny: bool = False) -> Components:
    """Build `model` ("sd15" or "sdxl") at random weights (seed 0), move it, and wrap it in an Editor."""
    if model not in MODELS:
        raise ValueError(f"model: choose one of {', '.join(MODELS)}, got {model!r}")
    start = time.perf_counter()
    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="pixels-bench-"))
    pipe = (build_sd15 if model == "sd15" else build_sdxl)(folder, tiny_model=tiny)
    pipe = pipe.to(device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    editor = Editor.from_pipe(pipe)
    return Components(model, tiny, pipe, editor, torch.device(device), dtype, time.perf_counter() - start)


# --- inputs ---------------------------------------------------------------------------------------

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel",
          "camera", "moon")


def photo(name: str, size: int | tuple[int, int]) -> Image.Image:
    """A scikit-image sample photo as RGB, resized (Lanczos) to `size` (int: square; or (W, H))."""
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, -1)
    image = Image.fromarray(array[..., :3].astype(np.uint8))
    size = (size, size) if isinstance(size, int) else size
    return image.resize(size, Image.LANCZOS)


def exemplar_photos(count: int, size: int | tuple[int, int]) -> list[Image.Image]:
    """`count` photos other than the source (astronaut), cycling through the sample photos."""
    names = PHOTOS[1:]
    return [photo(names[k % len(names)], size) for k in range(count)]


def gradient_map(size: int, low: float = 0.5, band: float = 0.25) -> np.ndarray:
    """White-ish map: strength 1 everywhere except a right-hand band falling linearly from 1 to `low`."""
    m = np.ones((size, size), np.float32)
    width = max(int(size * band), 1)
    m[:, size - width:] = np.linspace(1.0, low, width, dtype=np.float32)[None, :]
    return m


def tile_maps(size: int, count: int, region: tuple[int, int, int, int]) -> list[np.ndarray]:
    """`count` maps splitting `region` (x0, y0, x1, y1) into vertical strips; their union is the region."""
    x0, y0, x1, y1 = region
    edges = np.linspace(x0, x1, count + 1).round().astype(int)
    maps = []
    for a, b in zip(edges[:-1], edges[1:]):
        m = np.zeros((size, size), np.float32)
        m[y0:y1, a:b] = 1.0
        maps.append(m)
    return maps


def ramp_map(size: int, peak: float) -> np.ndarray:
    """0 at the left rising linearly to `peak` at 3/4 of the width, then flat: the largest strength is `peak`.

    The flat part keeps the peak after the map is resized to latent resolution.
    """
    ramp = max(size * 3 // 4, 2)
    row = np.full(size, peak, np.float32)
    row[:ramp] = np.linspace(0.0, peak, ramp, dtype=np.float32)
    return np.repeat(row[None, :], size, axis=0)


def box_map(size: int, box: tuple[int, int, int, int], feather: int = 0) -> np.ndarray:
    """Strength 1 inside box (x0, y0, x1, y1), 0 outside, with a linear fade `feather` px wide inside it."""
    x0, y0, x1, y1 = box
    y, x = np.mgrid[0:size, 0:size]
    inside = np.minimum.reduce([x - x0 + 1, x1 - x, y - y0 + 1, y1 - y]).astype(np.float32)
    if feather <= 0:
        return (inside > 0).astype(np.float32)
    return np.clip(inside / feather, 0.0, 1.0)
