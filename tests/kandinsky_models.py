"""Tiny randomly initialised Kandinsky 2.2 components (diffusers fast-test style), built offline.

The prior's text and image encoders, its PriorTransformer and the decoder's image-conditioned UNet all
work with 32-dimensional CLIP image embeddings; the MoVQ autoencoder halves the resolution once.
"""

from __future__ import annotations

import torch
from conftest import make_tokenizer, text_config
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    KandinskyV22Img2ImgCombinedPipeline,
    KandinskyV22InpaintCombinedPipeline,
    PriorTransformer,
    UNet2DConditionModel,
    UnCLIPScheduler,
    VQModel,
)
from transformers import (
    CLIPImageProcessor,
    CLIPTextModelWithProjection,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
)

EMBED = 32  # CLIP image embedding size: prior output, image encoder projection, UNet image conditioning
SCHEDULE = dict(beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)


def make_prior() -> PriorTransformer:
    torch.manual_seed(0)
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=EMBED, num_layers=1)
    # clip_std starts at 0, which would make every prior output 0 (post_process_latents)
    prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))
    return prior


def make_image_encoder() -> CLIPVisionModelWithProjection:
    torch.manual_seed(0)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, image_size=32, patch_size=8, projection_dim=EMBED, intermediate_size=37,
        num_attention_heads=4, num_channels=3, num_hidden_layers=2,
    ))


def make_image_processor() -> CLIPImageProcessor:
    return CLIPImageProcessor(
        crop_size=32, size=32, do_center_crop=True, do_normalize=True, do_resize=True, resample=3,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
    )


def make_unet(in_channels: int = 4) -> UNet2DConditionModel:
    """The decoder: image-embedding conditioned, predicting noise and variance (8 channels)."""
    torch.manual_seed(0)
    return UNet2DConditionModel(
        in_channels=in_channels, out_channels=8, addition_embed_type="image", sample_size=16,
        down_block_types=("ResnetDownsampleBlock2D", "SimpleCrossAttnDownBlock2D"),
        up_block_types=("SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D"),
        mid_block_type="UNetMidBlock2DSimpleCrossAttn", block_out_channels=(32, 64), layers_per_block=1,
        encoder_hid_dim=EMBED, encoder_hid_dim_type="image_proj", cross_attention_dim=32, attention_head_dim=4,
        resnet_time_scale_shift="scale_shift", class_embed_type=None,
    )


def make_movq() -> VQModel:
    torch.manual_seed(0)
    return VQModel(
        block_out_channels=[32, 64], down_block_types=["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
        up_block_types=["AttnUpDecoderBlock2D", "UpDecoderBlock2D"], in_channels=3, out_channels=3,
        latent_channels=4, layers_per_block=1, norm_num_groups=8, norm_type="spatial", num_vq_embeddings=12,
        vq_embed_dim=4,
    )


def make_decoder_scheduler(kind: str = "learned"):
    """The decoder's scheduler: DDPM with the UNet's learned variance, DDPM with fixed variance, or DDIM."""
    if kind == "ddim":
        return DDIMScheduler(**SCHEDULE, set_alpha_to_one=False, steps_offset=0)
    return DDPMScheduler(**SCHEDULE, variance_type="learned_range" if kind == "learned" else "fixed_small")


def prior_components(tmp) -> dict:
    """The prior pipeline's components, under the names the combined pipelines give them."""
    torch.manual_seed(0)
    text_encoder = CLIPTextModelWithProjection(text_config(projection_dim=EMBED))
    return {
        "prior_prior": make_prior(), "prior_image_encoder": make_image_encoder(), "prior_text_encoder": text_encoder,
        "prior_tokenizer": make_tokenizer(tmp / "prior_tok"), "prior_image_processor": make_image_processor(),
        "prior_scheduler": UnCLIPScheduler(
            variance_type="fixed_small_log", prediction_type="sample", num_train_timesteps=1000, clip_sample=True,
            clip_sample_range=10.0,
        ),
    }


def build_kandinsky(tmp, inpaint: bool = False, scheduler: str = "learned"):
    """A tiny combined Kandinsky 2.2 pipeline (prior + decoder); the inpaint variant has a 9-channel UNet."""
    cls = KandinskyV22InpaintCombinedPipeline if inpaint else KandinskyV22Img2ImgCombinedPipeline
    return cls(
        unet=make_unet(9 if inpaint else 4), scheduler=make_decoder_scheduler(scheduler), movq=make_movq(),
        **prior_components(tmp),
    )
