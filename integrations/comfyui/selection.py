"""PIXELS Select: a strength map found on the photo by clicks, boxes, a phrase or depth (`pixels.select`).

The fields are text: points and boxes as "x,y; x,y" and "x,y,w,h; ...", depth as "near,far" (fractions of the
relative depth). The selection models are the ones pixels uses (they must be on disk; see pixels' guide on
selections)."""

from __future__ import annotations

from comfy_api.latest import io

from pixels.errors import InputError

from .convert import from_map, to_pil

PICKS = ("best", "largest", "all")


def numbers(text: str, count: int, name: str) -> tuple[tuple[float, ...], ...]:
    """ "a,b; c,d" as ((a, b), (c, d)): groups of `count` numbers separated by ';'."""
    groups = []
    for k, part in enumerate(p.strip() for p in (text or "").split(";")):
        if not part:
            continue
        try:
            values = tuple(float(v) for v in part.split(","))
        except ValueError:
            values = ()
        if len(values) != count:
            raise InputError(f"item {k + 1} {part!r}: expected {count} numbers separated by commas", param=name)
        groups.append(values)
    return tuple(groups)


def make_select(points: str, negative: str, boxes: str, text: str, pick: str, depth: str, direction: str,
                grow: int, shrink: int, feather: float, invert: bool):
    """A checked `pixels.select.Select` from the node's fields (its errors name the field)."""
    from pixels.select import Select  # only when selecting: it brings pixels' model loading with it

    ranges = numbers(depth, 2, "depth")
    if len(ranges) > 1:
        raise InputError(f"expected one range near,far, got {len(ranges)}", param="depth")
    return Select(points=numbers(points, 2, "points"), negative=numbers(negative, 2, "negative"),
                  boxes=numbers(boxes, 4, "boxes"), text=text.strip() or None, pick=pick,
                  depth=ranges[0] if ranges else None, direction=direction, grow=grow, shrink=shrink,
                  feather=feather, invert=invert)


class PixelsSelect(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PixelsSelect", display_name="PIXELS Select", category="pixels/maps",
            description="a strength map from clicks, boxes, a phrase or depth, found on the image by pixels'"
                        " selection models",
            inputs=[io.Image.Input("image"),
                    io.String.Input("points", default="", tooltip="clicks on the object: x,y; x,y"),
                    io.String.Input("negative", default="", tooltip="clicks to leave out: x,y; x,y"),
                    io.String.Input("boxes", default="", tooltip="one object each: x,y,w,h; ..."),
                    io.String.Input("text", default="", tooltip="a phrase, e.g. the sofa"),
                    io.Combo.Input("pick", options=list(PICKS), default="best"),
                    io.String.Input("depth", default="", tooltip="near,far fractions of the depth, e.g. 0.3,0.8"),
                    io.Combo.Input("direction", options=["far", "near"], default="far"),
                    io.Int.Input("grow", default=0, min=0, max=1024), io.Int.Input("shrink", default=0, min=0, max=1024),
                    io.Float.Input("feather", default=0.0, min=0.0, max=1024.0),
                    io.Boolean.Input("invert", default=False)],
            outputs=[io.Mask.Output(display_name="strength")],
        )

    @classmethod
    def execute(cls, image, points, negative, boxes, text, pick, depth, direction, grow, shrink, feather,
                invert) -> io.NodeOutput:
        from pixels.select import resolve_selection

        select = make_select(points, negative, boxes, text, pick, depth, direction, grow, shrink, feather, invert)
        return io.NodeOutput(from_map(resolve_selection(select, to_pil(image, "image")).strength))
