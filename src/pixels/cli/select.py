"""`pixels select`: a strength map found on a photo by a model, from clicks, boxes, a phrase or depth.

    pixels select photo.jpg --point 320,210 --negative 300,400 --feather 12 -o where.png --preview check.png
    pixels select photo.jpg --box 40,60,200,180 -o where.png
    pixels select photo.jpg --text "the sofa" --pick all --grow 4 -o where.png
    pixels select photo.jpg --depth 0.3:0.8 --direction far -o background.png
"""

from __future__ import annotations

import argparse
import math

from ..errors import InputError, short
from .common import EXIT_OK, add_model_flags, renamed

# Select's fields -> the flags that set them, so that the library's errors read in this command's terms
SELECT_FLAGS = {
    "points": "--point", "negative": "--negative", "boxes": "--box", "text": "--text", "pick": "--pick",
    "threshold": "--threshold", "depth": "--depth", "direction": "--direction", "gamma": "--gamma",
    "grow": "--grow", "shrink": "--shrink", "fill_holes": "--fill-holes", "largest": "--largest",
    "feather": "--feather", "invert": "--invert", "model": "--model", "mask_model": "--mask-model",
    "depth_model": "--depth-model", "photo": "PHOTO", "dtype": "--dtype", "device": "--device",
}


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "select", parents=[common], help="find where to edit with a model: clicks, boxes, a phrase or depth",
        description="Find a region of PHOTO with a selection model and write it as a strength map (white = edit,"
                    " black = keep) at the photo's size. Clicks and boxes go to a click model (SAM 2.1 by default),"
                    " a phrase to a text model (SAM 3 by default; grounding-dino-* or clipseg), depth to Depth"
                    " Anything V2; a region with depth is weighted by it. Coordinates are photo pixels from the"
                    " top-left corner. `pixels models` lists the selection models.",
    )
    parser.add_argument("photo", metavar="PHOTO", help="the photo to select on")
    found = parser.add_argument_group("what to select")
    found.add_argument("--point", action="append", default=[], metavar="X,Y",
                       help="a positive click: on the object (repeat for more)")
    found.add_argument("--negative", action="append", default=[], metavar="X,Y",
                       help="a negative click: what to leave out (repeat for more)")
    found.add_argument("--box", action="append", default=[], metavar="X,Y,W,H",
                       help="a box around one object (repeat for more objects; clicks go with one box at most)")
    found.add_argument("--text", metavar="PHRASE", help="a phrase such as 'the sofa': its instances")
    found.add_argument("--pick", default="best", metavar="best|largest|all|K",
                       help="which candidate or instance: the best score (default), the largest, all of them, or"
                            " the K-th by score")
    found.add_argument("--threshold", type=float, metavar="T",
                       help="score threshold for --text in [0, 1) (default: the model's, 0.5 for SAM 3)")
    found.add_argument("--depth", metavar="NEAR:FAR",
                       help="relative depth range, fractions 0 (nearest) to 1 (farthest) over which the strength"
                            " ramps from 0 to 1 (with --direction far)")
    found.add_argument("--direction", default="far", choices=["far", "near"],
                       help="far: the far side is strong (default); near: the near side is strong")
    found.add_argument("--gamma", type=float, default=1.0, metavar="G", help="ramp ** G (default 1)")
    shape = parser.add_argument_group("shaping the region (in this order)")
    shape.add_argument("--fill-holes", action="store_true", help="select enclosed gaps")
    shape.add_argument("--largest", action="store_true", help="keep only the largest connected part")
    shape.add_argument("--grow", type=int, default=0, metavar="PX", help="grow the region by PX pixels")
    shape.add_argument("--shrink", type=int, default=0, metavar="PX", help="shrink the region by PX pixels")
    shape.add_argument("--invert", action="store_true", help="select everything else instead")
    shape.add_argument("--feather", type=float, default=0.0, metavar="PX",
                       help="soften the edge over PX pixels, inside the region only")
    add_model_flags(parser, default="auto",
                    model_help="the selection model: a short name (pixels models), a hub id or a folder written by"
                               " save_pretrained (default: sam2.1-tiny for clicks and boxes, sam3 for --text)")
    parser.add_argument("--mask-model", metavar="ID|PATH",
                        help="the click model masking GroundingDINO's boxes (default sam2.1-tiny)")
    parser.add_argument("--depth-model", metavar="ID|PATH", help="default depth-anything-v2-small")
    parser.add_argument("-o", "--output", required=True, metavar="MAP.png", help="the strength map to write")
    parser.add_argument("--preview", metavar="PREVIEW.png", help="also write the photo with the map in red over it")
    parser.add_argument("--overwrite", "--force", action="store_true", help="replace outputs that exist")
    parser.set_defaults(run=run)


def _numbers(text: str, count: int, meaning: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise InputError(f"expected {meaning}, got {short(text)}", param=flag)
    return values


def _depth(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    parts = text.split(":")
    try:
        near, far = (float(v) for v in parts)
    except ValueError:
        raise InputError(f"expected NEAR:FAR, fractions of the depth such as 0.3:0.8, got {short(text)}",
                         param="--depth") from None
    return near, far


def _pick(text: str) -> str | int:
    return int(text) if text.strip().isdigit() else text


def selection(args: argparse.Namespace):
    """The `Select` the flags describe."""
    from ..select import Select

    return Select(
        points=[_numbers(p, 2, "X,Y", f"--point[{k}]") for k, p in enumerate(args.point)],
        negative=[_numbers(p, 2, "X,Y", f"--negative[{k}]") for k, p in enumerate(args.negative)],
        boxes=[_numbers(b, 4, "X,Y,W,H", f"--box[{k}]") for k, b in enumerate(args.box)],
        text=args.text, pick=_pick(args.pick), threshold=args.threshold, depth=_depth(args.depth),
        direction=args.direction, gamma=args.gamma, grow=args.grow, shrink=args.shrink,
        fill_holes=args.fill_holes, largest=args.largest, feather=args.feather, invert=args.invert,
        model=None if args.model == "auto" else args.model, mask_model=args.mask_model,
        depth_model=args.depth_model,
    )


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except InputError as error:  # the library names Select's fields; this command names its flags
        if error.param is None or error.param.startswith(("-", "PHOTO")):
            raise
        raise type(error)(error.message, param=renamed(error.param, SELECT_FLAGS)) from None


def _run(args: argparse.Namespace) -> int:
    import transformers

    from ..inputs import maps
    from ..inputs.images import load_image
    from ..outputs.transaction import Transaction
    from ..outputs.writers import check_output, image_writer
    from ..select import resolve_selection

    # 1. Check everything before any model loads: the selection, the outputs, the photo
    transformers.utils.logging.disable_progress_bar()  # loading bars are not for command-line users
    select = selection(args)
    output = check_output(args.output, overwrite=args.overwrite, inputs=[args.photo])
    preview = None
    if args.preview:
        preview = check_output(args.preview, overwrite=args.overwrite, inputs=[args.photo], name="--preview")
        if preview.resolve() == output.resolve():
            raise InputError("is the same file as --output; give the preview a name of its own", param="--preview")
    photo, _ = load_image(args.photo, name="PHOTO")

    # 2. Find it
    found = resolve_selection(select, photo, device=args.device, dtype=args.dtype,
                              allow_unsafe_pickle=args.allow_unsafe_pickle)

    # 3. Write the map (with the selection in its metadata) and the preview together: both, or neither
    metadata = {"selection": found.record, "size": found.record["size"]}
    with Transaction() as transaction:
        transaction.file(output, image_writer(maps.to_image(found.strength), output, metadata),
                         overwrite=args.overwrite)
        if preview is not None:
            picture = maps.overlay(photo, found.strength.astype("float64"), opacity=0.5)
            transaction.file(preview, image_writer(picture, preview), overwrite=args.overwrite)
        transaction.commit()
    region = found.record.get("region") or found.record.get("depth")
    print(f"wrote {output} ({photo.width}x{photo.height}, {found.record['selected_pixels']} pixels selected,"
          f" {region['model']})" + (f"; preview {preview}" if preview is not None else ""))
    return EXIT_OK
