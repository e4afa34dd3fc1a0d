"""PIXELS Map nodes: strength maps drawn and combined with pixels' map tools (`pixels.inputs.maps`).

Every node returns a MASK (1 = change fully, 0 = keep). The shapes take their size from `width` and `height`,
or from the optional `image` when it is connected.
"""

from __future__ import annotations

from comfy_api.latest import io

from pixels.inputs import maps

from .convert import from_map, one_image, to_map

HOW = ("max", "min", "multiply")


def _size(width: int, height: int, image=None) -> tuple[int, int]:
    if image is None:
        return width, height
    picture = one_image(image, "image")
    return int(picture.shape[1]), int(picture.shape[0])


def _sized(node_id: str, name: str, description: str, fields: list) -> io.Schema:
    return io.Schema(
        node_id=node_id, display_name=name, category="pixels/maps", description=description,
        inputs=[io.Int.Input("width", default=512, min=1, max=16384),
                io.Int.Input("height", default=512, min=1, max=16384),
                *fields,
                io.Image.Input("image", optional=True, tooltip="take the size from this image")],
        outputs=[io.Mask.Output(display_name="strength")],
    )


def _coordinate(name: str, default: float) -> io.Float.Input:
    return io.Float.Input(name, default=default, min=-1e7, max=1e7, step=1.0)


class PixelsMapBox(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _sized("PixelsMapBox", "PIXELS Map Box", "value inside the box (x, y, w, h), 0 elsewhere", [
            io.Int.Input("x", default=0, min=-16384, max=16384), io.Int.Input("y", default=0, min=-16384, max=16384),
            io.Int.Input("w", default=256, min=1, max=16384), io.Int.Input("h", default=256, min=1, max=16384),
            io.Float.Input("value", default=1.0, min=0.0, max=1.0, step=0.01)])

    @classmethod
    def execute(cls, width, height, x, y, w, h, value, image=None) -> io.NodeOutput:
        return io.NodeOutput(from_map(maps.box(_size(width, height, image), (x, y, w, h), value)))


class PixelsMapEllipse(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _sized("PixelsMapEllipse", "PIXELS Map Ellipse", "value inside the ellipse, 0 elsewhere", [
            _coordinate("center_x", 256.0), _coordinate("center_y", 256.0),
            _coordinate("radius_x", 128.0), _coordinate("radius_y", 128.0),
            io.Float.Input("value", default=1.0, min=0.0, max=1.0, step=0.01)])

    @classmethod
    def execute(cls, width, height, center_x, center_y, radius_x, radius_y, value, image=None) -> io.NodeOutput:
        size = _size(width, height, image)
        return io.NodeOutput(from_map(maps.ellipse(size, (center_x, center_y), (radius_x, radius_y), value)))


class PixelsMapRadial(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _sized("PixelsMapRadial", "PIXELS Map Radial",
                      "1 within radius inner of the centre, falling linearly to 0 at radius outer", [
                          _coordinate("center_x", 256.0), _coordinate("center_y", 256.0),
                          _coordinate("inner", 64.0), _coordinate("outer", 192.0)])

    @classmethod
    def execute(cls, width, height, center_x, center_y, inner, outer, image=None) -> io.NodeOutput:
        size = _size(width, height, image)
        return io.NodeOutput(from_map(maps.radial(size, (center_x, center_y), inner, outer)))


class PixelsMapLinear(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return _sized("PixelsMapLinear", "PIXELS Map Linear", "0 at the start point rising linearly to 1 at the end", [
            _coordinate("start_x", 0.0), _coordinate("start_y", 0.0),
            _coordinate("end_x", 512.0), _coordinate("end_y", 0.0)])

    @classmethod
    def execute(cls, width, height, start_x, start_y, end_x, end_y, image=None) -> io.NodeOutput:
        size = _size(width, height, image)
        return io.NodeOutput(from_map(maps.linear(size, (start_x, start_y), (end_x, end_y))))


class PixelsMapFeather(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PixelsMapFeather", display_name="PIXELS Map Feather", category="pixels/maps",
            description="soften the edited side's edges over radius pixels; what is 0 stays exactly 0",
            inputs=[io.Mask.Input("strength"), io.Float.Input("radius", default=16.0, min=0.0, max=1024.0)],
            outputs=[io.Mask.Output(display_name="strength")])

    @classmethod
    def execute(cls, strength, radius) -> io.NodeOutput:
        return io.NodeOutput(from_map(maps.feather(to_map(strength, "strength"), radius)))


class PixelsMapCombine(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PixelsMapCombine", display_name="PIXELS Map Combine", category="pixels/maps",
            description="maps of one size merged pixel by pixel: max (union), min (intersection) or multiply",
            inputs=[io.Mask.Input("a"), io.Mask.Input("b"), io.Combo.Input("how", options=list(HOW), default="max"),
                    io.Mask.Input("c", optional=True), io.Mask.Input("d", optional=True)],
            outputs=[io.Mask.Output(display_name="strength")])

    @classmethod
    def execute(cls, a, b, how, c=None, d=None) -> io.NodeOutput:
        given = [(name, m) for name, m in (("a", a), ("b", b), ("c", c), ("d", d)) if m is not None]
        return io.NodeOutput(from_map(maps.combine([to_map(m, name) for name, m in given], how)))


class PixelsMapInvert(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="PixelsMapInvert", display_name="PIXELS Map Invert", category="pixels/maps",
            description="1 - strength: for maps made for the reference code (white = keep)",
            inputs=[io.Mask.Input("strength")], outputs=[io.Mask.Output(display_name="strength")])

    @classmethod
    def execute(cls, strength) -> io.NodeOutput:
        return io.NodeOutput(from_map(maps.invert(to_map(strength, "strength"))))


MAP_NODES = [PixelsMapBox, PixelsMapEllipse, PixelsMapRadial, PixelsMapLinear, PixelsMapFeather, PixelsMapCombine,
             PixelsMapInvert]
