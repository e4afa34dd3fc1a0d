"""`pixels edit`: one path for every edit. The flags make a one-edit spec, `--spec` reads a list of edits;
both are checked completely (settings, every input, every output) before the model loads, run as a
session (each edit on the previous result), and written together: every output, or none."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from ..core.settings import SEED, options
from ..errors import InputError
from ..limits import MAX_PIXELS
from .common import (
    EXIT_OK,
    Parser,
    Progress,
    add_memory_flags,
    add_model_flags,
    as_flags,
    flag_of,
    memory_of,
    note,
    number,
    renamed,
    text_type,
)
from .extensions import add_extension_flags, check_extension_flags, load_extensions, maybe_float

_PLACED = re.compile(r"^(?P<path>.+)@(?P<box>[-+\d.,\s]*,[-+\d.,\s]*)$")  # EXEMPLAR@ then numbers and commas


def parse_placed(value: str) -> tuple[str, tuple[int, int, int, int] | None]:
    """-e EXEMPLAR[@X,Y,W,H] -> (path, box or None). A path that exists is all path (a file may have `@` in its
    name); otherwise a part after the last `@` made of numbers and commas is the box, and must be a valid one."""
    placed = _PLACED.match(value)
    if placed is None or os.path.exists(value):
        return value, None
    parts = [part.strip() for part in placed["box"].split(",")]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"{value!r}: a box is X,Y,W,H (4 integers), got {placed['box']!r}")
    box = []
    for what, part in zip(("x", "y", "width", "height"), parts):
        if not re.fullmatch(r"[-+]?\d+", part):
            raise argparse.ArgumentTypeError(f"{value!r}: box {what} must be an integer, got {part!r}")
        box.append(int(part))
    for what, size in (("width", box[2]), ("height", box[3])):
        if size <= 0:
            raise argparse.ArgumentTypeError(f"{value!r}: box {what} must be > 0, got {size}")
    return placed["path"], (box[0], box[1], box[2], box[3])


class _ExemplarAction(argparse.Action):
    """-e starts a new exemplar and --region a new region; -m, --condition and --cutout belong to the exemplar
    given just before them, --prompt-here, --negative-here and --lora-here to the exemplar or region given just
    before."""

    def __call__(self, parser, namespace, value, option_string=None):
        exemplars = list(getattr(namespace, "exemplars", None) or [])
        regions = list(getattr(namespace, "regions", None) or [])
        if self.dest == "exemplar_image":
            try:
                path, box = parse_placed(value)  # ref.png@x,y,w,h
            except argparse.ArgumentTypeError as error:
                raise argparse.ArgumentError(self, str(error)) from None
            exemplars.append([path, None, box, 0.0, None, None, None, {}])
            namespace.exemplars, namespace.last_part = exemplars, "exemplar"
            return
        if self.dest == "region_map":
            regions.append([value, None, None, {}])
            namespace.regions, namespace.last_part = regions, "region"
            return
        if self.dest in ("part_prompt", "part_negative", "part_lora"):
            what = {"part_prompt": "prompt", "part_negative": "negative prompt", "part_lora": "LoRA scale"}[self.dest]
            last = getattr(namespace, "last_part", None)
            if last is None:
                parser.error(f"{option_string} {value!r}: a {what} must follow the -e EXEMPLAR or --region MAP it"
                             " belongs to (--prompt and --lora are the edit's)")
            part = exemplars[-1] if last == "exemplar" else regions[-1]
            if self.dest == "part_lora":
                from ..inputs.read import lora_scale_text

                name, scale = lora_scale_text(value)
                if name in part[-1]:
                    parser.error(f"{option_string} {value!r}: {last} {part[0]!r} already scales LoRA {name!r}")
                part[-1][name] = scale
                namespace.exemplars, namespace.regions = exemplars, regions
                return
            slot = (5 if self.dest == "part_prompt" else 6) if last == "exemplar" else \
                (1 if self.dest == "part_prompt" else 2)
            if part[slot] is not None:
                parser.error(f"{option_string} {value!r}: {last} {part[0]!r} already has the {what} {part[slot]!r};"
                             f" give one per {'-e' if last == 'exemplar' else '--region'}")
            part[slot] = value
            namespace.exemplars, namespace.regions = exemplars, regions
            return
        slot, what = {"exemplar_map": (1, "map"), "exemplar_condition": (3, "condition"),
                      "exemplar_cutout": (4, "cut-out")}[self.dest]
        if not exemplars or getattr(namespace, "last_part", None) != "exemplar":
            parser.error(f"{option_string} {value}: a {what} must follow the -e EXEMPLAR it belongs to")
        if exemplars[-1][slot] not in (None, 0.0):
            parser.error(f"{option_string} {value}: exemplar {exemplars[-1][0]!r} already has the {what}"
                         f" {exemplars[-1][slot]!r}; give one per -e")
        exemplars[-1][slot] = number(value) if slot == 3 else value
        namespace.exemplars = exemplars


def map_argument(value: str | None, flag: str):
    """A map given on the command line: a file, or a selection written as a YAML mapping of `pixels.select.Select`
    fields (`{text: the sofa, grow: 4}`, `{points: [[120, 80]], feather: 8}`), found on the photo when the edit is
    read. A file whose name starts with "{" stays a file."""
    if value is None or not value.lstrip().startswith("{") or Path(value).exists():
        return value
    return _selection(value, flag)


def cutout_argument(value: str | None):
    """--cutout: a selection found on the exemplar image, so that only that part is grafted: a phrase
    (`the lamp`) or a mapping of selection fields (`{text: the lamp, grow: 2}`, `{boxes: [[0, 0, 64, 80]]}`)."""
    return None if value is None else _selection(value, "--cutout")


def _selection(value: str, flag: str):
    """`Select.from_text(value)`, its errors naming the flag (and the field: `--cutout grow`)."""
    from ..select import Select

    try:
        return Select.from_text(value)
    except InputError as error:
        raise InputError(error.message, param=f"{flag} {error.param}" if error.param else flag) from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `EditSettings` field, from its declaration. Every value is None unless given, so that
    with --spec a flag fills in only what an edit leaves out."""
    group = parser.add_argument_group("edit settings (the same names, with underscores, are spec-file keys)")
    for f, option in options():
        kwargs = {"dest": f.name, "default": None, "help": option.help}
        if option.kind == "boolean":
            group.add_argument(flag_of(f.name, option), action="store_true", **kwargs)
            continue
        parse = text_type(option.parse) if option.parse else \
            {"integer": _integer, "number": number}.get(option.kind.split(" or ")[0], str)
        group.add_argument(flag_of(f.name, option), type=parse, metavar=None if option.choices else option.metavar,
                           choices=option.choices, **kwargs)
    group.add_argument(flag_of("seed", SEED), dest="seed", type=text_type(SEED.parse), default=None,
                       metavar=SEED.metavar, help=SEED.help)


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    edit: Parser = commands.add_parser(
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
                      help="apply the edits listed in a YAML/JSON spec in order; setting flags given with it fill in"
                           " what an edit does not set")
    edit.add_argument("--save-session", metavar="DIR",
                      help="also save the edit(s) as a session folder that EditSession.load replays")
    edit.add_argument("-e", "--exemplar", dest="exemplar_image", metavar="EXEMPLAR[@X,Y,W,H]",
                      action=_ExemplarAction,
                      help="a reference image, optionally placed into the box X,Y,W,H of the source; repeat for"
                           " several (without -m: its alpha channel, or else its box, is its region)")
    edit.add_argument("--fit", default="cover", choices=["cover", "contain", "stretch"],
                      help="how exemplars fill their box: cover (crop to fill, default), contain, stretch")
    edit.add_argument("-m", "--exemplar-map", dest="exemplar_map", metavar="MAP", action=_ExemplarAction,
                      help="strength map of the preceding -e (white = graft and edit, black = keep), or a selection"
                           " found on the photo, as pixels select's fields: '{text: the lamp}', '{points: [[X, Y]]}'")
    edit.add_argument("--condition", dest="exemplar_condition", metavar="W", action=_ExemplarAction,
                      help="the preceding -e also prompts its own region as an IP-Adapter image of weight W"
                           " (SD and SDXL, with --ip-adapter)")
    edit.add_argument("--cutout", dest="exemplar_cutout", metavar="SELECTION", action=_ExemplarAction,
                      help="graft only the part of the preceding -e that this selection finds on it, such as"
                           " '{text: the lamp}' or '{points: [[X, Y]]}' (in the exemplar's pixels)")
    edit.add_argument("--map", metavar="MAP", help="extra strength map for prompt-only regions, or the only map; a"
                                                   " file, or a selection such as '{text: the sofa, grow: 4}'")
    edit.add_argument("--region", dest="region_map", metavar="MAP", action=_ExemplarAction,
                      help="a region with text or LoRA scales of its own (give it --prompt-here, --negative-here"
                           " or --lora-here): a map file or a selection; it is edited as an exemplar's map is. Text:"
                           " SD 1.x/2.x, SDXL, SD3, Flux; LoRA: SD 1.x/2.x, SDXL")
    edit.add_argument("--prompt-here", dest="part_prompt", metavar="TEXT", action=_ExemplarAction,
                      help="the prompt of the preceding -e or --region, attended only inside its map (the edit's"
                           " --prompt applies elsewhere)")
    edit.add_argument("--negative-here", dest="part_negative", metavar="TEXT", action=_ExemplarAction,
                      help="the negative prompt of the preceding -e or --region (default: the edit's)")
    edit.add_argument("--lora-here", dest="part_lora", metavar="NAME[:SCALE]", action=_ExemplarAction,
                      help="a LoRA loaded with --lora (its file's stem, or its source) at SCALE (default 1) only"
                           " inside the preceding -e or --region; repeat for several. --lora PATH:0 loads one for"
                           " regions only")
    edit.add_argument("--prompt-image", dest="prompt_images", action="append", default=[], metavar="PATH[:WEIGHT]",
                      help="an image mixed into the prompt with a weight (default 1); repeat for several"
                           " (models conditioned on image embeddings: Kandinsky 2.2)")
    add_setting_flags(edit)
    model = edit.add_argument_group("model")
    add_model_flags(model)
    model.add_argument("--config", metavar="ID|PATH",
                       help="diffusers config (folder or hub id) for a single-file checkpoint")
    model.add_argument("--refiner", metavar="ID|PATH",
                       help="a second model for the end of the schedule (SDXL refiner); one release schedule spans"
                            " both")
    extensions = edit.add_argument_group("LoRA, IP-Adapter and ControlNet (SD 1.x/2.x and SDXL)")
    add_extension_flags(extensions, controlnet_help="a ControlNet for --control")
    extensions.add_argument("--control", metavar="KIND[:IMAGE][:SCALE]",
                            help="ControlNet guidance: canny (edges of the source) or image:PATH (a control image),"
                                 " with a scale (default 1), e.g. canny:0.8 or image:depth.png:0.6")
    extensions.add_argument("--control-start", type=number, metavar="F",
                            help="share of the schedule before the control acts (default 0)")
    extensions.add_argument("--control-end", type=number, metavar="F",
                            help="share of the schedule after which it stops (default 1)")
    add_memory_flags(edit.add_argument_group("memory and speed"))
    limits = edit.add_argument_group("limits")
    limits.add_argument("--max-megapixels", type=number, default=MAX_PIXELS / 1e6, metavar="N",
                        help="largest image, box or diffused crop in millions of pixels"
                             f" (default {MAX_PIXELS / 1e6:.1f})")
    limits.add_argument("--no-memory-check", action="store_true",
                        help="run even when the edit's estimated peak memory exceeds what the device has free")
    out = edit.add_argument_group("output")
    out.add_argument("-o", "--output", required=True, metavar="OUT", help="result file (.png, .jpg or .webp)")
    out.add_argument("--overwrite", action="store_true", help="replace OUT (and the other outputs) if they exist")
    out.add_argument("--contact-sheet", metavar="PATH",
                     help="also write source | map overlay | exemplars | result with the settings, for sharing")
    out.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    edit.set_defaults(run=run, exemplars=[], regions=[], last_part=None)


def _given_settings(args: argparse.Namespace) -> dict:
    """The edit settings given as flags (not given: the spec's or pixels' default applies)."""
    names = [f.name for f, _ in options()] + ["seed"]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def parse_control(args: argparse.Namespace):
    """--control KIND[:IMAGE][:SCALE] with --control-start/--control-end, as a `Control` (None without it)."""
    from ..core.control import KINDS, Control

    if args.control is None:
        if args.control_start is not None or args.control_end is not None:
            raise InputError("--control-start and --control-end shape a --control; give --control too")
        return None
    kind, _, rest = args.control.partition(":")
    image, scale = None, 1.0
    if kind == "image":
        image, _, last = rest.rpartition(":")
        if image and maybe_float(last) is not None:
            scale = maybe_float(last)
        else:  # no scale given: all of it is the path
            image = rest
        if not image:
            raise InputError(f"{args.control!r}: kind 'image' takes a path, as image:depth.png[:SCALE]",
                             param="control")
    elif kind in KINDS and rest:
        scale = maybe_float(rest)
        if scale is None:
            raise InputError(f"{args.control!r}: expected {kind}[:SCALE], e.g. {kind}:0.8", param="control")
    start = 0.0 if args.control_start is None else args.control_start
    end = 1.0 if args.control_end is None else args.control_end
    return Control(kind, image, scale, start, end)


def plan(args: argparse.Namespace):
    """The edits to run, as a spec: the spec file with the flags filling in, or a one-edit spec of the flags;
    the model's recommended settings fill in what neither gives."""
    from ..core.settings import Exemplar, Region
    from ..inputs.prompt_images import parse_prompt_image
    from ..inputs.spec import EditSpec, Spec, load_spec
    from ..models.catalog import recommended

    defaults = recommended(args.model)  # before loading: the catalogue's (the family is not known yet)
    given = _given_settings(args)
    control = parse_control(args)
    if control is not None:
        given["control"] = control
    flags = {**defaults, **given}
    if args.spec:
        spec = load_spec(args.spec)
        if args.exemplars or args.map or args.prompt_images or args.regions:
            raise InputError(
                "--spec: the spec lists the exemplars and maps; do not also give -e, -m, --map or --prompt-image"
            )
        if args.source and spec.source and args.source != spec.source:
            note(f"SOURCE {args.source} replaces the spec's source {spec.source}")
        source = args.source or spec.source
        if source is None:
            raise InputError("--spec: no source: give SOURCE or a 'source' key in the spec")
        used = _note_recommended(args, defaults, [e.settings for e in spec.edits], given)
        args.recommended = [{k: v for k, v in used.items() if k not in e.settings} for e in spec.edits]
        for k, edit in enumerate(spec.edits):  # flags fill in what an edit leaves to the defaults
            overridden = sorted(f for f in given if f in edit.settings)
            if overridden and not args.quiet:
                note(f"edits[{k}] sets {', '.join(overridden)} itself; the command-line value is not used there")
            edit.settings = {**flags, **edit.settings}
        spec.source = source
        return spec
    if args.source is None:
        raise InputError("SOURCE: give the photo to edit, or --spec with a spec file")
    exemplars = [Exemplar(image, map_argument(strength_map, "-m"), box, args.fit, condition,
                          cutout=cutout_argument(cutout), prompt=prompt, negative_prompt=negative, loras=loras or None)
                 for image, strength_map, box, condition, cutout, prompt, negative, loras in args.exemplars]
    prompt_images = [parse_prompt_image(text) for text in args.prompt_images]
    settings = {**flags, "prompt_images": prompt_images} if prompt_images else dict(flags)
    for where, prompt, negative, loras in args.regions:
        if prompt is None and negative is None and not loras:
            raise InputError(f"{where}: give it --prompt-here TEXT (or --negative-here TEXT, --lora-here NAME:SCALE)"
                             " after it", param="--region")
    if args.regions:
        settings["regions"] = [Region(map_argument(where, "--region"), prompt, negative, loras or None)
                               for where, prompt, negative, loras in args.regions]
    edit = EditSpec(exemplars, map_argument(args.map, "--map"), settings)
    args.recommended = [_note_recommended(args, defaults, [{}], given)]
    return Spec(Path.cwd(), args.source, [edit])


def _note_recommended(args: argparse.Namespace, defaults: dict, edits: list[dict], given: dict) -> dict:
    """Say which of the model's recommended settings an edit runs with (those nothing else set); return them."""
    used = {k: v for k, v in defaults.items() if k not in given and any(k not in e for e in edits)}
    if used and not args.quiet:
        note(f"{args.model}: using its recommended settings {as_flags(used)} (`pixels models`; flags override them)")
    return used


def recommended_cause(error: InputError, args: argparse.Namespace, k: int) -> InputError:
    """The error of edit `k`, saying so when the setting it is about is one the model recommended and the user
    never set."""
    used = args.recommended[k]
    if error.param not in used:
        return error
    return InputError(f"{error.message} ({as_flags({error.param: used[error.param]})} is {args.model}'s recommended"
                      " setting, not one you gave: set it yourself to change it)", param=error.param)


def plan_jobs(spec, limits, args: argparse.Namespace, say) -> list:
    """Every edit of the plan checked and read without the model, as the jobs the editor runs: edits after
    the first are planned on the spec's source and placed on the previous result when they run."""
    from ..inputs.job import plan_edit

    jobs = []
    for k, edit in enumerate(spec.edits):
        source = spec.source if k == 0 else jobs[0].source  # read once
        try:
            jobs.append(plan_edit(source, edit.exemplars, edit.strength_map, limits=limits, **edit.settings))
        except InputError as error:
            error = recommended_cause(error, args, k)
            raise (spec_error(error, k, args.spec) if args.spec else error) from None
        for text in jobs[-1].notes:
            say(text, k)
    return jobs


def check_extensions(args: argparse.Namespace, spec) -> None:
    """Before loading: every extension an edit uses is given, and every one given is used by some edit."""
    controlled = any(e.settings.get("control") is not None for e in spec.edits)
    conditioned = any(x.condition for e in spec.edits for x in e.exemplars)
    prompted = any(e.settings.get("prompt_images") for e in spec.edits)
    if controlled and not args.controlnet:
        raise InputError("give --controlnet, the ControlNet that follows the control image", param="control")
    if args.controlnet and not controlled:
        raise InputError("no edit has a --control (or a spec 'control'); the ControlNet would not be used",
                         param="controlnet")
    if conditioned and not args.ip_adapter:
        raise InputError("an exemplar with a condition weight needs --ip-adapter", param="exemplars")
    if args.ip_adapter and not (conditioned or prompted):
        raise InputError("no exemplar has a --condition and there is no --prompt-image; the IP-Adapter would not"
                         " be used", param="ip_adapter")
    if args.refiner and (controlled or conditioned):
        raise InputError("ControlNet guidance and exemplar conditions act on the base model only; drop --refiner"
                         " to use them", param="refiner")
    check_extension_flags(args)


def spec_error(error: InputError, k: int, spec_file: str) -> InputError:
    """An error about edits[k] of a spec, naming the spec's key (`steps`) instead of the Python parameter."""
    from ..inputs.spec import KEY_OF_ARGUMENT

    if error.param is None:
        return InputError(f"{spec_file}: edits[{k}]: {error.message}")
    return InputError(error.message, param=f"{spec_file}: edits[{k}].{renamed(error.param, KEY_OF_ARGUMENT)}")


def run(args: argparse.Namespace) -> int:
    from ..editor import Editor
    from ..limits import Limits, megapixels
    from ..models.loading import resolve_device, resolve_dtype
    from ..outputs.transaction import Transaction
    from ..outputs.writers import check_output, image_writer
    from ..session import EditSession, check_folder

    # 1. Everything that can be checked without the model is checked first: settings, inputs, outputs
    spec = plan(args)
    limits = Limits(max_pixels=megapixels(args.max_megapixels), check_memory=not args.no_memory_check)
    from_spec = bool(args.spec)

    def say(text: str, k: int | None = None) -> None:  # each note as soon as it is known
        if not args.quiet:
            note(f"edits[{k}]: {text}" if from_spec and k is not None else text)

    jobs = plan_jobs(spec, limits, args, say)
    device = resolve_device(args.device)
    resolve_dtype(args.dtype, device)
    memory = memory_of(args, device)
    if any(e.settings.get("switch_at") is not None for e in spec.edits) and not args.refiner:
        raise InputError("give --refiner, the model to switch to", param="switch_at")
    check_extensions(args, spec)
    inputs = [*([args.spec] if from_spec else []), *spec.paths()]
    inputs += [p for e in spec.edits for p, _ in e.settings.get("prompt_images", [])]
    output = check_output(args.output, overwrite=args.overwrite, inputs=inputs)
    sheet_path = None
    if args.contact_sheet:
        sheet_path = check_output(args.contact_sheet, overwrite=args.overwrite, inputs=inputs, name="--contact-sheet")
        if sheet_path.resolve() == output.resolve():
            raise InputError("must differ from the output path", param="--contact-sheet")
    if args.save_session:
        check_folder(args.save_session, overwrite=args.overwrite, inputs=inputs, outputs=[output, sheet_path])

    # 2. Load the model, run the edits one after another (each on the previous result)
    progress = Progress(enabled=not args.quiet and sys.stderr.isatty())
    editor = Editor.from_pretrained(
        args.model, device=device, dtype=args.dtype, refiner=args.refiner, memory=memory,
        allow_unsafe_pickle=args.allow_unsafe_pickle, local_files_only=True if args.offline else None,
        config=args.config, limits=limits, on_note=say,
    )
    load_extensions(args, editor)
    session = EditSession(editor, jobs[0].source)
    for k, (edit, job) in enumerate(zip(spec.edits, jobs)):
        before = session.current
        try:
            with progress:
                result = session.apply(job, on_step=progress.update, on_note=lambda text, k=k: say(text, k))
        except InputError as error:  # what only the model can tell (its schedule, its conditioning)
            error = recommended_cause(error, args, k)
            raise (spec_error(error, k, args.spec) if from_spec else error) from None
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
            from ..outputs.sheet import edit_sheet

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
