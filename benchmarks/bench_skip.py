"""skip: step skipping for maps that never release a pixel early.

A map whose largest strength is s (default 0.3) pins every pixel to the noised source for the
first (1 - s) * K of K steps; those steps need no model call. The same prompt-only edit (a ramp
map from 0 to s, no exemplar, strength 1.0, K steps) runs with `skip_steps="auto"` (or the mode
given by --skip-mode) and with `skip_steps="never"`. Reported: model calls of each side (expected
with skipping: about ceil(s * K) + 1 instead of K) and the wall time ratio.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import components
import harness
from harness import Bench, Check

NAME = "skip"
DESCRIPTION = "skip_steps on vs off for a map whose largest strength is s"
PARAMETER = "skip_steps"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--skip-k", type=int, default=None, help="K, the steps of the skip edit (default 2 x --steps)")
    parser.add_argument("--skip-peak", type=float, default=0.3, help="largest strength s of the skip map (default 0.3)")
    parser.add_argument("--skip-mode", default="auto", choices=("auto", "always"),
                        help="skip_steps value of the skipping side (default auto)")


def steps(args: argparse.Namespace) -> int:
    """K: --skip-k, or twice --steps."""
    return args.skip_k or 2 * args.steps


def expected_calls(peak: float, k: int) -> int:
    """Model calls with skipping: the released steps, ceil(s K), plus the step that starts the release."""
    return min(math.ceil(peak * k) + 1, k)


def run(bench: Bench) -> dict[str, Any]:
    a = bench.args
    if not 0.0 < a.skip_peak <= 1.0:
        raise SystemExit("--skip-peak: must lie in (0, 1]")
    k = steps(a)
    print(f"\n== {NAME}: {DESCRIPTION} (s = {a.skip_peak}, K = {k})", flush=True)
    if not harness.supports(bench, PARAMETER):
        return harness.unavailable(NAME, bench, PARAMETER)
    source, strength_map = components.photo("astronaut", a.size), components.ramp_map(a.size, a.skip_peak)
    on, off = f"skip_steps={a.skip_mode}", "skip_steps=never"
    common = dict(strength_map=strength_map, num_inference_steps=k, strength=1.0)
    sides = {off: harness.edit_side(bench, source, skip_steps="never", **common),
             on: harness.edit_side(bench, source, skip_steps=a.skip_mode, **common)}
    summary = harness.compare(bench, sides)
    calls_on, calls_off = summary[on]["unet_calls"], summary[off]["unet_calls"]
    expected = expected_calls(a.skip_peak, k)
    checks = [
        Check(NAME, "model calls, skipping on", calls_on, expected, "<=", note=f"ceil(s*K)+1 = {expected}"),
        Check(NAME, "model calls, skipping off", calls_off, k, "==", note=f"K = {k}"),
        Check(NAME, "wall time ratio on/off", harness.ratio(summary[on]["wall_s"], summary[off]["wall_s"]),
              harness.ratio(calls_on, calls_off), "info", note="target ~ the calls ratio (fixed VAE costs raise it)"),
    ]
    return harness.result(NAME, bench, summary, checks, skip_k=k, skip_peak=a.skip_peak, skip_mode=a.skip_mode,
                          map="horizontal ramp 0..s, flat s on the right quarter", exemplars=0, strength=1.0)


if __name__ == "__main__":
    harness.main_single(NAME, DESCRIPTION, add_arguments, run)
