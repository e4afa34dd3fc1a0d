"""How close pixels' peak-memory estimate (pixels.models.estimate.estimate_peak) is to the measured peak of an edit.

For each model and image size: one edit (one denoising step, guidance on where the model has it), its peak
of live tensors from the PyTorch profiler (and the RSS growth on the CPU), against the estimate that the
memory check compares with the free memory. The estimate should lie above the measurement, but not far.

    OMP_NUM_THREADS=2 python benchmarks/bench_memory.py --device cpu [--sizes 128 256 384 512] [--tiny]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import components
import harness
import numpy as np
import torch

from pixels import Editor
from pixels.models.estimate import estimate_peak


def measure(editor: Editor, size: int, guidance: float, device: torch.device) -> dict:
    source = components.photo("astronaut", size)
    strength = np.ones((size, size))

    def run() -> None:
        editor.edit(source, strength_map=strength, num_inference_steps=4, strength=0.25, guidance_scale=guidance,
                    seed=0, skip_steps="never")

    run()  # warm-up: lazy initialisation is not the edit's working memory
    harness.release_memory(device)
    with harness.PeakMemory(device) as rss:
        run()
    tensors = harness.tensor_peak_mib(run) if device.type == "cpu" else rss.peak_bytes / 2**20
    adapter = editor.adapter
    frame = (-(-size // adapter.size_multiple) * adapter.size_multiple,) * 2
    batch = 2 if adapter.guidance(guidance).enabled else 1
    estimate = estimate_peak(adapter, frame, batch, tiled=False) / 2**20
    return {"size": size, "tensor_peak_mib": round(tensors, 1), "rss_peak_mib": round(rss.peak_bytes / 2**20, 1),
            "estimate_mib": round(estimate, 1), "estimate_over_tensors": round(estimate / max(tensors, 1e-9), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384, 512])
    parser.add_argument("--tiny", action="store_true", help="the test suite's tiny SD model (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "memory.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    models = [("sd15", components.build("sd15", args.device, torch.float32, tiny=args.tiny).editor, 7.5),
              ("demo", Editor.from_pretrained("demo", device=args.device), 1.0)]
    for name, editor, guidance in models:
        for size in args.sizes:
            row = {"model": name, **measure(editor, size, guidance, device)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    harness.print_table(["model", "size", "tensor peak MiB", "RSS peak MiB", "estimate MiB", "estimate / tensors"],
                        [[r["model"], r["size"], r["tensor_peak_mib"], r["rss_peak_mib"], r["estimate_mib"],
                          r["estimate_over_tensors"]] for r in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
