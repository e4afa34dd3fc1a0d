"""`pixels app`: the painting studio in the browser, on one loaded model.

    pixels app [--model demo|ID|PATH] [--host 127.0.0.1] [--port 7860] [--auth USER:PASS] [--max-megapixels N]

This module imports nothing heavy: the main command line adds the subcommand with `add_parser`, and
Gradio is imported only when the studio starts (it is an optional extra: pip install "pixels[app]").
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from ..app.server import (
    DEFAULT_HOST,
    DEFAULT_MAX_STEPS,
    DEFAULT_MEGAPIXELS,
    DEFAULT_PORT,
    DEFAULT_QUEUE,
    DEFAULT_UPLOAD_MB,
    launch,
)
from ..errors import InputError
from .common import add_memory_flags, add_model_flags, in_flags, memory_of
from .extensions import add_extension_flags, check_extension_flags, load_extensions

__all__ = ["add_parser", "launch", "run"]


def add_parser(commands, common) -> None:
    """Add `app` to the `pixels` subcommands; `common` carries --debug."""
    parser = commands.add_parser(
        "app", parents=[common], help="paint maps and edit photos in the browser (a local web app)",
        description="Start the pixels studio: upload a photo, paint a strength map, add exemplars, run edits,"
                    " compare, undo, save sessions. It serves on 127.0.0.1 (this machine only) unless --host says"
                    " otherwise.",
        epilog="Example: pixels app --model demo   (then open http://127.0.0.1:7860)",
    )
    add_model_flags(parser, default="demo",
                    model_help="the model every edit uses, loaded once (default: the bundled demo model)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to serve on (default {DEFAULT_HOST}: this machine only; 0.0.0.0: every"
                             " network, use with --auth)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    parser.add_argument("--auth", metavar="USER:PASS", help="ask for this user name and password")
    parser.add_argument("--max-megapixels", type=float, default=DEFAULT_MEGAPIXELS, metavar="N",
                        help=f"largest photo, exemplar or map in millions of pixels (default {DEFAULT_MEGAPIXELS:g})")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_UPLOAD_MB, metavar="N",
                        help=f"largest uploaded file in MB (default {DEFAULT_UPLOAD_MB:g})")
    parser.add_argument("--queue-size", type=int, default=DEFAULT_QUEUE, metavar="N",
                        help="edits that may wait while one runs; more are told to try again"
                             f" (default {DEFAULT_QUEUE})")
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS, metavar="N",
                        help="the longest schedule an edit may ask for, so that no one holds the shared model for"
                             f" hours (default {DEFAULT_MAX_STEPS})")
    parser.add_argument("--refiner", metavar="ID|PATH",
                        help="a second model for the end of every schedule (SDXL refiner); the page's switch_at"
                             " sets the hand-over")
    add_memory_flags(parser.add_argument_group("memory and speed"))
    extensions = parser.add_argument_group(
        "LoRA, IP-Adapter and ControlNet (SD 1.x/2.x and SDXL), loaded once for every edit")
    add_extension_flags(extensions, controlnet_help="a ControlNet: the page offers its control (canny or an image)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (the main command line reports errors and the exit code)."""
    if importlib.util.find_spec("gradio") is None:
        raise InputError('app: the studio needs Gradio; install it with: pip install "pixels[app]"'
                         ' (from a clone: pip install -e ".[app]")')
    from ..models.loading import resolve_device

    check_extension_flags(args)
    memory = memory_of(args, resolve_device(args.device))
    launch(args.model, args.host, args.port, args.auth, args.max_megapixels, device=args.device, dtype=args.dtype,
           allow_unsafe_pickle=args.allow_unsafe_pickle,
           queue_size=args.queue_size, max_upload_mb=args.max_upload_mb, offline=args.offline,
           quiet=not getattr(args, "debug", False), setup=lambda editor: load_extensions(args, editor),
           memory=memory, refiner=args.refiner, max_steps=args.max_steps,
           warn=lambda text: print(f"pixels: warning: {in_flags(text)}", file=sys.stderr))
    return 0

