"""Draw the example workflow's graph as a picture: `python integrations/comfyui/workflows/draw.py [OUT.png]`.

Reads the editor graph (pixels_exemplar.json) and the API prompt (for the widgets' names) and draws its nodes, sockets, widget values and links with Pillow;
the documentation shows the result (docs/comfyui_graph.png, the default output).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parents[2] / "docs" / "comfyui_graph.png"
COLOURS = {"MODEL": (180, 130, 255), "CLIP": (255, 210, 80), "VAE": (255, 110, 110), "IMAGE": (100, 180, 255),
           "MASK": (120, 220, 150), "LATENT": (255, 150, 200), "CONDITIONING": (255, 170, 80),
           "PIXELS_EXEMPLARS": (255, 255, 255)}
PIXELS_NODE, OTHER_NODE = (58, 50, 78), (50, 52, 58)
MARGIN, LINE, HEADER = 30, 20, 28


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1: one size
        return ImageFont.load_default()


def draw(graph: dict, prompt: dict) -> Image.Image:
    """The editor graph `graph` drawn, its widgets named as in the API prompt `prompt`."""
    nodes = {node["id"]: node for node in graph["nodes"]}
    width = max(n["pos"][0] + n["size"][0] for n in nodes.values()) + 2 * MARGIN
    height = max(n["pos"][1] + n["size"][1] for n in nodes.values()) + 2 * MARGIN
    image = Image.new("RGB", (width, height), (32, 33, 36))
    pen = ImageDraw.Draw(image)
    title, text = _font(15), _font(13)

    def socket(node: dict, side: str, slot: int) -> tuple[int, int]:
        x, y = node["pos"][0] + MARGIN, node["pos"][1] + MARGIN
        return (x if side == "in" else x + node["size"][0]), y + HEADER + LINE * slot + LINE // 2

    for node in nodes.values():
        x, y = node["pos"][0] + MARGIN, node["pos"][1] + MARGIN
        w, h = node["size"]
        fill = PIXELS_NODE if node["type"].startswith("Pixels") else OTHER_NODE
        pen.rounded_rectangle((x, y, x + w, y + h), 8, fill=fill, outline=(90, 90, 100))
        pen.text((x + 10, y + 6), f"{node['title']}  ({node['type']})", fill=(235, 235, 235), font=title)
        for k, socket_in in enumerate(node["inputs"]):
            sx, sy = socket(node, "in", k)
            pen.ellipse((sx - 5, sy - 5, sx + 5, sy + 5), fill=COLOURS.get(socket_in["type"], (200, 200, 200)))
            pen.text((sx + 10, sy - 8), socket_in["name"], fill=(210, 210, 210), font=text)
        for k, socket_out in enumerate(node["outputs"]):
            sx, sy = socket(node, "out", k)
            pen.ellipse((sx - 5, sy - 5, sx + 5, sy + 5), fill=COLOURS.get(socket_out["type"], (200, 200, 200)))
            label = socket_out["name"]
            pen.text((sx - 10 - pen.textlength(label, font=text), sy - 8), label, fill=(210, 210, 210), font=text)
        rows = max(len(node["inputs"]), len(node["outputs"]))
        values = [(k, v) for k, v in prompt[str(node["id"])]["inputs"].items() if not isinstance(v, list)]
        for k, (name, value) in enumerate(values):
            shown = value if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)
            pen.text((x + 10, y + HEADER + LINE * (rows + k) + 2), f"  {name}: {shown}"[:44], fill=(150, 200, 150),
                     font=text)
    for _, origin, slot, target, slot_in, kind in graph["links"]:
        (x0, y0), (x1, y1) = socket(nodes[origin], "out", slot), socket(nodes[target], "in", slot_in)
        middle = (x0 + x1) // 2
        pen.line([(x0, y0), (middle, y0), (middle, y1), (x1, y1)], fill=COLOURS.get(kind, (200, 200, 200)), width=2)
    return image


def main(out: str | None = None) -> None:
    graph = json.loads((HERE / "pixels_exemplar.json").read_text())
    picture = draw(graph, json.loads((HERE / "pixels_exemplar_api.json").read_text()))
    picture = picture.resize((picture.width * 2 // 3, picture.height * 2 // 3), Image.LANCZOS)
    picture.save(out or DEFAULT_OUT, optimize=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
