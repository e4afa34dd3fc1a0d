"""`pixels demo`: a complete edit on the bundled photos with the bundled model, offline, in seconds."""

from __future__ import annotations

import argparse
import sys

from ..core.settings import parse_seed
from ..demo import DemoSettings
from .common import EXIT_OK, Progress, number, text_type


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    demo = commands.add_parser(
        "demo", parents=[common],
        help="run a complete edit on bundled photos with the bundled model (offline, CPU)",
        description="Put a patch of lunar surface into the sky of a rocket-launch photo with the bundled demo"
                    " model, write the inputs, the result and a contact sheet, and print the edit's metrics.",
    )
    demo.add_argument("-o", "--output", default="pixels-demo", metavar="DIR",
                      help="folder, made if missing (default pixels-demo)")
    demo.add_argument("--overwrite", action="store_true", help="replace the demo's files in DIR")
    demo.add_argument("--seed", type=text_type(parse_seed), default=0, metavar="N", help="random seed (default 0)")
    demo.add_argument("--steps", type=int, default=DemoSettings.num_inference_steps, metavar="N",
                      help=f"schedule length (default {DemoSettings.num_inference_steps})")
    demo.add_argument("--strength", type=number, default=DemoSettings.strength, metavar="F",
                      help=f"img2img strength (default {DemoSettings.strength:g})")
    demo.add_argument("--device", default="cpu", metavar="auto|cpu|cuda|mps", help="default cpu")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no report")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..demo import check
    from ..demo import run as run_demo
    from ..editor import Editor
    from ..models.loading import resolve_device

    settings = DemoSettings(num_inference_steps=args.steps, strength=args.strength, seed=args.seed)
    check(args.output, overwrite=args.overwrite, settings=settings)
    device = resolve_device(args.device)
    progress = Progress(enabled=not args.quiet and sys.stderr.isatty())
    editor = Editor.from_pretrained("demo", device=device)
    with progress:
        done = run_demo(args.output, overwrite=args.overwrite, settings=settings, editor=editor,
                        on_step=progress.update)
    if not args.quiet:
        from ..eval.metrics import format_report

        md = done["metadata"]
        print(
            f"pixels demo: grafted a lunar-surface exemplar into the sky of a {md['size'][0]}x{md['size'][1]}"
            f" photo with a radial strength map, using the bundled {md['family']}-space model"
            f" ({md['steps_run']} of {md['num_inference_steps']} steps, seed {md['seed']})."
        )
        print(f"wrote {', '.join(done['files'])} to {done['folder']}/")
        print(format_report(done["report"]))
    return EXIT_OK
