"""Tiny randomly initialised pipelines of every supported family, built offline in seconds.

They have the layouts of the real models at diffusers' fast-test sizes (a VAE that halves the
resolution once, 32-wide blocks, CLIP tokenizers over single letters written on the spot), so that
tests, examples and benchmark smoke runs exercise every family without downloading weights:

    from pixels import Editor
    from pixels.testing import tiny
    editor = Editor.from_pipe(tiny.build("sdxl", folder))   # folder: where tokenizer files are written

`FAMILIES` lists the names `build` accepts. Never hard-code the VAE factor 8: here it is 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMPipeline,
    DDPMScheduler,
    FlowMatchEulerDiscreteScheduler,
    FluxImg2ImgPipeline,
    FluxTransformer2DModel,
    KandinskyV22Img2ImgCombinedPipeline,
    KandinskyV22InpaintCombinedPipeline,
    PriorTransformer,
    SD3Transformer2DModel,
    StableDiffusion3Img2ImgPipeline,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionXLImg2ImgPipeline,
    StableDiffusionXLInpaintPipeline,
    UnCLIPScheduler,
    UNet2DConditionModel,
    UNet2DModel,
    VQModel,
)
from transformers import (
    CLIPImageProcessor,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
    CLIPTokenizer,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    T5Config,
    T5EncoderModel,
    T5TokenizerFast,
)

LETTERS = "abcdefghijklmnopqrstuvwxyz"
FAMILIES = ("sd", "sd-inpaint", "sdxl", "sdxl-inpaint", "refiner", "pixel", "sd3", "sd3-t5", "flux-dev",
            "flux-schnell", "kandinsky", "kandinsky-inpaint")


# -- shared parts --------------------------------------------------------------------------------------
def make_tokenizer(folder: Path) -> CLIPTokenizer:
    """A CLIP tokenizer from a letter-level vocabulary written into `folder` (no download)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"] + list(LETTERS) + [f"{c}</w>" for c in LETTERS]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def text_config(**extra) -> CLIPTextConfig:
    return CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
                          vocab_size=1000, bos_token_id=0, eos_token_id=1, pad_token_id=1, **extra)


def make_vae(**extra) -> AutoencoderKL:
    return AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                         norm_num_groups=16, down_block_types=["DownEncoderBlock2D"] * 2,
                         up_block_types=["UpDecoderBlock2D"] * 2, **extra)


def unet_kwargs(**extra) -> dict:
    return dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, norm_num_groups=16) | extra


def make_scheduler() -> DDIMScheduler:
    """DDIM with SD's training betas."""
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


# -- Stable Diffusion 1.x/2.x, SDXL ---------------------------------------------------------------------------
def build_sd(folder: Path, inpaint: bool = False):
    torch.manual_seed(0)
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionImg2ImgPipeline
    return cls(vae=make_vae(), text_encoder=CLIPTextModel(text_config()),
               tokenizer=make_tokenizer(Path(folder) / "tok"),
               unet=UNet2DConditionModel(**unet_kwargs(in_channels=9 if inpaint else 4)), scheduler=make_scheduler(),
               safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def build_sdxl(folder: Path, refiner: bool = False, inpaint: bool = False):
    """SDXL base (two text encoders, 6 time ids) or refiner (the second encoder only, aesthetic scores)."""
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        **unet_kwargs(cross_attention_dim=32 if refiner else 64, in_channels=9 if inpaint else 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2), attention_head_dim=(2, 4),
        projection_class_embeddings_input_dim=(5 if refiner else 6) * 8 + 32,
    )
    tokenizer = make_tokenizer(Path(folder) / "tok")
    if refiner:
        parts = dict(text_encoder=None, tokenizer=None, requires_aesthetics_score=True,
                     force_zeros_for_empty_prompt=False)
    else:
        parts = dict(text_encoder=CLIPTextModel(text_config()), tokenizer=tokenizer)
    cls = StableDiffusionXLInpaintPipeline if inpaint else StableDiffusionXLImg2ImgPipeline
    return cls(vae=make_vae(), unet=unet, scheduler=make_scheduler(),
               text_encoder_2=CLIPTextModelWithProjection(text_config(projection_dim=32)), tokenizer_2=tokenizer,
               **parts)


def build_pixel() -> DDPMPipeline:
    """An unconditional pixel-space model (the bundled demo model's architecture, smaller)."""
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(16, 32), layers_per_block=1,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2, norm_num_groups=8)
    return DDPMPipeline(unet=unet, scheduler=DDIMScheduler(clip_sample=True, set_alpha_to_one=True))


# -- SD3 and Flux ------------------------------------------------------------------------------------------
def make_t5_tokenizer() -> T5TokenizerFast:
    """A T5 (Unigram) tokenizer over single letters, built in memory: no sentencepiece file, no download."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [(c, -3.0) for c in LETTERS] + [("\u2581" + c, -3.0) for c in LETTERS]
    return T5TokenizerFast(vocab=vocab, extra_ids=0)


def make_t5() -> T5EncoderModel:
    """A T5 encoder in eval mode (a model built from a config starts in training mode, with dropout)."""
    return T5EncoderModel(T5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                   relative_attention_num_buckets=8)).eval()


def make_flow_vae() -> AutoencoderKL:
    """The tiny VAE with SD3's shift and scale."""
    return AutoencoderKL.from_config(make_vae().config, shift_factor=0.0609, scaling_factor=1.5035)


def build_sd3(folder: Path, t5: bool = False) -> StableDiffusion3Img2ImgPipeline:
    """SD3 medium's layout. Without T5 the pipeline feeds zeros in its place (as diffusers allows); with T5
    the scheduler shifts by image size (SD3.5-style `use_dynamic_shifting`)."""
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=32, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=4,
        caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4,
    )
    tokenizer = make_tokenizer(Path(folder) / "tok")
    return StableDiffusion3Img2ImgPipeline(
        transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=t5),
        vae=make_flow_vae(), text_encoder=CLIPTextModelWithProjection(text_config(projection_dim=32)),
        tokenizer=tokenizer, text_encoder_2=CLIPTextModelWithProjection(text_config(projection_dim=32)),
        tokenizer_2=tokenizer, text_encoder_3=make_t5() if t5 else None,
        tokenizer_3=make_t5_tokenizer() if t5 else None,
    )


def build_flux(folder: Path, dev: bool = True) -> FluxImg2ImgPipeline:
    """Flux.1's layout: dev embeds the guidance scale and shifts its schedule by image size, schnell neither."""
    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=dev,
    )
    if dev:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                                                    max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    else:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    return FluxImg2ImgPipeline(transformer=transformer, scheduler=scheduler, vae=make_flow_vae(),
                               text_encoder=CLIPTextModel(text_config()),
                               tokenizer=make_tokenizer(Path(folder) / "tok"),
                               text_encoder_2=make_t5(), tokenizer_2=make_t5_tokenizer())


# -- Kandinsky 2.2 -------------------------------------------------------------------------------------------
EMBED = 32  # CLIP image embedding size: prior output, image encoder projection, UNet image conditioning
KANDINSKY_BETAS = dict(beta_schedule="linear", beta_start=0.00085, beta_end=0.012, clip_sample=False)


def make_prior() -> PriorTransformer:
    torch.manual_seed(0)
    prior = PriorTransformer(num_attention_heads=2, attention_head_dim=12, embedding_dim=EMBED, num_layers=1)
    # clip_std starts at 0, which would make every prior output 0 (post_process_latents)
    prior.clip_std = torch.nn.Parameter(torch.ones(prior.clip_std.shape))
    return prior


TINY_VISION = dict(hidden_size=32, image_size=32, patch_size=8, projection_dim=EMBED, intermediate_size=37,
                   num_attention_heads=4, num_channels=3, num_hidden_layers=2)


def make_image_encoder(**config) -> CLIPVisionModelWithProjection:
    """A CLIP image encoder (the tiny one; `config` gives another size, as the full-size ViT-H/14)."""
    torch.manual_seed(0)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(**(config or TINY_VISION)))


def make_image_processor() -> CLIPImageProcessor:
    return CLIPImageProcessor(
        crop_size=32, size=32, do_center_crop=True, do_normalize=True, do_resize=True, resample=3,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
    )


def make_kandinsky_unet(in_channels: int = 4) -> UNet2DConditionModel:
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
        return DDIMScheduler(**KANDINSKY_BETAS, set_alpha_to_one=False, steps_offset=0)
    return DDPMScheduler(**KANDINSKY_BETAS, variance_type="learned_range" if kind == "learned" else "fixed_small")


def prior_components(folder: Path) -> dict:
    """The prior pipeline's components, under the names the combined pipelines give them."""
    torch.manual_seed(0)
    return {
        "prior_prior": make_prior(), "prior_image_encoder": make_image_encoder(),
        "prior_text_encoder": CLIPTextModelWithProjection(text_config(projection_dim=EMBED)),
        "prior_tokenizer": make_tokenizer(Path(folder) / "prior_tok"), "prior_image_processor": make_image_processor(),
        "prior_scheduler": UnCLIPScheduler(variance_type="fixed_small_log", prediction_type="sample",
                                           num_train_timesteps=1000, clip_sample=True, clip_sample_range=10.0),
    }


def build_kandinsky(folder: Path, inpaint: bool = False, scheduler: str = "learned"):
    """A combined Kandinsky 2.2 pipeline (prior + decoder); the inpaint variant has a 9-channel UNet."""
    cls = KandinskyV22InpaintCombinedPipeline if inpaint else KandinskyV22Img2ImgCombinedPipeline
    return cls(unet=make_kandinsky_unet(9 if inpaint else 4), scheduler=make_decoder_scheduler(scheduler),
               movq=make_movq(), **prior_components(folder))


def build(name: str, folder: Path):
    """The tiny pipeline called `name` (one of FAMILIES); tokenizer files are written under `folder`."""
    builders = {
        "sd": lambda: build_sd(folder), "sd-inpaint": lambda: build_sd(folder, inpaint=True),
        "sdxl": lambda: build_sdxl(folder), "sdxl-inpaint": lambda: build_sdxl(folder, inpaint=True),
        "refiner": lambda: build_sdxl(folder, refiner=True), "pixel": build_pixel,
        "sd3": lambda: build_sd3(folder), "sd3-t5": lambda: build_sd3(folder, t5=True),
        "flux-dev": lambda: build_flux(folder, dev=True), "flux-schnell": lambda: build_flux(folder, dev=False),
        "kandinsky": lambda: build_kandinsky(folder),
        "kandinsky-inpaint": lambda: build_kandinsky(folder, inpaint=True),
    }
    if name not in builders:
        raise ValueError(f"name: unknown tiny model {name!r}; choose one of {', '.join(FAMILIES)}")
    return builders[name]()


# -- what extends a model: LoRA, IP-Adapter and ControlNet weights, written as the hub files are ------------
def write_lora(pipe, folder: Path, rank: int = 4, seed: int = 0,
               targets: tuple[str, ...] = ("to_q", "to_k", "to_v")) -> Path:
    """A LoRA on the denoiser's `targets` (default the attention projections of the UNet, or of the transformer
    of SD3 and Flux) with random weights (a zero-initialised B would do nothing), saved as diffusers'
    pytorch_lora_weights.safetensors; the pipeline itself is left unchanged (needs peft)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    original = getattr(pipe, name)
    denoiser = type(original).from_config(original.config)
    denoiser.load_state_dict(original.state_dict())
    denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(targets),
                                    init_lora_weights=False))
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=generator) * 0.1
             for k, v in get_peft_model_state_dict(denoiser).items()}
    folder.mkdir(parents=True, exist_ok=True)
    type(pipe).save_lora_weights(folder, **{f"{name}_lora_layers": state}, safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"


def write_image_encoder(folder: Path, **config) -> Path:
    """An IP-Adapter's CLIP image encoder and its processor, saved in `folder` (tiny unless `config` says)."""
    encoder = make_image_encoder(**config)
    encoder.save_pretrained(folder)
    size = encoder.config.image_size
    CLIPImageProcessor(crop_size=size, size=size).save_pretrained(folder)
    return folder


def write_ip_adapter(unet, folder: Path, image_embed: int = EMBED, tokens: int = 4, seed: int = 0) -> Path:
    """A plain IP-Adapter at random weights in the original layout diffusers reads: `image_proj.proj/norm` and,
    for every cross-attention layer in order, `ip_adapter.{1,3,5,...}.to_k_ip/to_v_ip`."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    state = {
        "image_proj.proj.weight": torch.randn(cross * tokens, image_embed, generator=generator) * 0.2,
        "image_proj.proj.bias": torch.zeros(cross * tokens),
        "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross),
    }
    channels = list(unet.config.block_out_channels)
    key = 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name.split(".")[1])]
        else:
            hidden = channels[int(name.split(".")[1])]
        for projection in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{key}.{projection}.weight"] = torch.randn(hidden, cross, generator=generator) * 0.2
        key += 2
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "ip-adapter.safetensors"))
    return folder / "ip-adapter.safetensors"


def make_controlnet(unet, seed: int = 0, embedding_channels: tuple[int, ...] = (16, 32)):
    """A ControlNet shaped like `unet`, its zero-initialised output convolutions made random (a ControlNet
    straight from `from_unet` adds nothing). Full-size ControlNets use embedding_channels (16, 32, 96, 256)."""
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=embedding_channels)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                       controlnet.controlnet_cond_embedding.conv_out]:
            for parameter in module.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    return controlnet.eval()
