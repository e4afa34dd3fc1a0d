"""select: clicks, boxes and depth through `pixels.select`, at full-size architectures with random weights.

Each selection model is built from a transformers config with its public checkpoint's sizes (SAM 2.1 Hiera
tiny, SAM ViT-B, the SAM 3 tracker, Depth Anything V2 Small), saved with random weights as a local model folder
(safetensors, plus the checkpoint's preprocessor_config.json) and loaded from there by `Select(model=<folder>)`.
Speed does not depend on the weights, so nothing is downloaded.

On each photo, per repeat (the photo marked afresh each time, so it is one the models have not seen):
(a) the first click (the image embedding is computed), (b) a further click on the same photo (its embedding
reused), (c) a box on the same photo, (d) a depth selection at the photo's full size. Reported per case: the
median and the fastest run, the ratio further click / first click, and the image encoder's calls, counted by
wrapping its forward. A further click that calls the image encoder again fails the run (exit status 1).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import components
import harness
import numpy as np
import torch
import transformers
from harness import Check
from PIL import Image

from pixels.models.loading import resolve_device, resolve_dtype
from pixels.select import Select, clear_cache, resolve_selection
from pixels.select.models import cached

NAME = "select"
DESCRIPTION = "first click, further click, box and depth through pixels.select at full-size architectures"
PHOTOS = {"astronaut 512x512": ("astronaut", (512, 512)), "coffee 1024x768": ("coffee", (1024, 768))}
CLICK_MODELS = ("sam2.1-tiny", "sam-vit-base", "sam3-tracker")
OPTIONAL = ("sam3-tracker",)  # skipped when one click takes longer than --limit-s
DEPTH_MODEL = "depth-anything-v2-small"
CASES = ("first click", "further click", "box", "depth")

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
RESCALE = {"do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_resize": True}


# --- full-size models at random weights ------------------------------------------------------------

def sam2_tiny():
    """facebook/sam2.1-hiera-tiny: Hiera tiny (stages 1-2-7-2, 96-768 channels), 1024 px input."""
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2Model, Sam2VisionConfig

    backbone = Sam2HieraDetConfig(hidden_size=96, blocks_per_stage=[1, 2, 7, 2],
                                  embed_dim_per_stage=[96, 192, 384, 768], num_attention_heads_per_stage=[1, 2, 4, 8],
                                  window_size_per_stage=[8, 4, 14, 7], global_attention_blocks=[5, 7, 9],
                                  image_size=[1024, 1024])
    config = Sam2Config(vision_config=Sam2VisionConfig(backbone_config=backbone,
                                                       backbone_channel_list=[768, 384, 192, 96]))
    pre = {**IMAGENET, **RESCALE, "image_processor_type": "Sam2ImageProcessorFast", "resample": 2,
           "size": {"height": 1024, "width": 1024}, "mask_size": {"height": 256, "width": 256}}
    return Sam2Model(config), pre


def sam_vit_base():
    """facebook/sam-vit-base: transformers' default SamConfig (ViT-B/16, 1024 px, longest side, padded). Its
    vision weights are drawn at std 0.02, not the config's 1e-10, whose tiny activations turn subnormal and slow
    the CPU many times over where the photo is padded."""
    from transformers import SamConfig, SamModel, SamVisionConfig

    pre = {**IMAGENET, **RESCALE, "image_processor_type": "SamImageProcessor", "resample": 2, "do_pad": True,
           "size": {"longest_edge": 1024}, "pad_size": {"height": 1024, "width": 1024}}
    return SamModel(SamConfig(vision_config=SamVisionConfig(initializer_range=0.02))), pre


def sam3_tracker():
    """facebook/sam3's click model: transformers' default Sam3TrackerConfig (ViT-L/14 32 layers, 1008 px)."""
    from transformers import Sam3TrackerConfig, Sam3TrackerModel

    pre = {**HALF, **RESCALE, "image_processor_type": "Sam3ImageProcessorFast", "resample": 2,
           "size": {"height": 1008, "width": 1008}}
    return Sam3TrackerModel(Sam3TrackerConfig()), pre


def depth_anything_small():
    """depth-anything/Depth-Anything-V2-Small-hf: DINOv2 small (384 wide, 12 layers) and its DPT head."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, image_size=518,
                            patch_size=14, out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, patch_size=14, reassemble_hidden_size=384,
                                 neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32,
                                 depth_estimation_type="relative")
    pre = {**IMAGENET, **RESCALE, "image_processor_type": "DPTImageProcessor", "resample": 3, "do_pad": False,
           "keep_aspect_ratio": True, "ensure_multiple_of": 14, "size": {"height": 518, "width": 518}}
    return DepthAnythingForDepthEstimation(config), pre


BUILDERS: dict[str, Callable[[], tuple[torch.nn.Module, dict]]] = {
    "sam2.1-tiny": sam2_tiny, "sam-vit-base": sam_vit_base, "sam3-tracker": sam3_tracker,
    DEPTH_MODEL: depth_anything_small,
}


def write_model(name: str, root: Path) -> dict[str, Any]:
    """Build `name` at random weights (seed 0) and save it as a model folder under `root`; what was built."""
    start = time.perf_counter()
    torch.manual_seed(0)
    model, pre = BUILDERS[name]()
    folder = root / name
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    params = sum(p.numel() for p in model.parameters())
    del model
    built = {"folder": str(folder), "params_m": round(params / 1e6, 1),
             "build_s": round(time.perf_counter() - start, 1)}
    print(f"built {name}: {built['params_m']}M parameters in {built['build_s']} s", flush=True)
    return built


# --- inputs ----------------------------------------------------------------------------------------

MARKS = itertools.count(1)


def fresh(photo: Image.Image) -> Image.Image:
    """A copy of `photo` with an 8x8 corner patch set to a value not used before: a photo no cache has seen."""
    mark = next(MARKS)
    array = np.array(photo)
    array[:8, :8] = [(mark * 37) % 256, (mark * 101) % 256, (mark * 17) % 256]
    return Image.fromarray(array)


def prompts(size: tuple[int, int]) -> dict[str, dict[str, Any]]:
    """The clicks and the box of each case, at fixed fractions of the photo."""
    w, h = size
    return {"first click": {"points": [(0.5 * w, 0.4 * h)]},
            "further click": {"points": [(0.5 * w, 0.4 * h), (0.35 * w, 0.65 * h)], "negative": [(0.9 * w, 0.1 * h)]},
            "box": {"boxes": [(0.2 * w, 0.15 * h, 0.55 * w, 0.7 * h)]}}


# --- instrumentation and timing --------------------------------------------------------------------

class EncoderCalls:
    """Counts the calls of a click model's image encoder (its `vision_encoder.forward`)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.calls = 0
        encoder = model.vision_encoder
        original = encoder.forward

        @functools.wraps(original)
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        encoder.forward = counted

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls


def timed(call: Callable[[], Any], device: torch.device) -> float:
    harness.release_memory(device)
    start = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def summary(seconds: list[float], calls: list[int] | None = None) -> dict[str, Any]:
    out = {"median_s": statistics.median(seconds), "fastest_s": min(seconds),
           "each_s": [round(s, 4) for s in seconds]}
    if calls is not None:
        out["encoder_calls_each"] = calls
    return out


# --- the cases -------------------------------------------------------------------------------------

def click_cases(folder: str, photo: Image.Image, probe: EncoderCalls, settings: dict, cases=CASES[:3]
                ) -> dict[str, tuple[float, int]]:
    """`cases` of (a), (b), (c) in turn on a fresh copy of `photo`: each one's seconds and image encoder calls."""
    photo = fresh(photo)
    out = {}
    for case, prompt in prompts(photo.size).items():
        if case not in cases:
            continue
        select = Select(model=folder, **prompt)
        probe.take()
        seconds = timed(lambda select=select: resolve_selection(select, photo, **settings), settings["device"])
        out[case] = (seconds, probe.take())
    return out


def bench_click_model(name: str, folder: str, photos: dict[str, Image.Image], args: argparse.Namespace,
                      settings: dict) -> dict[str, Any]:
    """Every click case of one model on every photo, `--repeats` times, after an untimed first click per photo.
    An optional model (SAM 3) whose first click takes longer than --limit-s is skipped."""
    start = time.perf_counter()
    loaded = cached(folder, "points", device=settings["device"], dtype=settings["dtype"])
    record: dict[str, Any] = {"load_s": round(time.perf_counter() - start, 2), "photos": {}}
    probe = EncoderCalls(loaded.model)
    for label, photo in photos.items():
        warm = click_cases(folder, photo, probe, settings, cases=("first click",))["first click"][0]
        print(f"  {name} on {label}: warm-up first click {warm:.2f} s", flush=True)
        if name in OPTIONAL and warm > args.limit_s:
            note = f"one first click took {warm:.0f} s, more than --limit-s {args.limit_s:g}: skipped"
            print(f"  {name}: {note}", flush=True)
            record["skipped"] = note
            break
        runs: dict[str, list[tuple[float, int]]] = {case: [] for case in CASES[:3]}
        for k in range(args.repeats):
            for case, run in click_cases(folder, photo, probe, settings).items():
                runs[case].append(run)
                print(f"  [{k + 1}/{args.repeats}] {name:<13} {label:<18} {case:<14} {run[0]:8.3f} s"
                      f"  encoder calls {run[1]}", flush=True)
        record["photos"][label] = {case: summary([s for s, _ in r], [c for _, c in r]) for case, r in runs.items()}
    return record


def bench_depth(folder: str, photos: dict[str, Image.Image], args: argparse.Namespace, settings: dict
                ) -> dict[str, Any]:
    """(d): a depth selection of every photo at its full size, `--repeats` times after one warm-up."""
    start = time.perf_counter()
    cached(folder, "depth", device=settings["device"], dtype=settings["dtype"])
    record: dict[str, Any] = {"load_s": round(time.perf_counter() - start, 2), "photos": {}}
    select = Select(depth=(0.3, 0.8), depth_model=folder)
    for label, photo in photos.items():
        resolve_selection(select, fresh(photo), **settings)
        seconds = []
        for k in range(args.repeats):
            image = fresh(photo)
            seconds.append(timed(lambda image=image: resolve_selection(select, image, **settings), settings["device"]))
            print(f"  [{k + 1}/{args.repeats}] {DEPTH_MODEL:<13} {label:<18} depth          {seconds[-1]:8.3f} s",
                  flush=True)
        record["photos"][label] = {"depth": summary(seconds)}
    return record


# --- checks, table, entry point --------------------------------------------------------------------

def checks_of(results: dict[str, Any]) -> list[Check]:
    checks = []
    for name, record in results.items():
        for label, cases in record["photos"].items():
            if "further click" not in cases:
                continue
            first, further = cases["first click"], cases["further click"]
            where = f"{name}, {label}"
            checks.append(Check(NAME, f"{where}: encoder calls, first click", max(first["encoder_calls_each"]), 1,
                                "==", note="the embedding is computed"))
            checks.append(Check(NAME, f"{where}: encoder calls, further click", max(further["encoder_calls_each"]),
                                0, "==", note="the embedding is reused"))
            checks.append(Check(NAME, f"{where}: further / first click (median)",
                                harness.ratio(further["median_s"], first["median_s"]), None, "info"))
    return checks


def print_cases(results: dict[str, Any]) -> None:
    rows = []
    for name, record in results.items():
        for label, cases in record["photos"].items():
            first = cases.get("first click")
            for case, s in cases.items():
                ratio = harness.ratio(s["median_s"], first["median_s"]) if first else None
                calls = max(s["encoder_calls_each"]) if "encoder_calls_each" in s else None
                rows.append([name, label, case, s["median_s"], s["fastest_s"], ratio, calls])
    harness.print_table(["model", "photo", "case", "median s", "fastest s", "/ first click", "encoder calls"], rows)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (default cpu)")
    parser.add_argument("--dtype", default="fp32", choices=tuple(harness.DTYPES), help="model dtype (default fp32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case and photo (default 3)")
    parser.add_argument("--models", nargs="+", default=list(CLICK_MODELS), choices=CLICK_MODELS,
                        help="click models (default: all three)")
    parser.add_argument("--no-depth", action="store_true", help="leave out the depth case")
    parser.add_argument("--limit-s", type=float, default=120.0,
                        help="skip SAM 3 when its warm-up first click takes longer (default 120)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: $OMP_NUM_THREADS, else the usable cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--out", type=Path, default=None, help="JSON result path (default benchmarks/results/)")
    args = parser.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats: must be >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return args


def main() -> int:
    args = parse_arguments()
    transformers.utils.logging.disable_progress_bar()
    threads = harness.setup_torch(args)
    device = resolve_device(args.device)
    settings = {"device": device, "dtype": resolve_dtype(args.dtype, device)}
    machine = harness.machine_info(args, threads)
    photos = {label: components.photo(name, size) for label, (name, size) in PHOTOS.items()}
    print(f"== {NAME}: {DESCRIPTION} ({args.device}, {args.dtype}, {threads} threads)", flush=True)
    results: dict[str, Any] = {}
    built: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pixels-bench-select-") as root:
        for name in args.models + ([] if args.no_depth else [DEPTH_MODEL]):
            built[name] = write_model(name, Path(root))
            folder = built[name]["folder"]
            if name == DEPTH_MODEL:
                results[name] = bench_depth(folder, photos, args, settings)
            else:
                results[name] = bench_click_model(name, folder, photos, args, settings)
            clear_cache()
    machine["loadavg_at_end"] = harness.load_average()
    print()
    print_cases(results)
    checks = checks_of(results)
    print()
    harness.print_checks(checks)
    harness.write_json(args.out or harness.RESULTS / f"{NAME}.json", {
        "machine": machine, "name": NAME,
        "settings": {"device": args.device, "dtype": args.dtype, "repeats": args.repeats, "seed": args.seed,
                     "photos": {k: list(v[1]) for k, v in PHOTOS.items()}, "prompts": "fractions of the photo size",
                     "models": {k: {f: v for f, v in b.items() if f != "folder"} for k, b in built.items()}},
        "results": results, "checks": [c.as_dict() for c in checks]})
    reembeds = [c for c in checks if "further click" in c.metric and c.kind == "==" and c.verdict == "FAIL"]
    if reembeds:
        print(f"FAIL: a further click on the same photo called the image encoder again ({len(reembeds)} cases)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
