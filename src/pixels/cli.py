"""The `pixels` command line: `pixels edit SOURCE -e EXEMPLAR -m MAP ... -o OUT.png`.

Exit codes: 0 success, 2 bad usage or bad input (nothing is written), 1 failure while running.
Every input is checked before the model is loaded, so mistakes cost no loading time.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence

from . import __version__
from .errors import InputError, PixelsError
from .files import write_error
from .limits import MAX_PIXELS

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM
# flag dest -> EditSettings field, for the settings of an edit given on the command line
SETTING_FLAGS = {
    "prompt": "prompt", "negative_prompt": "negative_prompt", "steps": "num_inference_steps",
    "strength": "strength", "denoising_start": "denoising_start", "guidance": "guidance_scale", "seed": "seed",
    "scheduler": "scheduler", "eta": "eta", "mode": "mode", "invert_map": "invert_map", "preserve": "preserve",
    "skip_steps": "skip_steps", "exemplar_encode": "exemplar_encode", "crop": "crop", "crop_margin": "crop_margin",
    "crop_resize": "crop_resize", "switch_at": "switch_at",
}
# Python parameter -> the flag that sets it, for error messages of the edit command
PARAMETER_FLAGS = {field: "--" + dest.replace("_", "-") for dest, field in SETTING_FLAGS.items()} | {
    "strength_map": "--map", "prompt_images": "--prompt-image", "refiner": "--refiner", "device": "--device",
    "dtype": "--dtype", "cpu_offload": "--cpu-offload", "max_megapixels": "--max-megapixels",
}
_BOX = re.compile(r"^(?P<path>.+)@(?P<x>-?\d+),(?P<y>-?\d+),(?P<w>\d+),(?P<h>\d+)$")


class _ExemplarAction(argparse.Action):
    """-e starts a new exemplar; -m attaches a map to the exemplar given just before it."""

    def __call__(self, parser, namespace, value, option_string=None):
        exemplars = list(getattr(namespace, "exemplars", None) or [])
        if self.dest == "exemplar_image":
            placed = _BOX.match(value)
            if placed and not os.path.exists(value):  # ref.png@x,y,w,h
                exemplars.append([placed["path"], None, tuple(int(placed[k]) for k in "xywh")])
            else:
                exemplars.append([value, None, None])
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


def _crop(text: str) -> str | tuple[int, int, int, int]:
    if text == "auto":
        return text
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"expected auto or X,Y,W,H integers, got {text!r}")
    return box


def _crop_resize(text: str) -> int | str:
    if text == "native":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected native or a number of pixels, got {text!r}") from None


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if not 0 <= value < 2**64:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {text!r}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, reading comma lists of numbers that start with a minus (`--crop -10,-10,100,100`) as values."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d*\.?\d+(,-?\d*\.?\d+)+$")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show library warnings and the traceback of unexpected failures")
    parser = _Parser(
        prog="pixels",
        description="Exemplar-based, per-pixel image editing with off-the-shelf diffusion models (PIXELS).",
    )
    parser.add_argument("--version", action="version", version=f"pixels {__version__}")
    parser.add_argument("--debug", action="store_true", help="show library warnings and tracebacks")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    edit = commands.add_parser(
        "edit", parents=[common],
        help="edit a photo with exemplars and strength maps",
        description=(
            "Edit SOURCE: each exemplar (-e) is grafted where its map (-m) is white and every pixel is"
            " released by its strength (white = full edit, black = kept bit-exact)."
        ),
        epilog="Example: pixels edit photo.png -e ref.png -m where.png --model PATH_OR_HUB_ID -o out.png",
    )
    edit.add_argument("source", metavar="SOURCE", nargs="?", help="the photo to edit (optional with --spec)")
    edit.add_argument("--spec", metavar="EDITS.yaml",
                      help="apply the edits listed in a YAML/JSON spec in order (their settings come from the spec)")
    edit.add_argument("--save-session", metavar="DIR",
                      help="also save the edit(s) as a session folder that EditSession.load replays")
    edit.add_argument("-e", "--exemplar", dest="exemplar_image", metavar="EXEMPLAR[@X,Y,W,H]",
                      action=_ExemplarAction,
                      help="a reference image, optionally placed into the box X,Y,W,H of the source; repeat for"
                           " several (without -m: its alpha channel, or else its box, is its region)")
    edit.add_argument("--fit", default="cover", choices=["cover", "contain", "stretch"],
                      help="how exemplars fill their box: cover (crop to fill, default), contain, stretch")
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
                      help="classifier-free guidance scale; <= 1 turns guidance off (default 7.5); Flux dev takes it"
                           " as an embedded scale, Flux schnell ignores it")
    edit.add_argument("--seed", type=_seed, default=None, metavar="N", help="random seed (default: random, recorded)")
    edit.add_argument("--scheduler", default=None, metavar="NAME",
                      help="default (the model's own), ddim, euler, euler-a or dpm++2m (flow models: default or euler)")
    edit.add_argument("--eta", type=_unit_float, default=0.0, metavar="F", help="DDIM eta in [0, 1] (default 0)")
    edit.add_argument("--mode", default="paper", choices=["paper", "blend"],
                      help="paper: the reference rule (default); blend: gray pixels also take in the exemplar")
    edit.add_argument("--invert-map", action="store_true",
                      help="maps use the reference convention: white = keep, black = full edit")
    edit.add_argument("--preserve", default="exact", choices=["exact", "none"],
                      help="exact: strength-0 pixels are copied from the source (default)")
    edit.add_argument("--prompt-image", dest="prompt_images", action="append", default=[], metavar="PATH[:WEIGHT]",
                      help="an image mixed into the prompt with a weight (default 1); repeat for several"
                           " (models conditioned on image embeddings: Kandinsky 2.2)")
    edit.add_argument("--refiner", metavar="ID|PATH",
                      help="a second model for the end of the schedule (SDXL refiner); one release schedule spans both")
    edit.add_argument("--switch-at", type=_unit_float, default=None, metavar="F",
                      help="with --refiner: fraction of the schedule the base model runs (default 0.8)")
    edit.add_argument("--skip-steps", default="auto", choices=["auto", "always", "never"],
                      help="skip model calls while every pixel is still pinned: auto (only where the result is"
                           " identical, default), always, never")
    edit.add_argument("--exemplar-encode", default="full", choices=["full", "region"],
                      help="full: encode each exemplar whole (the reference, default); region: only around its"
                           " edited area (faster with many exemplars, approximate)")
    edit.add_argument("--crop", type=_crop, default=None, metavar="auto|X,Y,W,H",
                      help="diffuse only a box around the edited area and paste it back (faster for small edits)")
    edit.add_argument("--crop-margin", type=int, default=32, metavar="PX",
                      help="context kept around the edited area with --crop auto (default 32)")
    edit.add_argument("--crop-resize", type=_crop_resize, default=None, metavar="N|native",
                      help="diffuse the crop with its longer side at N pixels (native: the model's training size)")
    edit.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps", help="default auto")
    edit.add_argument("--dtype", default="auto", metavar="auto|fp32|fp16|bf16",
                      help="default auto: fp16 on GPUs (bf16 for SD3 and Flux), fp32 on the CPU")
    memory = edit.add_argument_group("memory and speed")
    memory.add_argument("--attention-slicing", action="store_true", help="attention in slices (less memory)")
    memory.add_argument("--vae-tiling", action="store_true", help="encode and decode large images in tiles")
    memory.add_argument("--vae-slicing", action="store_true", help="encode and decode one image at a time")
    memory.add_argument("--cpu-offload", choices=["model", "sequential"], default=None,
                        help="keep models on the CPU until they run (GPU only): model, or sequential (least memory)")
    memory.add_argument("--channels-last", action="store_true", help="NHWC layout for the denoiser")
    memory.add_argument("--compile", action="store_true", help="torch.compile the denoiser (slow first call)")
    edit.add_argument("--allow-unsafe-pickle", action="store_true",
                      help="allow .ckpt/.bin pickle weights (they can run code: only for sources you trust)")
    edit.add_argument("--offline", action="store_true",
                      help="never contact the hub; use only local files and the cache (as HF_HUB_OFFLINE=1)")
    edit.add_argument("-o", "--output", required=True, metavar="OUT", help="result file (.png, .jpg or .webp)")
    edit.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    edit.add_argument("--contact-sheet", metavar="PATH",
                      help="also write source | map overlay | exemplars | result with the settings, for sharing")
    edit.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    limits = edit.add_argument_group("limits")
    limits.add_argument("--max-megapixels", type=float, default=MAX_PIXELS / 1e6, metavar="N",
                        help="largest image, box or diffused crop in millions of pixels"
                             f" (default {MAX_PIXELS / 1e6:.1f})")
    limits.add_argument("--no-memory-check", action="store_true",
                        help="run even when the edit's estimated peak memory exceeds what the device has free")
    # Settings flags are None unless given, so that with --spec they fill in only what the spec leaves out.
    edit.set_defaults(run=_edit, exemplars=[], **{dest: None for dest in SETTING_FLAGS})

    demo = commands.add_parser(
        "demo", parents=[common],
        help="run a complete edit on bundled photos with the bundled model (offline, CPU)",
        description="Put a patch of lunar surface into the sky of a rocket-launch photo with the bundled demo"
                    " model, write the inputs, the result and a contact sheet, and print the edit's metrics.",
    )
    demo.add_argument("-o", "--output", default="pixels-demo", metavar="DIR", help="folder (default pixels-demo)")
    demo.add_argument("--overwrite", action="store_true", help="replace the demo's files in DIR")
    demo.add_argument("--seed", type=_seed, default=0, metavar="N", help="random seed (default 0)")
    demo.add_argument("--steps", type=int, default=100, metavar="N", help="schedule length (default 100)")
    demo.add_argument("--strength", type=_unit_float, default=0.15, metavar="F",
                      help="img2img strength (default 0.15)")
    demo.add_argument("--device", default="cpu", metavar="auto|cpu|cuda|mps", help="default cpu")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no report")
    demo.set_defaults(run=_demo)

    evaluate = commands.add_parser(
        "evaluate", parents=[common],
        help="measure an edit: background fidelity, seam quality, exemplar fidelity",
        description="Weight-free measures of RESULT against its source and strength map (and exemplar).",
    )
    evaluate.add_argument("result", metavar="RESULT", help="the edited image")
    evaluate.add_argument("--source", required=True, help="the photo that was edited")
    evaluate.add_argument("--map", required=True, help="the combined strength map used (white = full edit)")
    evaluate.add_argument("--exemplar", help="the exemplar, placed as it was for the edit")
    evaluate.add_argument("--invert-map", action="store_true", help="the map is white = keep")
    evaluate.add_argument("--prompt", default="", metavar="TEXT", help="the edit's prompt, for CLIP-T")
    evaluate.add_argument("--clip", default="openai/clip-vit-base-patch32", metavar="ID|PATH",
                          help="CLIP model for CLIP-I/CLIP-T (local folder or cached hub id; 'none' to skip)")
    evaluate.add_argument("--dino", default="facebook/dino-vits16", metavar="ID|PATH",
                          help="DINO ViT for the DINO score (local folder or cached hub id; 'none' to skip)")
    evaluate.add_argument("--allow-unsafe-pickle", action="store_true",
                          help="allow .bin pickle weights for --clip/--dino (they can run code: only for sources you"
                               " trust)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of a table")
    evaluate.set_defaults(run=_evaluate)

    models = commands.add_parser(
        "models", parents=[common],
        help="list the short model names and whether each is in the local cache",
        description="Short names accepted by --model, the hub model behind each, and whether it is already in"
                    " the local Hugging Face cache (checked without network).",
    )
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    models.set_defaults(run=_models)

    from .map_cli import add_parser as add_map_parser

    add_map_parser(commands, common)
    return parser


def _note(text: str) -> None:
    print(f"pixels: note: {text}", file=sys.stderr)


class _Progress:
    """A denoising progress bar on a terminal; when disabled, the libraries' loading bars are silenced too."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None
        if not enabled:  # logs and CI: no bars at all
            import diffusers
            import huggingface_hub
            import transformers

            diffusers.utils.logging.disable_progress_bar()
            transformers.utils.logging.disable_progress_bar()
            huggingface_hub.utils.disable_progress_bars()

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="denoising", unit="step", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None  # the next edit gets a bar of its own


def _as_flag(error: InputError) -> str:
    """The error text naming the command-line flag instead of the Python argument it starts with
    (`num_inference_steps:` -> `--steps:`); arguments without a flag of their own keep their name."""
    name, sep, rest = str(error).partition(":")
    flag = PARAMETER_FLAGS.get(name.split("[")[0])
    return f"{flag}{name[len(name.split('[')[0]):]}:{rest}" if sep and flag else str(error)


def _memory_options(args: argparse.Namespace):
    from .memory import MemoryOptions

    return MemoryOptions(
        attention_slicing=args.attention_slicing, vae_tiling=args.vae_tiling, vae_slicing=args.vae_slicing,
        cpu_offload=args.cpu_offload, channels_last=args.channels_last, compile=args.compile,
    )




def _given_settings(args: argparse.Namespace) -> dict:
    """The edit settings given as flags (None = not given: the spec's or pixels' default applies)."""
    return {field: getattr(args, dest) for dest, field in SETTING_FLAGS.items() if getattr(args, dest) is not None}


def _plan(args: argparse.Namespace):
    """The edits to run, as a spec: the spec file with the flags as defaults, or a one-edit spec of the flags."""
    from pathlib import Path

    from .editor import Exemplar
    from .prompt_images import parse_prompt_image
    from .spec import EditSpec, Spec, load_spec

    flags = _given_settings(args)
    if args.spec:
        spec = load_spec(args.spec)
        if args.exemplars or args.map or args.prompt_images:
            raise InputError(
                "--spec: the spec lists the exemplars and maps; do not also give -e, -m, --map or --prompt-image"
            )
        if args.source and spec.source and args.source != spec.source:
            _note(f"SOURCE {args.source} replaces the spec's source {spec.source}")
        source = args.source or spec.source
        if source is None:
            raise InputError("--spec: no source: give SOURCE or a 'source' key in the spec")
        for k, edit in enumerate(spec.edits):  # flags fill in what an edit leaves to the defaults
            overridden = sorted(f for f in flags if f in edit.settings)
            if overridden and not args.quiet:
                _note(f"edits[{k}] sets {', '.join(overridden)} itself; the command-line value is not used there")
            edit.settings = {**flags, **edit.settings}
        return Spec(spec.path, source, spec.edits), [args.spec]
    if args.source is None:
        raise InputError("SOURCE: give the photo to edit, or --spec with a spec file")
    exemplars = [Exemplar(image, strength_map, box, args.fit) for image, strength_map, box in args.exemplars]
    prompt_images = [parse_prompt_image(text) for text in args.prompt_images]
    edit = EditSpec(exemplars, args.map, {**flags, "prompt_images": prompt_images} if prompt_images else flags)
    return Spec(Path.cwd(), args.source, [edit]), []


def _check_edit(edit, source, max_pixels: int):
    """Check one edit of the plan without the model: its settings, then every image and map it names."""
    from .editor import EditSettings, check_seed, prepare_inputs
    from .prompt_images import load_prompt_images

    EditSettings(**{key: v for key, v in edit.settings.items() if key not in ("seed", "prompt_images")}).validate()
    check_seed(edit.settings.get("seed"))
    load_prompt_images(edit.settings.get("prompt_images"), max_pixels)
    return prepare_inputs(source, edit.exemplars, edit.strength_map, bool(edit.settings.get("invert_map", False)),
                          max_pixels)


def _spec_key(error: InputError, k: int, spec_file: str) -> str:
    """An error about edits[k] of a spec, naming the spec's key (`steps`) instead of the Python argument."""
    from .spec import EDIT_KEYS

    name, _, rest = str(error).partition(":")
    key = next((key for key, (argument, _) in EDIT_KEYS.items() if argument == name), name)
    return f"{spec_file}: edits[{k}].{key}:{rest}"


def _edit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .editor import Editor
    from .files import Transaction
    from .limits import Limits, megapixels
    from .loading import resolve_device, resolve_dtype
    from .output import check_output, image_writer
    from .session import EditSession, check_folder

    # 1. Everything that can be checked without the model is checked first: settings, inputs, outputs.
    spec, extra_inputs = _plan(args)
    limits = Limits(max_pixels=megapixels(args.max_megapixels), check_memory=not args.no_memory_check)
    from_spec = bool(args.spec)
    checked = []
    for k, edit in enumerate(spec.edits):
        try:
            checked.append(_check_edit(edit, spec.source, limits.max_pixels))
        except InputError as error:
            if not from_spec:
                raise
            raise InputError(_spec_key(error, k, args.spec)) from None
        if not args.quiet:
            for note in checked[-1].notes:
                _note(f"edits[{k}]: {note}" if from_spec else note)
    device = resolve_device(args.device)
    resolve_dtype(args.dtype, device)
    memory = _memory_options(args)
    memory.validate(device)
    if any(e.settings.get("switch_at") is not None for e in spec.edits) and not args.refiner:
        raise InputError("--switch-at: give --refiner, the model to switch to")
    inputs = [*extra_inputs, *spec.paths()]
    inputs += [p for e in spec.edits for p, _ in e.settings.get("prompt_images", [])]
    output = check_output(args.output, overwrite=args.overwrite, inputs=inputs)
    sheet_path = None
    if args.contact_sheet:
        sheet_path = check_output(args.contact_sheet, overwrite=args.overwrite, inputs=inputs, name="--contact-sheet")
        if sheet_path.resolve() == output.resolve():
            raise InputError("--contact-sheet: must differ from the output path")
    if args.save_session:
        check_folder(args.save_session, overwrite=args.overwrite, inputs=inputs, outputs=[output, sheet_path])

    # 2. Load the model, run the edits one after another (each on the previous result)
    progress = _Progress(enabled=not args.quiet and sys.stderr.isatty())
    editor = Editor.from_pretrained(
        args.model, device=device, dtype=args.dtype, refiner=args.refiner, memory=memory,
        allow_unsafe_pickle=args.allow_unsafe_pickle, local_files_only=True if args.offline else None,
        config=args.config, limits=limits,
    )
    session = EditSession(editor, checked[0].source)
    for k, edit in enumerate(spec.edits):
        before = session.current
        with warnings.catch_warnings(), progress:
            warnings.simplefilter("ignore", UserWarning)  # the input notes were printed above
            result = session.apply(edit.exemplars, edit.strength_map, on_step=progress.update, **edit.settings)
        result.metadata["source"] = str(spec.source) if k == 0 else f"result of edits[{k - 1}]"
        if len(spec.edits) > 1 and not args.quiet:
            md = result.metadata
            print(f"edit {k + 1}/{len(spec.edits)}: seed {md['seed']}, {md['steps_run']} steps,"
                  f" {len(edit.exemplars)} exemplar(s)")

    # 3. Write every output together: all of them, or none
    metadata = {**result.metadata, "spec": str(args.spec)} if from_spec else result.metadata
    with Transaction() as transaction:
        transaction.file(output, image_writer(result.image, output, metadata), overwrite=args.overwrite)
        if sheet_path is not None:
            from .sheet import edit_sheet

            sheet = edit_sheet(before, result.strength_map, result.exemplars, result.image, result.metadata)
            transaction.file(sheet_path, image_writer(sheet, sheet_path), overwrite=args.overwrite)
        if args.save_session:
            session.stage(transaction, Path(args.save_session).expanduser(), overwrite=args.overwrite)
        transaction.commit()
    if not args.quiet:
        md = result.metadata
        print(
            f"wrote {output} ({md['size'][0]}x{md['size'][1]}, {md['family']} model, seed {md['seed']},"
            f" {md['steps_run']} steps, {md['model_calls']} model calls, {len(spec.edits[-1].exemplars)} exemplar(s))"
            + (f", diffused {md['diffused_size'][0]}x{md['diffused_size'][1]} at {tuple(md['crop_box'])}"
               if md["crop_box"] else "")
            + (f"; session {args.save_session}" if args.save_session else "")
        )
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoSettings, check, run
    from .editor import Editor
    from .loading import resolve_device

    settings = DemoSettings(num_inference_steps=args.steps, strength=args.strength, seed=args.seed)
    check(args.output, overwrite=args.overwrite, settings=settings)
    device = resolve_device(args.device)
    progress = _Progress(enabled=not args.quiet and sys.stderr.isatty())
    editor = Editor.from_pretrained("demo", device=device)
    with progress:
        done = run(args.output, overwrite=args.overwrite, settings=settings, editor=editor, on_step=progress.update)
    if not args.quiet:
        from .metrics import format_report

        md = done["metadata"]
        print(
            f"pixels demo: grafted a lunar-surface exemplar into the sky of a {md['size'][0]}x{md['size'][1]}"
            f" photo with a radial strength map, using the bundled {md['family']}-space model"
            f" ({md['steps_run']} of {md['num_inference_steps']} steps, seed {md['seed']})."
        )
        print(f"wrote {', '.join(done['files'])} to {done['folder']}/")
        print(format_report(done["report"]))
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    import json

    from .models import table

    rows = table()
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    columns = ["alias", "model", "family", "supported", "local", "note"]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    return EXIT_OK


def _model_metrics(args: argparse.Namespace, result, exemplar, strength) -> dict:
    """CLIP-I, CLIP-T and DINO when their weights are at hand; each missing one is reported as skipped."""
    from .errors import ModelNotFoundError
    from .model_metrics import clip_scores, dino_score

    region = strength >= 1.0 if exemplar is not None and (strength >= 1.0).any() else None
    scores: dict = {}
    wanted = []
    if args.clip.lower() != "none" and (exemplar is not None or args.prompt):
        wanted.append(("CLIP", lambda: clip_scores(result, exemplar, args.prompt or None, region, model=args.clip,
                                                   allow_unsafe_pickle=args.allow_unsafe_pickle)))
    if args.dino.lower() != "none" and exemplar is not None:
        wanted.append(("DINO", lambda: dino_score(result, exemplar, region, model=args.dino,
                                                  allow_unsafe_pickle=args.allow_unsafe_pickle)))
    for name, measure in wanted:
        try:
            scores |= measure()
        except ModelNotFoundError as error:
            _note(f"{name} skipped: {error}")
    return {"model_based": scores} if scores else {}


def _evaluate(args: argparse.Namespace) -> int:
    import json
    import math

    from .images import load_image, load_map
    from .metrics import evaluate, format_report

    result, _ = load_image(args.result, name="result")
    source, _ = load_image(args.source, name="--source")
    if source.size != result.size:
        raise InputError(f"--source: size {source.size} differs from the result's {result.size}")
    strength, notes = load_map(args.map, name="--map", size=result.size, invert=args.invert_map)
    exemplar = None
    if args.exemplar:
        exemplar, _ = load_image(args.exemplar, name="--exemplar")
        if exemplar.size != result.size:
            notes.append(f"--exemplar: resized from {exemplar.width}x{exemplar.height} to the result's size")
            exemplar = exemplar.resize(result.size)
    for note in notes:
        _note(note)
    report = evaluate(result, source, strength, exemplar)
    report |= _model_metrics(args, result, exemplar, strength)
    if args.json:
        clean = {g: {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in values.items()}
                 for g, values in report.items()}
        print(json.dumps(clean, indent=2))
    else:
        print(format_report(report))
    return EXIT_OK


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` and `with` block cleans up."""


class _Signals:
    """While a command runs, SIGTERM unwinds like Ctrl-C does (temporary files removed, no partial output)."""

    def __enter__(self) -> _Signals:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._terminate)
        return self

    @staticmethod
    def _terminate(signum, frame) -> None:
        raise _Terminated()

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _quiet_libraries(debug: bool) -> None:
    """Library chatter (optional-backend notices, deprecations, hub retries) is not for command-line users."""
    if debug:
        return
    for name in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY", "HF_HUB_VERBOSITY"):
        os.environ.setdefault(name, "error")
    logging.getLogger().setLevel(logging.ERROR)  # loggers without handlers print WARNING and up otherwise
    for name in ("huggingface_hub", "diffusers", "transformers"):  # those already set up by an import
        logging.getLogger(name).setLevel(logging.ERROR)


def _report(error: BaseException, debug: bool) -> int:
    """One line on stderr for a failed command, and its exit code (see `errors`)."""
    if isinstance(error, PixelsError):
        print(f"pixels: error: {error}", file=sys.stderr)
        if error.exit_code == EXIT_FAILURE and not debug:
            print("pixels: rerun with --debug to see the traceback", file=sys.stderr)
        return error.exit_code
    if isinstance(error, MemoryError):
        print("pixels: error: out of memory; try --crop auto, a smaller source or --vae-tiling", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(error, OSError) and (resource := write_error(error, error.filename or "?")) is not None:
        print(f"pixels: error: {resource}", file=sys.stderr)
        return EXIT_USAGE
    if debug:
        traceback.print_exception(error)
    print(f"pixels: error: internal error: {type(error).__name__}: {error}", file=sys.stderr)
    if not debug:
        print("pixels: rerun with --debug to see the traceback", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    debug = bool(args.debug or os.environ.get("PIXELS_DEBUG"))
    _quiet_libraries(debug)
    for stream in (sys.stdout, sys.stderr):  # file names with undecodable bytes print as escapes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if getattr(args, "offline", False):
        os.environ["HF_HUB_OFFLINE"] = "1"
    with _Signals():
        try:
            with warnings.catch_warnings():
                if not debug:
                    warnings.simplefilter("ignore")  # what a user must know is printed as a note
                return args.run(args)
        except InputError as error:
            print(f"pixels: error: {_as_flag(error) if args.command in ('edit', 'demo') else error}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("pixels: interrupted; no output was left half-written", file=sys.stderr)
            return EXIT_INTERRUPTED
        except _Terminated:
            print("pixels: terminated; no output was left half-written", file=sys.stderr)
            return EXIT_TERMINATED
        except Exception as error:  # noqa: BLE001 - the command line reports, the library raises
            return _report(error, debug)
