"""How the demo edit's measurements move with strength (the README's table).

    python examples/demo_strength_sweep.py [--strengths 0.1 0.15 0.2 0.3 0.5] [--seed 0]

For each global strength it runs the demo edit with and without the exemplar (the same map and seed)
and prints background error, seam energy against a naive paste, and exemplar fidelity in the grafted
region.
"""

from __future__ import annotations

import argparse

from pixels import Editor, Exemplar, demo
from pixels.eval.metrics import evaluate, exemplar_fidelity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.1, 0.15, 0.2, 0.3, 0.5])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    editor = Editor.from_pretrained("demo", device="cpu")
    source, exemplar, strength = demo.inputs()
    graft = strength >= 1.0
    print("| strength | background max error | seam: result / naive paste | PSNR to exemplar, dB (with / without it)"
          " | SSIM (with / without) | colour distance (with / without) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for s in args.strengths:
        kwargs = dict(num_inference_steps=args.steps, strength=s, seed=args.seed, guidance_scale=1.0)
        result = editor.edit(source, exemplars=[Exemplar(exemplar, strength)], **kwargs)
        without = editor.edit(source, strength_map=strength, **kwargs)
        report = evaluate(result.image, source, strength, exemplar)
        absent = exemplar_fidelity(without.image, exemplar, graft)
        seam = report["seam_vs_paste"]
        print(
            f"| {s:g} | {report['background']['max_error']:.0f} | {seam['result']:.4f} / {seam['naive_paste']:.4f}"
            f" ({seam['ratio']:.2f}x) | {report['exemplar']['psnr']:.1f} / {absent['psnr']:.1f}"
            f" | {report['exemplar']['ssim']:.3f} / {absent['ssim']:.3f}"
            f" | {report['exemplar']['colour_distance']:.3f} / {absent['colour_distance']:.3f} |"
        )


if __name__ == "__main__":
    main()
