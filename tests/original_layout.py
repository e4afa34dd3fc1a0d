"""Writing a tiny SD pipeline as an original-layout (LDM / A1111) single-file checkpoint, for the tests of
`from_single_file` loading: the inverse of the key renaming diffusers applies when it converts such files."""

from __future__ import annotations

import re

import torch

RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
          ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
VAE_ATTENTION = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]
VAE_RESNET = [("conv_shortcut", "nin_shortcut")]  # the VAE keeps the resnets' names but this one


def _resnet(rest: str, table=RESNET) -> str:
    for ours, theirs in table:
        if rest.startswith(ours + "."):
            return theirs + rest[len(ours):]
    return rest


def unet_key_of(config):
    """A function from diffusers UNet2DConditionModel names to LDM names, for this UNet's layout."""
    layers = config.layers_per_block

    def name(key: str) -> str:
        fixed = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                 "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
        for ours, theirs in fixed.items():
            if key.startswith(ours + "."):
                return theirs + key[len(ours):]
        if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = (layers + 1) * i + j + 1
            return f"input_blocks.{index}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{index}.1.{rest}"
        if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
            return f"input_blocks.{(layers + 1) * (int(m[1]) + 1)}.0.op.{m[2]}"
        if m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
            kind, j, rest = m[1], int(m[2]), m[3]
            return f"middle_block.{2 * j}.{_resnet(rest)}" if kind == "resnets" else f"middle_block.1.{rest}"
        if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            index = (layers + 1) * i + j  # up blocks have layers + 1 resnets each
            if kind == "resnets":
                return f"output_blocks.{index}.0.{_resnet(rest)}"
            return f"output_blocks.{index}.1.{rest}"
        if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
            i = int(m[1])
            has_attention = "CrossAttn" in config.up_block_types[i]
            return f"output_blocks.{(layers + 1) * i + layers}.{2 if has_attention else 1}.conv.{m[2]}"
        raise KeyError(key)

    return name


def vae_key(key: str, config) -> str:
    """diffusers AutoencoderKL names -> LDM `first_stage_model.` names."""
    levels = len(config.block_out_channels)
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{_resnet(m[3], VAE_RESNET)}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        return f"{m[1]}.mid.attn_1.{_resnet(m[2], VAE_ATTENTION)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{_resnet(m[3], VAE_RESNET)}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.up.{levels - 1 - int(m[1])}.block.{m[2]}.{_resnet(m[3], VAE_RESNET)}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        return f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
    return key.replace("conv_norm_out", "norm_out")


def original_state_dict(pipe) -> dict[str, torch.Tensor]:
    """The pipeline's UNet, VAE and CLIP text encoder under their original (LDM) names."""
    unet_name = unet_key_of(pipe.unet.config)
    state = {f"model.diffusion_model.{unet_name(k)}": v for k, v in pipe.unet.state_dict().items()}
    for key, value in pipe.vae.state_dict().items():
        theirs = vae_key(key, pipe.vae.config)
        if ".mid.attn_1." in theirs and value.ndim == 2:
            value = value[:, :, None, None]  # the original VAE attention uses 1x1 convolutions
        state[f"first_stage_model.{theirs}"] = value
    for key, value in pipe.text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else f"text_model.{key}"  # newer transformers flatten the model
        state[f"cond_stage_model.transformer.{key}"] = value
    return {k: v.contiguous() for k, v in state.items()}
