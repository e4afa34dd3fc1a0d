"""PIXELS Regional LoRA in ComfyUI against ComfyUI's own LoRA loader, on a full-size SD 1.5 UNet at random weights.

Needs a ComfyUI source tree (COMFYUI_PATH, or --comfyui) with its requirements installed; it is imported on the
CPU the way the node pack's tests import it (tests/comfyui_env.py). Three sides, alternated in one process on the
same UNet, the same random text conditioning, seed, steps and size (Euler, CFG, batch 2 per model call):

- plain: the model alone;
- global: two LoRAs (rank 32 on every attention projection) through ComfyUI's LoraLoaderModelOnly, weights merged;
- regional: the same two LoRAs through two PIXELS Regional LoRA nodes, one on each half of the frame.

Each side is timed twice: alternated with the others (switching models, ComfyUI merges the global LoRA's weights
into the UNet and restores them each time) and sampled again and again (the weights stay merged). Printed: each
side's fastest run in both, the ratios regional / global and regional / plain, and the model calls per run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent / "tests"


def write_lora(unet, path: Path, seed: int, rank: int = 32) -> None:
    """A random LoRA in the kohya format on every attention projection of the UNet."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, weight in unet.state_dict().items():
        module = key[:-len(".weight")]
        if key.endswith(".weight") and module.endswith(("to_q", "to_k", "to_v", "to_out.0")):
            name = "lora_unet_" + module.replace(".", "_")
            tensors[f"{name}.lora_down.weight"] = torch.randn(rank, weight.shape[1], generator=generator) * 0.01
            tensors[f"{name}.lora_up.weight"] = torch.randn(weight.shape[0], rank, generator=generator) * 0.01
            tensors[f"{name}.alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="a ComfyUI source tree")
    parser.add_argument("--size", type=int, default=256, help="square picture size in px (default 256)")
    parser.add_argument("--steps", type=int, default=4, help="sampling steps (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (default 3)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "comfyui_lora.json", help="JSON result")
    args = parser.parse_args()
    if not args.comfyui:
        parser.error("--comfyui (or COMFYUI_PATH) must name a ComfyUI source tree")
    sys.path.insert(0, str(TESTS))
    import comfyui_env

    mappings = comfyui_env.start(args.comfyui)
    import comfy.model_patcher
    import comfy.supported_models
    import folder_paths
    import nodes
    import torch

    unet_config = {
        "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320,
        "num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
        "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "transformer_depth_middle": 1,
        "context_dim": 768, "num_heads": 8, "use_spatial_transformer": True, "legacy": False,
        "use_linear_in_transformer": False, "adm_in_channels": None, "use_temporal_attention": False,
        "use_temporal_resblock": False, "dtype": torch.float32,
    }
    base = comfy.supported_models.SD15(unet_config).get_model({})
    comfyui_env._init(base.diffusion_model, 0)
    cpu = torch.device("cpu")
    model = comfy.model_patcher.ModelPatcher(base, load_device=cpu, offload_device=cpu)
    folder = Path(tempfile.mkdtemp(prefix="pixels-bench-"))
    folder_paths.add_model_folder_path("loras", str(folder))
    for k in (1, 2):
        write_lora(base.diffusion_model, folder / f"bench_{k}.safetensors", k)

    generator = torch.Generator().manual_seed(0)
    positive = [[torch.randn(1, 77, 768, generator=generator), {}]]
    negative = [[torch.randn(1, 77, 768, generator=generator), {}]]
    h = args.size // 8
    latent = {"samples": torch.randn(1, 4, h, h, generator=generator)}
    left = torch.zeros(1, args.size, args.size)
    left[:, :, : args.size // 2] = 1.0
    right = 1.0 - left

    loader = nodes.LoraLoaderModelOnly()
    merged = loader.load_lora_model_only(loader.load_lora_model_only(model, "bench_1.safetensors", 1.0)[0],
                                         "bench_2.safetensors", 1.0)[0]
    node = mappings["PixelsRegionalLoRA"]
    regional = node.execute(model=model, lora_name="bench_1.safetensors", strength=1.0, region=left).args[0]
    regional = node.execute(model=regional, lora_name="bench_2.safetensors", strength=1.0, region=right).args[0]
    sides = {"plain": model, "global": merged, "regional": regional}

    calls = {}
    counted = {}
    for name, patcher in sides.items():
        clone = patcher.clone()

        def count(apply, a, name=name):
            calls[name] = calls.get(name, 0) + 1
            return apply(a["input"], a["timestep"], **a["c"])
        clone.set_model_unet_function_wrapper(count)
        counted[name] = clone

    def sample(patcher):
        return nodes.common_ksampler(patcher, 0, args.steps, 7.5, "euler", "normal", positive, negative, latent,
                                     denoise=1.0)[0]["samples"]

    alternated: dict[str, list[float]] = {name: [] for name in sides}
    kept: dict[str, list[float]] = {name: [] for name in sides}
    with torch.inference_mode():
        for name in sides:  # warm-up, and the model calls of one run
            sample(counted[name])
        for _ in range(args.repeats):  # switching models: ComfyUI merges (and restores) the global LoRA's weights
            for name, patcher in sides.items():
                start = time.perf_counter()
                sample(patcher)
                alternated[name].append(time.perf_counter() - start)
        for name, patcher in sides.items():  # one model sampled again and again: the weights stay merged
            sample(patcher)
            for _ in range(args.repeats):
                start = time.perf_counter()
                sample(patcher)
                kept[name].append(time.perf_counter() - start)
    fastest = {phase: {name: min(v) for name, v in runs.items()} for phase, runs in
               (("alternated", alternated), ("kept", kept))}
    result = {"size": args.size, "steps": args.steps, "repeats": args.repeats, "threads": torch.get_num_threads(),
              "seconds": fastest, "runs": {"alternated": alternated, "kept": kept}, "model_calls": calls}
    print(f"{'side':<10}{'alternated s':>14}{'kept loaded s':>15}{'model calls':>13}")
    for name in sides:
        print(f"{name:<10}{fastest['alternated'][name]:>14.2f}{fastest['kept'][name]:>15.2f}{calls[name]:>13}")
    for phase in ("alternated", "kept"):
        best = fastest[phase]
        result[f"{phase}_regional_over_global"] = best["regional"] / best["global"]
        result[f"{phase}_regional_over_plain"] = best["regional"] / best["plain"]
        result[f"{phase}_global_over_plain"] = best["global"] / best["plain"]
        print(f"{phase}: regional / global {best['regional'] / best['global']:.3f}, regional / plain"
              f" {best['regional'] / best['plain']:.3f}, global / plain {best['global'] / best['plain']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
