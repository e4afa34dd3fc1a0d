"""Draw the map-tools gallery used in the README: each map maker, previewed over a photo.

    python examples/map_gallery.py docs/maps.png
"""

from __future__ import annotations

import sys

import numpy as np
from PIL import Image
from skimage import data

from pixels.inputs import maps
from pixels.outputs.sheet import contact_sheet


def main(path: str) -> None:
    photo = Image.fromarray(data.coffee()).resize((300, 200), Image.LANCZOS)
    size = photo.size
    gallery = [
        ("box((60, 40, 120, 90))", maps.box(size, (60, 40, 120, 90))),
        ("ellipse((150, 100), (90, 60))", maps.ellipse(size, (150, 100), (90, 60))),
        ("polygon(star)", maps.polygon(size, [(150, 20), (175, 80), (240, 85), (190, 125), (210, 185),
                                              (150, 150), (90, 185), (110, 125), (60, 85), (125, 80)])),
        ("linear((40, 0), (260, 0))", maps.linear(size, (40, 0), (260, 0))),
        ("radial((150, 100), 30, 90)", maps.radial(size, (150, 100), 30, 90)),
        ("feather(ellipse, 25)", maps.feather(maps.ellipse(size, (150, 100), (90, 60)), 25)),
        ("combine([ellipse, ellipse], 'max')",
         maps.combine([maps.ellipse(size, (90, 100), (60, 40)), maps.ellipse(size, (210, 100), (60, 40))])),
        ("combine([box, radial], 'multiply')",
         maps.combine([maps.box(size, (0, 0, 150, 200)), maps.radial(size, (150, 100), 30, 90)], "multiply")),
        ("invert(radial)", maps.invert(maps.radial(size, (150, 100), 30, 90))),
    ]
    rows = [gallery[k:k + 3] for k in range(0, len(gallery), 3)]
    cyan = (0, 190, 255)  # stands out on the warm photo
    sheets = [contact_sheet([(title, maps.overlay(photo, m, colour=cyan)) for title, m in row]) for row in rows]
    out = Image.new("RGB", (sheets[0].width, sum(s.height for s in sheets)), "white")
    y = 0
    for sheet in sheets:
        out.paste(sheet, (0, y))
        y += sheet.height
    out.save(path)
    print(f"wrote {path} ({len(gallery)} maps, mean strengths "
          f"{', '.join(f'{np.mean(m):.2f}' for _, m in gallery)})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "maps.png")
