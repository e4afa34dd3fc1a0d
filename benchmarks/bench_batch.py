"""batch: throughput of batched denoising, and the overhead of the Ray engine, on full-size SD 1.5 at random
weights (speed does not depend on the weights).

1. `Editor.edit_batch` with 4 edits (one model call per step for all four) against the same 4 edits run
   one after another, alternating the sides, fastest of `--repeats` runs each; the batched results are
   checked against the sequential ones (at most one 8-bit level apart).
2. `pixels batch` on a manifest of `--rows` rows: the Ray engine with 1 worker (a local Ray instance) against
   the local engine, each timed from the start of the job to its end (model loading, and for Ray its start
   and its worker, included): the Ray engine's overhead.

    OMP_NUM_THREADS=2 python benchmarks/bench_batch.py [--device cpu] [--size 256] [--rows 8] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import components
import harness
import numpy as np
import torch


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def batched_vs_sequential(editor, size: int, steps: int, strength: float, repeats: int) -> dict:
    photos = components.exemplar_photos(4, size)
    maps = [components.gradient_map(size, low=0.3 + 0.1 * k) for k in range(4)]
    requests = [dict(source=p, strength_map=m, seed=k, prompt="a photo", num_inference_steps=steps,
                     strength=strength, guidance_scale=7.5) for k, (p, m) in enumerate(zip(photos, maps))]
    seq_times, batch_times, diff = [], [], 0
    for _ in range(repeats):
        t, alone = timed(lambda: [editor.edit(**r) for r in requests])
        seq_times.append(t)
        t, together = timed(lambda: editor.edit_batch(requests))
        batch_times.append(t)
        diff = max(int(np.abs(np.asarray(a.image).astype(int) - np.asarray(b.image).astype(int)).max())
                   for a, b in zip(alone, together))
    return {"sequential_s": min(seq_times), "batched_s": min(batch_times),
            "ratio": min(batch_times) / min(seq_times), "max_level_difference": diff,
            "model_calls_batched": together[0].metadata["model_calls"],  # shared: each result says the batch's
            "model_calls_sequential": sum(result.metadata["model_calls"] for result in alone)}


def ray_vs_local(pipe, size: int, rows: int, steps: int, strength: float, device: str) -> dict:
    from pixels.batch.engine import plan, run_local
    from pixels.batch.ray_engine import run_ray
    from pixels.editor import Editor

    work = Path(tempfile.mkdtemp(prefix="pixels-bench-batch-"))
    pipe.save_pretrained(work / "model", safe_serialization=True)
    for k, picture in enumerate(components.exemplar_photos(rows, size)):
        picture.save(work / f"p{k}.png")
    from PIL import Image

    Image.fromarray((components.gradient_map(size) * 255).astype(np.uint8)).save(work / "map.png")
    manifest = work / "rows.jsonl"
    manifest.write_text("".join(json.dumps({"source": f"p{k}.png", "map": "map.png", "seed": k, "prompt": "a photo",
                                            "steps": steps, "strength": strength}) + "\n" for k in range(rows)))
    load = dict(model=str(work / "model"), device=device, dtype="fp32")

    def local() -> None:
        with plan(manifest, work / "local", load["model"]) as job:
            run_local(job, Editor.from_pretrained(**load), batch_size=1, retries=0)

    def on_ray() -> None:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            with plan(manifest, work / "ray", load["model"]) as job:  # the workers get this process's threads
                run_ray(job, load, batch_size=1, workers=1, gpus_per_worker=1.0 if device == "cuda" else 0.0,
                        retries=0, threads=torch.get_num_threads())
        finally:
            ray.shutdown()

    local_s, _ = timed(local)
    ray_s, _ = timed(on_ray)
    return {"rows": rows, "local_s": local_s, "ray_s": ray_s, "ratio": ray_s / local_s,
            "per_row_local_s": local_s / rows, "per_row_ray_s": ray_s / rows,
            "outputs_identical": same_outputs(work / "local", work / "ray", rows)}


def same_outputs(local: Path, ray: Path, rows: int) -> bool:
    """Both engines wrote the same `rows` files, pixel for pixel."""
    from PIL import Image

    names = sorted(p.name for p in local.glob("*.png"))
    if len(names) != rows or names != sorted(p.name for p in ray.glob("*.png")):
        return False
    return all(np.array_equal(np.asarray(Image.open(local / name)), np.asarray(Image.open(ray / name)))
               for name in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--strength", type=float, default=0.5)
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the test suite's tiny model (a smoke run)")
    parser.add_argument("--only", choices=["batched", "ray"], help="run one of the two comparisons")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "batch.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    comps = components.build("sd15", args.device, torch.float32, tiny=args.tiny)
    print(f"built SD 1.5 ({'tiny' if args.tiny else 'full size'}, random weights) in {comps.build_s:.1f} s", flush=True)
    record = json.loads(args.out.read_text()) if args.only and args.out.exists() else {}
    record |= {"device": args.device, "size": args.size, "steps": args.steps, "strength": args.strength,
               "tiny": args.tiny, "torch": torch.__version__}
    if args.only in (None, "batched"):
        record["batched"] = batched_vs_sequential(comps.editor, args.size, args.steps, args.strength, args.repeats)
        print(json.dumps(record["batched"]), flush=True)
    if args.only in (None, "ray"):
        record["ray"] = ray_vs_local(comps.pipe, args.size, args.rows, args.steps, args.strength, args.device)
        print(json.dumps(record["ray"]), flush=True)
    rows = []
    if "batched" in record:
        first = record["batched"]
        rows.append(["4 edits batched / one by one, wall time", f"{first['ratio']:.3f}x",
                     f"{first['batched_s']:.1f} s vs {first['sequential_s']:.1f} s; {first['model_calls_batched']}"
                     f" calls vs {first['model_calls_sequential']}; within {first['max_level_difference']} level(s)"])
    if "ray" in record:
        second = record["ray"]
        rows.append(["Ray engine (1 worker) / local engine, job time", f"{second['ratio']:.3f}x",
                     f"{second['ray_s']:.1f} s vs {second['local_s']:.1f} s for {second['rows']} rows;"
                     f" outputs identical: {second['outputs_identical']}"])
    harness.print_table(["comparison", "measured", "detail"], rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
