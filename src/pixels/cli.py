"""The `pixels` command line: `pixels edit SOURCE -e EXEMPLAR -m MAP ... -o OUT.png`.

Exit codes: 0 success, 2 bad usage or bad input (nothing is written), 1 failure while running.
Every input is checked before the model is loaded, so mistakes cost no loading time.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
import os
import sys
import traceback
import warnings
from collections.abc import Sequence

from . import __version__
from .errors import InputError, PixelsError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
_FLAGS = {"num_inference_steps": "--steps", "guidance_scale": "--guidance"}


class _ExemplarAction(argparse.Action):
    """-e starts a new exemplar; -m attaches a map to the exemplar given just before it."""

    def __call__(self, parser, namespace, value, option_string=None):
        exemplars = list(getattr(namespace, "exemplars", None) or [])
        if self.dest == "exemplar_image":
            exemplars.append([value, None])
        else:
            if not exemplars:
                parser.error(f"{option_string} {value}: a map must follow the -e EXEMPLAR it belongs to")
            if exemplars[-1][1] is not None:
                parser.error(
                    f"{option_string} {value}: exemplar {exemplars[-1][0]!r} already has the map"
                    f" {exemplars[-1][1]!r}; give one -m per -e"
                )
            exemplars[-1][1] = value
        namespace.exemplars = exemplars


def _unit_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixels",
        description="Exemplar-based, per-pixel image editing with off-the-shelf diffusion models (PIXELS).",
    )
    parser.add_argument("--version", action="version", version=f"pixels {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    edit = commands.add_parser(
        "edit",
        help="edit a photo with exemplars and strength maps",
        description=(
            "Edit SOURCE: each exemplar (-e) is grafted where its map (-m) is white and every pixel is"
            " released by its strength (white = full edit, black = kept bit-exact)."
        ),
        epilog="Example: pixels edit photo.png -e ref.png -m where.png --model PATH_OR_HUB_ID -o out.png",
    )
    edit.add_argument("source", metavar="SOURCE", help="the photo to edit")
    edit.add_argument("-e", "--exemplar", dest="exemplar_image", metavar="EXEMPLAR", action=_ExemplarAction,
                      help="a reference image; repeat for several (without -m its alpha channel is its region)")
    edit.add_argument("-m", "--exemplar-map", dest="exemplar_map", metavar="MAP", action=_ExemplarAction,
                      help="strength map of the preceding -e (white = graft and edit, black = keep)")
    edit.add_argument("--map", metavar="MAP", help="extra strength map for prompt-only regions, or the only map")
    edit.add_argument("--prompt", default="", metavar="TEXT", help="text guiding the edited pixels")
    edit.add_argument("--negative-prompt", default="", metavar="TEXT", help="what the edit should avoid")
    edit.add_argument("--model", required=True, metavar="ID|PATH",
                      help="hub id, local diffusers folder, or a single .safetensors checkpoint")
    edit.add_argument("--config", metavar="ID|PATH",
                      help="diffusers config (folder or hub id) for a single-file checkpoint")
    edit.add_argument("--steps", type=int, default=50, metavar="N", help="schedule length (default 50)")
    edit.add_argument("--strength", type=_unit_float, default=1.0, metavar="F",
                      help="img2img strength in (0, 1]: the last int(steps*F) steps run (default 1)")
    edit.add_argument("--denoising-start", type=_unit_float, default=None, metavar="F",
                      help="start at this fraction of the schedule instead (SDXL refiner style)")
    edit.add_argument("--guidance", type=_unit_float, default=7.5, metavar="F",
                      help="classifier-free guidance scale; <= 1 turns guidance off (default 7.5)")
    edit.add_argument("--seed", type=_seed, default=None, metavar="N", help="random seed (default: random, recorded)")
    edit.add_argument("--scheduler", default=None, metavar="NAME",
                      help="default (the model's own), ddim, euler, euler-a or dpm++2m")
    edit.add_argument("--eta", type=_unit_float, default=0.0, metavar="F", help="DDIM eta in [0, 1] (default 0)")
    edit.add_argument("--mode", default="paper", choices=["paper"], help="release rule (default paper)")
    edit.add_argument("--invert-map", action="store_true",
                      help="maps use the reference convention: white = keep, black = full edit")
    edit.add_argument("--preserve", default="exact", choices=["exact", "none"],
                      help="exact: strength-0 pixels are copied from the source (default)")
    edit.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps", help="default auto")
    edit.add_argument("--dtype", default="auto", metavar="auto|fp32|fp16|bf16",
                      help="default auto: fp16 on GPUs, fp32 on the CPU")
    edit.add_argument("--allow-unsafe-pickle", action="store_true",
                      help="allow .ckpt/.bin pickle weights (they can run code: only for sources you trust)")
    edit.add_argument("--offline", action="store_true",
                      help="never contact the hub; use only local files and the cache (as HF_HUB_OFFLINE=1)")
    edit.add_argument("-o", "--output", required=True, metavar="OUT", help="result file (.png, .jpg or .webp)")
    edit.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    edit.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    edit.set_defaults(run=_edit, exemplars=[])
    return parser


def _note(text: str) -> None:
    print(f"pixels: note: {text}", file=sys.stderr)


def _quiet_loading() -> None:
    """No loading progress bars when not on a terminal (logs, CI) or when asked to be quiet."""
    import diffusers
    import huggingface_hub
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def _edit(args: argparse.Namespace) -> int:
    from .editor import EditSettings, Editor, Exemplar, prepare_inputs
    from .loading import resolve_device, resolve_dtype
    from .output import check_output, save_image

    # Everything that can be checked without the model is checked first.
    settings = EditSettings(
        prompt=args.prompt, negative_prompt=args.negative_prompt, num_inference_steps=args.steps,
        strength=args.strength, denoising_start=args.denoising_start, guidance_scale=args.guidance,
        scheduler=args.scheduler, mode=args.mode, invert_map=args.invert_map, preserve=args.preserve, eta=args.eta,
    )
    try:
        settings.validate()
    except InputError as error:  # name the command-line flag, not the Python argument
        name, _, rest = str(error).partition(":")
        raise InputError(f"{_FLAGS.get(name, '--' + name.replace('_', '-'))}:{rest}") from None
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    exemplars = [Exemplar(image, strength_map) for image, strength_map in args.exemplars]
    inputs = prepare_inputs(args.source, exemplars, args.map, args.invert_map)
    given = [args.source, args.map, *(p for pair in args.exemplars for p in pair)]
    output = check_output(args.output, overwrite=args.overwrite, inputs=[p for p in given if p])
    if not args.quiet:
        for note in inputs.notes:
            _note(note)

    show = not args.quiet and sys.stderr.isatty()
    if not show:
        _quiet_loading()
    editor = Editor.from_pretrained(
        args.model, device=device, dtype=dtype, allow_unsafe_pickle=args.allow_unsafe_pickle,
        local_files_only=True if args.offline else None, config=args.config,
    )

    progress = None

    def on_step(done: int, total: int) -> None:
        nonlocal progress
        if not show:
            return
        if progress is None:
            from tqdm.auto import tqdm

            progress = tqdm(total=total, desc="denoising", unit="step", file=sys.stderr, leave=False)
        progress.update(done - progress.n)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the input notes were printed above
        try:
            result = editor.edit(
                args.source, exemplars=exemplars, strength_map=args.map, seed=args.seed, on_step=on_step,
                **asdict(settings),
            )
        finally:
            if progress is not None:
                progress.close()
    save_image(result.image, output, result.metadata, overwrite=args.overwrite)
    if not args.quiet:
        md = result.metadata
        print(
            f"wrote {output} ({md['size'][0]}x{md['size'][1]}, {md['family']} model, seed {md['seed']},"
            f" {md['steps_run']} steps, {md['model_calls']} model calls, {len(exemplars)} exemplar(s))"
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    # Library chatter (optional-backend notices, deprecations) is not for command-line users.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "offline", False):
        os.environ["HF_HUB_OFFLINE"] = "1"
    debug = bool(os.environ.get("PIXELS_DEBUG"))
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", DeprecationWarning)
            return args.run(args)
    except InputError as error:
        print(f"pixels: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("pixels: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the command line reports, the library raises
        if debug:
            traceback.print_exc()
        kind = "" if isinstance(error, PixelsError) else f"{type(error).__name__}: "
        print(f"pixels: error: {kind}{error}", file=sys.stderr)
        print("pixels: set PIXELS_DEBUG=1 to see the traceback", file=sys.stderr)
        return EXIT_FAILURE
