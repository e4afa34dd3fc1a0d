"""Tiny randomly initialised SD3 and Flux pipelines (diffusers fast-test sizes), built offline."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import make_tokenizer, make_vae, text_config
from diffusers import (
    AutoencoderKL,
    FlowMatchEulerDiscreteScheduler,
    FluxImg2ImgPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Img2ImgPipeline,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel, T5TokenizerFast

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def make_t5_tokenizer() -> T5TokenizerFast:
    """A T5 (Unigram) tokenizer over single letters, built in memory: no sentencepiece file, no download."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in LETTERS] + [("\u2581" + c, -3.0) for c in LETTERS]
    return T5TokenizerFast(vocab=vocab, extra_ids=0)


def make_t5() -> T5EncoderModel:
    """A tiny T5 encoder, in eval mode: a model built from a config starts in training mode, with dropout."""
    return T5EncoderModel(T5Config(
        vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4, relative_attention_num_buckets=8,
    )).eval()


def make_flow_vae() -> AutoencoderKL:
    """The tiny VAE of conftest (scale factor 2, 4 latent channels) with SD3's shift and scale."""
    return AutoencoderKL.from_config(make_vae().config, shift_factor=0.0609, scaling_factor=1.5035)


def build_sd3(tmp: Path, t5: bool) -> StableDiffusion3Img2ImgPipeline:
    """SD3 medium's layout, tiny. Without T5 the pipeline feeds zeros in its place (as diffusers allows);
    with T5 the scheduler shifts by image size (SD3.5-style `use_dynamic_shifting`)."""
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4,
    )
    tokenizer = make_tokenizer(tmp / "tok")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=t5)
    return StableDiffusion3Img2ImgPipeline(
        transformer=transformer, scheduler=scheduler, vae=make_flow_vae(),
        text_encoder=CLIPTextModelWithProjection(text_config(projection_dim=32)), tokenizer=tokenizer,
        text_encoder_2=CLIPTextModelWithProjection(text_config(projection_dim=32)), tokenizer_2=tokenizer,
        text_encoder_3=make_t5() if t5 else None, tokenizer_3=make_t5_tokenizer() if t5 else None,
    )


def build_flux(tmp: Path, dev: bool) -> FluxImg2ImgPipeline:
    """Flux.1's layout, tiny: dev embeds the guidance scale and shifts its schedule by image size, schnell neither."""
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8],
        guidance_embeds=dev,
    )
    if dev:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                    max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FluxImg2ImgPipeline(
        transformer=transformer, scheduler=scheduler, vae=make_flow_vae(),
        text_encoder=CLIPTextModel(text_config()), tokenizer=make_tokenizer(tmp / "tok"),
        text_encoder_2=make_t5(), tokenizer_2=make_t5_tokenizer(),
    )


def build_flow(name: str, tmp: Path):
    """name: sd3, sd3-t5, flux-dev or flux-schnell."""
    if name.startswith("sd3"):
        return build_sd3(tmp, t5=name == "sd3-t5")
    return build_flux(tmp, dev=name == "flux-dev")
