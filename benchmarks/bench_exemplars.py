"""exemplars: a pixels edit with N exemplars (default 8) against the same edit with one.

Both sides edit the same area: one exemplar covers a central box; the N exemplars split that box
into N strips (their maps' union is the box). The number of model calls does not depend on N; each
exemplar costs one VAE encode. Reported: wall time ratio (target <= 1.05x), and the time in VAE
encodes and outside the VAE separately, so the source of any difference is visible. The same pair
runs again with exemplar_encode="region", which encodes each exemplar only around its own strip,
so the encode cost follows the edited area rather than the exemplar count.
"""

from __future__ import annotations

import argparse
from typing import Any

import components
import harness
from harness import Bench, Check

from pixels import Exemplar

NAME = "exemplars"
DESCRIPTION = "pixels with N exemplars vs 1 exemplar over the same map area"
PROMPT = harness.PROMPT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exemplars", type=int, default=8, help="exemplar count of the subject side (default 8)")


def region(size: int) -> tuple[int, int, int, int]:
    """The edited box (x0, y0, x1, y1): the central 3/4 of the frame."""
    return size // 8, size // 8, size - size // 8, size - size // 8


def make_exemplars(size: int, count: int) -> list[Exemplar]:
    """`count` aligned exemplar photos whose maps split the central box into strips."""
    maps = components.tile_maps(size, count, region(size))
    return [Exemplar(image, strength_map=m) for image, m in zip(components.exemplar_photos(count, size), maps)]


def sides(bench: Bench) -> dict[str, harness.Side]:
    """The baseline (1 exemplar) and the subject (N exemplars), same source, settings and seed."""
    a = bench.args
    source = components.photo("astronaut", a.size)
    one, many = make_exemplars(a.size, 1), make_exemplars(a.size, a.exemplars)
    return {"1 exemplar": harness.edit_side(bench, source, exemplars=one),
            f"{a.exemplars} exemplars": harness.edit_side(bench, source, exemplars=many),
            "1 exemplar, region": harness.edit_side(bench, source, exemplars=one, exemplar_encode="region"),
            f"{a.exemplars} exemplars, region": harness.edit_side(bench, source, exemplars=many,
                                                                   exemplar_encode="region")}


def run(bench: Bench) -> dict[str, Any]:
    a = bench.args
    if a.exemplars < 1:
        raise SystemExit("--exemplars: must be >= 1")
    print(f"\n== {NAME}: {DESCRIPTION} (N = {a.exemplars})", flush=True)
    summary = harness.compare(bench, sides(bench))
    one, many = summary["1 exemplar"], summary[f"{a.exemplars} exemplars"]
    one_region, many_region = summary["1 exemplar, region"], summary[f"{a.exemplars} exemplars, region"]
    per_encode = harness.fmt(harness.ratio(many["vae_encode_s"], many["vae_encode_calls"]))
    encodes = f"{many['vae_encode_calls']} vs {one['vae_encode_calls']} encodes, {per_encode} s each"
    checks = [
        Check(NAME, "wall time ratio", harness.ratio(many["wall_s"], one["wall_s"]), 1.05),
        Check(NAME, "time outside VAE/text ratio", harness.ratio(many["rest_s"], one["rest_s"]), 1.05,
              note="denoising loop + glue"),
        Check(NAME, "VAE encode time ratio", harness.ratio(many["vae_encode_s"], one["vae_encode_s"]), None,
              "info", note=encodes),
        Check(NAME, f"model calls ({a.exemplars} exemplars)", many["unet_calls"], one["unet_calls"], "==",
              note=f"1 exemplar: {one['unet_calls']}"),
        Check(NAME, "wall time ratio, region encode", harness.ratio(many_region["wall_s"], one_region["wall_s"]),
              1.05, note='exemplar_encode="region" on both sides'),
    ]
    return harness.result(NAME, bench, summary, checks, prompt=PROMPT, exemplars=a.exemplars,
                          region=list(region(a.size)))


if __name__ == "__main__":
    harness.main_single(NAME, DESCRIPTION, add_arguments, run)
