"""`pixels map`: make, combine and preview strength maps from the command line (white = edit, black = keep).

    pixels map ellipse 150,100,90,60 --like photo.jpg --feather 20 -o where.png
    pixels map linear 260,0,40,0 --size 640x480 -o fade.png
    pixels map combine where.png fade.png --how multiply -o both.png
    pixels map preview photo.jpg both.png -o preview.png
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import InputError, short
from ..limits import MAX_PIXELS

SHAPES = {  # kind -> (number of values, what they are)
    "box": (4, "X,Y,W,H"),
    "ellipse": (4, "CX,CY,RX,RY"),
    "radial": (4, "CX,CY,INNER,OUTER"),
    "linear": (4, "X0,Y0,X1,Y1 (0 at the first point, 1 at the second)"),
    "polygon": (None, "X1,Y1,X2,Y2,X3,Y3,... (three points or more)"),
}
KINDS = (*SHAPES, "alpha", "combine", "invert", "preview")


def add_parser(commands, common) -> None:
    parser = commands.add_parser(
        "map", parents=[common], help="make, combine and preview strength maps",
        description="Make a strength map (white = full edit, black = keep) and write it as an 8-bit PNG."
                    " Shapes: " + "; ".join(f"{k} {v[1]}" for k, v in SHAPES.items())
                    + "; alpha IMAGE; combine MAP MAP...; invert MAP; preview SOURCE MAP.",
    )
    parser.add_argument("kind", choices=KINDS, help="what to make")
    parser.add_argument("values", nargs="*", metavar="VALUE", help="numbers for a shape, or input files")
    parser.add_argument("--size", metavar="WxH", help="canvas size for shapes")
    parser.add_argument("--like", metavar="IMAGE", help="take the canvas size from this image")
    parser.add_argument("--value", type=float, default=1.0, help="strength inside box/ellipse/polygon (default 1)")
    parser.add_argument("--how", choices=["max", "min", "multiply"], default="max", help="for combine (default max)")
    parser.add_argument("--feather", type=float, default=0.0, metavar="PX",
                        help="soften the edge over PX pixels, inside the edited side only")
    parser.add_argument("--invert", action="store_true", help="invert the result (white = keep)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.png")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.set_defaults(run=run)


def _numbers(kind: str, values: list[str]) -> list[float]:
    count, meaning = SHAPES[kind]
    text = ",".join(values)
    try:
        numbers = [float(v) for v in text.replace(" ", "").split(",") if v != ""]
        if not all(math.isfinite(v) for v in numbers):
            raise ValueError
    except ValueError:
        raise InputError(f"expected finite numbers {meaning}, got {short(text)}", param=kind) from None
    if (count is not None and len(numbers) != count) or (count is None and (len(numbers) < 6 or len(numbers) % 2)):
        raise InputError(f"expected {meaning}, got {text!r}", param=kind)
    return numbers


def _canvas(args: argparse.Namespace) -> tuple[int, int]:
    from ..inputs.images import load_image

    if bool(args.size) == bool(args.like):
        raise InputError("give the canvas size with exactly one of --size WxH or --like IMAGE")
    if args.like:
        return load_image(args.like, name="--like")[0].size
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise InputError(f"--size: expected WxH, e.g. 640x480, got {args.size!r}") from None
    if width < 1 or height < 1:
        raise InputError(f"--size: expected positive sizes, got {args.size!r}")
    if width * height > MAX_PIXELS:
        raise InputError(f"--size: {width}x{height} is more than the limit of {MAX_PIXELS:,} pixels")
    return width, height


def build(args: argparse.Namespace):
    """The map (or, for preview, the picture) that `args` describe."""
    from ..inputs import maps
    from ..inputs.images import load_image, load_map

    kind, values = args.kind, args.values
    if kind in SHAPES:
        size = _canvas(args)
        n = _numbers(kind, values)
        if kind == "box":
            if any(v != int(v) for v in n):
                raise InputError(f"expected integers X,Y,W,H, got {','.join(values)!r}", param="box")
            strength = maps.box(size, tuple(int(v) for v in n), args.value)
        elif kind == "ellipse":
            strength = maps.ellipse(size, (n[0], n[1]), (n[2], n[3]), args.value)
        elif kind == "radial":
            strength = maps.radial(size, (n[0], n[1]), n[2], n[3])
        elif kind == "linear":
            strength = maps.linear(size, (n[0], n[1]), (n[2], n[3]))
        else:
            strength = maps.polygon(size, list(zip(n[::2], n[1::2])), args.value)
    else:
        expected = {"alpha": 1, "invert": 1, "preview": 2}.get(kind)
        if (expected and len(values) != expected) or (kind == "combine" and len(values) < 2):
            what = {"alpha": "IMAGE", "invert": "MAP", "preview": "SOURCE MAP", "combine": "MAP MAP..."}[kind]
            raise InputError(f"expected {what}, got {len(values)} file(s)", param=kind)
        if kind == "alpha":
            picture, alpha = load_image(values[0], name="alpha IMAGE")
            if alpha is None:
                raise InputError(f"{values[0]} has no transparency to make a map from", param="alpha")
            strength = alpha.astype(float)
        elif kind == "preview":
            source, _ = load_image(values[0], name="preview SOURCE")
            strength, _ = load_map(values[1], name="preview MAP", size=source.size)
            return maps.overlay(source, strength)
        else:
            first, _ = load_image(values[0], name=f"{kind} MAP")
            loaded = [load_map(v, name=f"{kind} MAP {k + 1}", size=first.size)[0] for k, v in enumerate(values)]
            strength = maps.invert(loaded[0]) if kind == "invert" else maps.combine(loaded, args.how)
    if args.feather:
        strength = maps.feather(strength, args.feather)
    if args.invert:
        strength = maps.invert(strength)
    return maps.to_image(strength)


def run(args: argparse.Namespace) -> int:
    from ..outputs.writers import check_output, save_image

    inputs = [v for v in args.values if Path(v).exists()] + ([args.like] if args.like else [])
    output = check_output(args.output, overwrite=args.overwrite, inputs=inputs)
    image = build(args)
    save_image(image, output, overwrite=args.overwrite)
    print(f"wrote {output} ({image.width}x{image.height})")
    return 0
