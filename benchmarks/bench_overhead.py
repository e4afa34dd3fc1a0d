"""overhead: a pixels edit against diffusers' own img2img pipeline on the same components.

Both sides run the same steps, strength, resolution, guidance, prompt and seed, and the same VAE
work (one encode, one decode). The pixels side edits with a white-ish strength map with a gray
gradient band (every pixel is released by the last steps, so it makes the same number of model
calls, and pinning runs at every step). Reported: wall time ratio (target <= 1.03x), peak
working-memory ratio (target <= 1.05x) and the model calls of each; the time outside the VAE and
the text encoder shows the cost of the denoising loop itself. An exemplar adds one VAE encode and
no model call: `bench_exemplars.py` measures what exemplars cost.
"""

from __future__ import annotations

import argparse
from typing import Any

import components
import harness
import torch
from harness import Bench, Check

NAME = "overhead"
DESCRIPTION = "pixels edit (gradient map) vs diffusers img2img: time, memory, model calls"
PROMPT = harness.PROMPT
PROJECTED_STEPS = 50


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No flags of its own: steps, strength, guidance and size are the common ones."""


def sides(bench: Bench) -> dict[str, harness.Side]:
    """The diffusers baseline and the pixels subject (white-ish gradient map)."""
    a, comps = bench.args, bench.comps
    source = components.photo("astronaut", a.size)

    def diffusers_side() -> dict[str, Any]:
        comps.pipe(prompt=PROMPT, image=source, strength=a.strength, num_inference_steps=a.steps,
                   guidance_scale=a.guidance, generator=torch.Generator("cpu").manual_seed(a.seed))
        return {}

    pixels_side = harness.edit_side(bench, source, strength_map=components.gradient_map(a.size))
    return {"diffusers img2img": diffusers_side, "pixels edit": pixels_side}


def projected(subject: dict[str, Any], baseline: dict[str, Any], steps: int) -> float | None:
    """Wall ratio extrapolated to `steps` model calls: fixed costs plus `steps` times the per-call loop cost."""
    def at(s: dict[str, Any]) -> float | None:
        if not s["unet_calls"]:
            return None
        return s["wall_s"] - s["rest_s"] + steps * s["rest_s_per_call"]

    a, b = at(subject), at(baseline)
    return None if a is None or b is None else harness.ratio(a, b)


def run(bench: Bench) -> dict[str, Any]:
    print(f"\n== {NAME}: {DESCRIPTION}", flush=True)
    both = sides(bench)
    summary = harness.compare(bench, both)
    base, pix = summary["diffusers img2img"], summary["pixels edit"]
    tensors = None
    if bench.args.device == "cpu":  # the RSS includes what the allocator keeps: count live tensors too
        tensors = {name: harness.tensor_peak_mib(side) for name, side in both.items()}
    checks = [
        Check(NAME, "wall time ratio", harness.ratio(pix["wall_s"], base["wall_s"]), 1.03),
        Check(NAME, "time outside VAE/text ratio", harness.ratio(pix["rest_s"], base["rest_s"]), 1.03,
              note="denoising loop + glue"),
        Check(NAME, "pixels' own work / img2img wall", harness.ratio(pix["glue_s"] - base["glue_s"], base["wall_s"]),
              0.03, note="time outside the UNet, VAE and text encoders"),
        Check(NAME, "UNet time per call ratio", harness.ratio(pix["unet_s_per_call"], base["unet_s_per_call"]),
              None, "info", note="the same calls on both sides: shows the timing noise"),
        Check(NAME, "peak memory ratio", harness.ratio(pix["peak_mib"], base["peak_mib"]), 1.05,
              note=f"{pix['peak_mib']:.0f} / {base['peak_mib']:.0f} MiB"),
        Check(NAME, "peak tensor memory ratio (profiler)",
              None if tensors is None else harness.ratio(tensors["pixels edit"], tensors["diffusers img2img"]),
              1.05, note="" if tensors is None else
              "{pixels edit:.1f} / {diffusers img2img:.1f} MiB".format(**tensors)),
        Check(NAME, "model calls (pixels)", pix["unet_calls"], base["unet_calls"], "==",
              note=f"diffusers {base['unet_calls']}, pixels reports {pix.get('reported', {}).get('model_calls')}"),
        Check(NAME, f"wall ratio projected to {PROJECTED_STEPS} steps", projected(pix, base, PROJECTED_STEPS),
              None, "info", note="extrapolated, not measured"),
    ]
    return harness.result(NAME, bench, summary, checks, prompt=PROMPT, map="white-ish with gray gradient band",
                          exemplars=0)


if __name__ == "__main__":
    harness.main_single(NAME, DESCRIPTION, add_arguments, run)
