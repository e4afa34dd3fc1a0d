"""crop: editing a small region of a large photo, cropped to the region versus the full frame.

A square region a quarter of the photo's side (256 px in a 1024 px photo by default on a GPU)
gets an exemplar through a feathered map. `crop="auto"` denoises only the region plus
`crop_margin` pixels around it; `crop=None` denoises the whole frame. Reported: wall time ratio
(target <= 0.25x). On the CPU the default photo is 512 px (a 128 px region) and guidance is off
(guidance_scale 1, one model branch) on both sides to keep the full-frame side affordable; the
settings used are printed and recorded.
"""

from __future__ import annotations

import argparse
from typing import Any

import components
import harness
from harness import Bench, Check

from pixels import Exemplar

NAME = "crop"
DESCRIPTION = 'crop="auto" vs full frame (crop=None) for a small edit region in a large photo'
PARAMETER = "crop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--crop-size", type=int, default=None,
                        help="photo side in px (default 1024 on cuda, 512 on cpu)")
    parser.add_argument("--crop-region", type=int, default=None, help="edit region side in px (default size / 4)")
    parser.add_argument("--crop-margin", type=int, default=None, help="crop_margin in px (default 32)")
    parser.add_argument("--crop-guidance", type=float, default=None,
                        help="guidance_scale of both sides (default 1 on cpu, else --guidance)")


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The crop comparison's own sizes and guidance, with device-dependent defaults."""
    size = args.crop_size or (128 if args.tiny else 1024 if args.device == "cuda" else 512)
    margin = args.crop_margin if args.crop_margin is not None else (8 if args.tiny else 32)
    guidance = args.crop_guidance if args.crop_guidance is not None else (
        1.0 if args.device == "cpu" else args.guidance)
    return {"crop_size": size, "crop_region": args.crop_region or size // 4, "crop_margin": margin,
            "crop_guidance": guidance}


def region_box(size: int, region: int) -> tuple[int, int, int, int]:
    """The edit region (x0, y0, x1, y1): right of centre, in the upper half."""
    x0, y0 = size * 9 // 16, size * 3 // 16
    return x0, y0, x0 + region, y0 + region


def run(bench: Bench) -> dict[str, Any]:
    s = settings(bench.args)
    size, region, margin = s["crop_size"], s["crop_region"], s["crop_margin"]
    if not 0 < region <= size:
        raise SystemExit("--crop-region: must lie in (0, --crop-size]")
    print(f"\n== {NAME}: {DESCRIPTION} ({region} px region in a {size} px photo, margin {margin},"
          f" guidance {s['crop_guidance']})", flush=True)
    if not harness.supports(bench, PARAMETER):
        return harness.unavailable(NAME, bench, PARAMETER)
    source = components.photo("astronaut", size)
    box = region_box(size, region)
    exemplar = Exemplar(components.photo("coffee", (600, 400)),
                        strength_map=components.box_map(size, box, feather=max(region // 8, 1)))
    common = dict(exemplars=[exemplar], guidance_scale=s["crop_guidance"], crop_margin=margin)
    sides = {"crop=None (full frame)": harness.edit_side(bench, source, crop=None, **common),
             "crop=auto": harness.edit_side(bench, source, crop="auto", **common)}
    summary = harness.compare(bench, sides)
    full, crop = summary["crop=None (full frame)"], summary["crop=auto"]
    cropped = min(region + 2 * margin, size)
    checks = [
        Check(NAME, "wall time ratio crop/full", harness.ratio(crop["wall_s"], full["wall_s"]), 0.25,
              note=f"{region} px region in {size} px, guidance {s['crop_guidance']}"),
        Check(NAME, "area ratio (region+margins)/frame", (cropped / size) ** 2, None, "info",
              note="what the ratio would be if cost scaled with area"),
    ]
    return harness.result(NAME, bench, summary, checks, **s, region_box=list(box), exemplars=1)


if __name__ == "__main__":
    harness.main_single(NAME, DESCRIPTION, add_arguments, run)
