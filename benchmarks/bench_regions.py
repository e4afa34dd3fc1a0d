"""regions: regional prompts against one global prompt, at the same steps and size.

The same full-frame edit runs with one global prompt, and with the frame split into N vertical strips (default
4), each a `Region` with a prompt of its own (the global prompt applies nowhere then, but is still encoded and
attended where a strip's edge is gray; here the strips are hard). Regional text is attended in the
cross-attention layers of the one model call per step, so the model calls must be equal and the wall time
ratio small (target <= 1.10): what grows is the keys, values and attention of the cross-attention layers, one
group of 77 tokens per region, and one text-encoder pass per region.
"""

from __future__ import annotations

import argparse
from typing import Any

import components
import harness
from harness import Bench, Check

NAME = "regions"
DESCRIPTION = "N regional prompts against one global prompt"
PARAMETER = "regions"
PROMPTS = ("a red fox, fur", "brass lamp, warm light", "blue glass bottle", "green velvet sofa", "an old oak tree",
           "a stone wall", "evening sky", "a wooden table")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--regions", type=int, default=4, help="regional prompts, 1-8 (default 4)")


def run(bench: Bench) -> dict[str, Any]:
    a = bench.args
    if not 1 <= a.regions <= len(PROMPTS):
        raise SystemExit(f"--regions: must lie in [1, {len(PROMPTS)}]")
    print(f"\n== {NAME}: {DESCRIPTION} (N = {a.regions})", flush=True)
    if not harness.supports(bench, PARAMETER):
        return harness.unavailable(NAME, bench, PARAMETER)
    from pixels import Region

    source = components.photo("astronaut", a.size)
    everywhere = components.box_map(a.size, (0, 0, a.size, a.size))
    strips = components.tile_maps(a.size, a.regions, (0, 0, a.size, a.size))
    regions = [Region(m, prompt=text) for m, text in zip(strips, PROMPTS)]
    one, many = "1 global prompt", f"{a.regions} regional prompts"
    sides = {one: harness.edit_side(bench, source, strength_map=everywhere),
             many: harness.edit_side(bench, source, strength_map=everywhere, regions=regions)}
    summary = harness.compare(bench, sides)
    checks = [
        Check(NAME, "model calls, regional / global", summary[many]["unet_calls"], summary[one]["unet_calls"], "=="),
        Check(NAME, "wall time ratio regional / global", harness.ratio(summary[many]["wall_s"], summary[one]["wall_s"]),
              1.10, "<="),
        Check(NAME, "time per model call ratio",
              harness.ratio(summary[many]["unet_s_per_call"], summary[one]["unet_s_per_call"]), 1.10, "info",
              note="the cross-attention's share of the UNet"),
    ]
    return harness.result(NAME, bench, summary, checks, regions=a.regions, map="full frame, hard vertical strips",
                          exemplars=0)


if __name__ == "__main__":
    harness.main_single(NAME, DESCRIPTION, add_arguments, run)
