"""Tiny randomly initialised models (diffusers fast-test style), built offline in fixtures."""

from __future__ import annotations

import json
import os
import signal
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the tests may reach the network

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionXLImg2ImgPipeline,
    UNet2DConditionModel,
    UNet2DModel,
)
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer


def make_tokenizer(folder) -> CLIPTokenizer:
    """A CLIP tokenizer from a letter-level vocabulary written on the spot (no download)."""
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"]
    tokens += [c for c in "abcdefghijklmnopqrstuvwxyz"] + [f"{c}</w>" for c in "abcdefghijklmnopqrstuvwxyz"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def text_config(**extra) -> CLIPTextConfig:
    return CLIPTextConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
        vocab_size=1000, bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra,
    )


def make_vae() -> AutoencoderKL:
    return AutoencoderKL(
        block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=16,
        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
    )


def unet_kwargs() -> dict:
    return dict(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=16,
    )


def make_scheduler() -> DDIMScheduler:
    return DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )


def build_sd(tmp) -> StableDiffusionImg2ImgPipeline:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_kwargs())
    vae = make_vae()
    text_encoder = CLIPTextModel(text_config())
    return StableDiffusionImg2ImgPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=make_tokenizer(tmp / "tok"), unet=unet,
        scheduler=make_scheduler(), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def build_sdxl(tmp, refiner: bool) -> StableDiffusionXLImg2ImgPipeline:
    torch.manual_seed(0)
    time_ids = 5 if refiner else 6
    pooled = 32
    unet = UNet2DConditionModel(
        **{**unet_kwargs(), "cross_attention_dim": 32 if refiner else 64},
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4),
        projection_class_embeddings_input_dim=time_ids * 8 + pooled,
    )
    vae = make_vae()
    text_encoder_2 = CLIPTextModelWithProjection(text_config(projection_dim=32))
    tokenizer = make_tokenizer(tmp / "tok")
    if refiner:
        parts = dict(text_encoder=None, tokenizer=None, requires_aesthetics_score=True,
                     force_zeros_for_empty_prompt=False)
    else:
        parts = dict(text_encoder=CLIPTextModel(text_config()), tokenizer=tokenizer)
    return StableDiffusionXLImg2ImgPipeline(
        vae=vae, unet=unet, scheduler=make_scheduler(), text_encoder_2=text_encoder_2, tokenizer_2=tokenizer,
        **parts,
    )


@pytest.fixture(scope="session")
def sd_pipe(tmp_path_factory):
    return build_sd(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="session")
def sdxl_pipe(tmp_path_factory):
    return build_sdxl(tmp_path_factory.mktemp("sdxl"), refiner=False)


@pytest.fixture(scope="session")
def refiner_pipe(tmp_path_factory):
    return build_sdxl(tmp_path_factory.mktemp("refiner"), refiner=True)


def build_pixel() -> DDPMPipeline:
    """A tiny unconditional pixel-space model (the demo model's architecture, smaller)."""
    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=8,
    )
    return DDPMPipeline(unet=unet, scheduler=DDIMScheduler(clip_sample=True, set_alpha_to_one=True))


@pytest.fixture(scope="session")
def pixel_pipe():
    return build_pixel()


@pytest.fixture(scope="session", params=["sd", "sdxl", "refiner"])
def latent_pipe(request):
    """Each latent diffusion family that has a diffusers img2img pipeline to compare with."""
    return request.getfixturevalue(f"{request.param}_pipe")


@pytest.fixture(scope="session", params=["sd", "sdxl", "refiner", "pixel"])
def any_pipe(request):
    return request.getfixturevalue(f"{request.param}_pipe")


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory, sd_pipe):
    folder = tmp_path_factory.mktemp("sd_saved") / "tiny-sd"
    sd_pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def photo(width: int = 32, height: int = 32, seed: int = 0) -> Image.Image:
    """A smooth random colour picture (gradients plus noise), deterministic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), (x + y) / (width + height)], -1) * 200
    return Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8))


def box_map(width: int = 32, height: int = 32, box=(8, 8, 24, 24), value: float = 1.0) -> np.ndarray:
    m = np.zeros((height, width), np.float32)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = value
    return m


@contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: SIGALRM interrupts a blocked call in the main thread with TimeoutError."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
