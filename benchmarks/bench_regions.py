"""regions: regional prompts (and regional LoRAs) against one global prompt, at the same steps and size.

The same full-frame edit runs with one global prompt, and with the frame split into N vertical strips (default
4), each a `Region` with a prompt of its own (the global prompt applies nowhere then, but is still encoded and
attended where a strip's edge is gray; here the strips are hard). Regional text is attended in the
cross-attention layers of the one model call per step, so the model calls must be equal and the wall time
ratio small (target <= 1.10): what grows is the keys, values and attention of the cross-attention layers, one
group of 77 tokens per region, and one text-encoder pass per region.

Then L LoRAs (default 2, rank 32 on every attention projection, at random weights) are loaded, and the N
regional prompts with the first L strips each applying one LoRA at scale 1 (the edit's scale 0) run against one
global prompt with the same LoRAs at scale 1 everywhere: the same low-rank work, applied per position.

    OMP_NUM_THREADS=2 python benchmarks/bench_regions.py --repeats 3
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
    parser.add_argument("--loras", type=int, default=2, help="regional LoRAs, 0 to --regions (default 2)")
    parser.add_argument("--lora-rank", type=int, default=32, help="their rank (default 32)")


def run(bench: Bench) -> dict[str, Any]:
    a = bench.args
    if not 1 <= a.regions <= len(PROMPTS):
        raise SystemExit(f"--regions: must lie in [1, {len(PROMPTS)}]")
    if not 0 <= a.loras <= a.regions:
        raise SystemExit("--loras: must lie in [0, --regions]")
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
    loras = _with_loras(bench, source, everywhere, strips) if a.loras else {}
    summary |= loras
    checks = [
        Check(NAME, "model calls, regional / global", summary[many]["unet_calls"], summary[one]["unet_calls"], "=="),
        Check(NAME, "wall time ratio regional / global", harness.ratio(summary[many]["wall_s"], summary[one]["wall_s"]),
              1.10, "<="),
        Check(NAME, "time per model call ratio",
              harness.ratio(summary[many]["unet_s_per_call"], summary[one]["unet_s_per_call"]), 1.10, "info",
              note="the cross-attention's share of the UNet"),
    ]
    if loras:
        glob, local = list(loras)
        checks += [
            Check(NAME, "model calls, regional LoRAs / global LoRAs", summary[local]["unet_calls"],
                  summary[glob]["unet_calls"], "=="),
            Check(NAME, "wall time ratio regional prompts and LoRAs / global prompt and LoRAs",
                  harness.ratio(summary[local]["wall_s"], summary[glob]["wall_s"]), 1.10, "<="),
            Check(NAME, "wall time ratio regional prompts and LoRAs / global prompt, no LoRA",
                  harness.ratio(summary[local]["wall_s"], summary[one]["wall_s"]), None, "info",
                  note="the LoRAs' own cost included"),
        ]
    return harness.result(NAME, bench, summary, checks, regions=a.regions, map="full frame, hard vertical strips",
                          exemplars=0, loras=a.loras, lora_rank=a.lora_rank if a.loras else None)


def _with_loras(bench: Bench, source, everywhere, strips) -> dict[str, dict[str, Any]]:
    """The LoRA sides: the LoRAs loaded (at scale 0), then one global prompt with them at 1 everywhere against
    the regional prompts with strip k applying LoRA k at 1."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from pixels import Region
    from pixels.testing.tiny import write_lora

    a, editor, pipe = bench.args, bench.comps.editor, bench.comps.pipe
    if "loras" not in {f.name for f in dataclasses.fields(Region)}:
        print("  (Region takes no loras in this pixels version: the LoRA sides are left out)")
        return {}
    folder = Path(tempfile.mkdtemp(prefix="pixels-bench-loras-"))
    paths = [write_lora(pipe, folder / f"lora{k}", rank=a.lora_rank, seed=k,
                        targets=("to_q", "to_k", "to_v", "to_out.0")) for k in range(a.loras)]
    names = [editor.load_lora(str(path.parent), 0.0) for path in paths]
    pipe.to(bench.comps.device, bench.comps.dtype)
    regions = [Region(m, prompt=text, loras={names[k]: 1.0} if k < a.loras else None)
               for k, (m, text) in enumerate(zip(strips, PROMPTS))]
    glob = f"1 global prompt, {a.loras} global LoRAs"
    local = f"{a.regions} regional prompts, {a.loras} regional LoRAs"

    def everywhere_loras():
        pipe.set_adapters([lora["adapter"] for lora in editor.loras], adapter_weights=[1.0] * a.loras)
        try:
            return harness.edit_side(bench, source, strength_map=everywhere)()
        finally:
            pipe.set_adapters([lora["adapter"] for lora in editor.loras], adapter_weights=[0.0] * a.loras)

    try:
        return harness.compare(bench, {glob: everywhere_loras,
                                       local: harness.edit_side(bench, source, strength_map=everywhere,
                                                                regions=regions)})
    finally:
        pipe.unload_lora_weights()


if __name__ == "__main__":
    harness.main_single(NAME, DESCRIPTION, add_arguments, run)
