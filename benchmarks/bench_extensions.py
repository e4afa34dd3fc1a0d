"""extensions: a pixels edit with a ControlNet, and with an IP-Adapter, against diffusers' own pipelines for
them on the same components (full-size SD 1.5 at random weights: speed does not depend on the weights).

1. ControlNet: diffusers' StableDiffusionControlNetImg2ImgPipeline against a pixels edit given the same
   control image (a full-size ControlNet shaped like the UNet, acting at every step on both sides).
2. IP-Adapter (a full-size ViT-H/14 image encoder and the plain SD 1.5 IP-Adapter layout): diffusers' img2img
   with `ip_adapter_image` against a pixels edit with the same image as a prompt image (the whole frame),
   and, for information, with an exemplar that prompts only its own region (an attention mask per layer).

Both pixels sides edit with the white-ish gradient map of `bench_overhead.py` (the same model calls as
img2img). Target: wall time ratio <= 1.03 for the like-for-like rows.

    OMP_NUM_THREADS=2 python benchmarks/bench_extensions.py --steps 8 --strength 0.5
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import components
import harness
import numpy as np
import torch
from harness import Bench, Check
from PIL import Image

from pixels import Control, Exemplar
from pixels.testing.tiny import make_controlnet, write_image_encoder, write_ip_adapter

NAME = "extensions"
DESCRIPTION = "pixels edit with a ControlNet / an IP-Adapter vs diffusers' pipelines for them: time, model calls"
PROMPT = harness.PROMPT
VIT_H = dict(hidden_size=1280, image_size=224, patch_size=14, projection_dim=1024, intermediate_size=5120,
             num_attention_heads=16, num_channels=3, num_hidden_layers=32, hidden_act="gelu")
IP_SCALE = 0.6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags of its own: steps, strength, guidance and size are the common ones."""


def _generator(bench: Bench) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(bench.args.seed)


def _settings(bench: Bench) -> dict[str, Any]:
    a = bench.args
    return dict(prompt=PROMPT, strength=a.strength, num_inference_steps=a.steps, guidance_scale=a.guidance)


def controlnet_sides(bench: Bench) -> dict[str, harness.Side]:
    from diffusers import StableDiffusionControlNetImg2ImgPipeline

    a, comps = bench.args, bench.comps
    source = components.photo("astronaut", a.size)
    edges = Image.fromarray((np.indices((a.size, a.size)).sum(0) % 16 < 3).astype(np.uint8) * 255).convert("RGB")
    channels = (16, 32) if a.tiny else (16, 32, 96, 256)  # the control image at the latents' resolution
    controlnet = make_controlnet(comps.pipe.unet, embedding_channels=channels).to(comps.device, comps.dtype)
    pipe = StableDiffusionControlNetImg2ImgPipeline(**{**comps.pipe.components, "controlnet": controlnet})
    pipe.set_progress_bar_config(disable=True)
    comps.editor.load_controlnet(controlnet)

    def diffusers_side() -> dict[str, Any]:
        pipe(image=source, control_image=edges, generator=_generator(bench), **_settings(bench))
        return {}

    pixels_side = harness.edit_side(bench, source, strength_map=components.gradient_map(a.size),
                                    control=Control("image", edges))
    return {"diffusers controlnet": diffusers_side, "pixels + controlnet": pixels_side}


def ip_adapter_sides(bench: Bench) -> dict[str, harness.Side]:
    a, comps = bench.args, bench.comps
    comps.editor.adapter.controlnet = None  # the ControlNet of the first part is not part of this one
    folder = Path(tempfile.mkdtemp(prefix="pixels-bench-ip-"))
    print("writing a full-size IP-Adapter and ViT-H/14 image encoder at random weights ...", flush=True)
    weights = write_ip_adapter(comps.pipe.unet, folder / "ip", image_embed=VIT_H["projection_dim"])
    encoder = write_image_encoder(folder / "encoder", **VIT_H)
    comps.editor.load_ip_adapter(str(weights.parent), weights.name, image_encoder=str(encoder))
    source = components.photo("astronaut", a.size)
    picture = components.photo("coffee", a.size)
    region = components.box_map(a.size, (a.size // 4, a.size // 4, a.size // 2, a.size // 2))

    def diffusers_side() -> dict[str, Any]:
        comps.pipe.set_ip_adapter_scale(IP_SCALE)
        comps.pipe(image=source, ip_adapter_image=picture, generator=_generator(bench), **_settings(bench))
        return {}

    gradient = components.gradient_map(a.size)
    whole = harness.edit_side(bench, source, strength_map=gradient, prompt_images=[(picture, IP_SCALE)])
    masked = harness.edit_side(bench, source, strength_map=gradient,
                               exemplars=[Exemplar(picture, region, condition=IP_SCALE)])
    return {"diffusers ip-adapter": diffusers_side, "pixels prompt image": whole, "pixels exemplar cond.": masked}


def run(bench: Bench) -> dict[str, Any]:
    print(f"\n== {NAME}: {DESCRIPTION}", flush=True)
    summary = harness.compare(bench, controlnet_sides(bench))
    summary |= harness.compare(bench, ip_adapter_sides(bench))
    base_c, pix_c = summary["diffusers controlnet"], summary["pixels + controlnet"]
    base_i, whole, masked = (summary[k] for k in ("diffusers ip-adapter", "pixels prompt image",
                                                  "pixels exemplar cond."))
    checks = [
        Check(NAME, "ControlNet: wall time ratio", harness.ratio(pix_c["wall_s"], base_c["wall_s"]), 1.03),
        Check(NAME, "ControlNet: model calls", pix_c["unet_calls"], base_c["unet_calls"], "=="),
        Check(NAME, "IP-Adapter: wall time ratio", harness.ratio(whole["wall_s"], base_i["wall_s"]), 1.03),
        Check(NAME, "IP-Adapter: model calls", whole["unet_calls"], base_i["unet_calls"], "=="),
        Check(NAME, "exemplar condition (masked) / diffusers", harness.ratio(masked["wall_s"], base_i["wall_s"]),
              None, "info", note="adds a graft and a region mask per attention layer"),
    ]
    return harness.result(NAME, bench, summary, checks, prompt=PROMPT, map="white-ish with gray gradient band",
                          ip_adapter_scale=IP_SCALE, image_encoder="ViT-H/14 (random weights)")


if __name__ == "__main__":
    harness.main_single(NAME, DESCRIPTION, add_arguments, run)
