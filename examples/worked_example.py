"""The README's worked example, run with the bundled demo model on photos from scikit-image.

    python examples/worked_example.py docs/worked_example.png

1. place a lunar-surface exemplar (another size, no prepared canvas) into a box of the sky, with a
   feathered round map made with the map tools;
2. on that result, a warm glow rising from the horizon: a tinted copy of the photo as exemplar with
   a vertical gradient map, in paper mode and in blend mode;
3. all of it as a session: undo the paper-mode step, keep the blend one, save, reload bit-exactly.
"""

from __future__ import annotations

import sys
import tempfile

import numpy as np
from PIL import Image
from skimage import data

from pixels import Editor, EditSession, Exemplar, maps
from pixels.outputs.sheet import contact_sheet


def main(path: str) -> None:
    editor = Editor.from_pretrained("demo", device="cpu")
    source = Image.fromarray(data.rocket()).resize((192, 128), Image.LANCZOS)
    moon = Image.fromarray(data.moon()).crop((96, 96, 416, 416)).convert("RGB")  # 320x320, not the source's size
    size = source.size
    settings = dict(num_inference_steps=100, guidance_scale=1.0)

    session = EditSession(editor, source)
    where = maps.feather(maps.ellipse(size, (158, 30), (20, 20)), 8)
    session.apply([Exemplar(moon, where, box=(138, 10, 40, 40))], strength=0.15, seed=0, **settings)
    moon_step = session.current

    warm = np.asarray(moon_step, np.float64) * np.array([1.5, 1.0, 0.55]) + np.array([40, 10, 0])
    glow = Image.fromarray(np.clip(warm, 0, 255).astype(np.uint8))
    rising = maps.linear(size, (0, 40), (0, 128))  # 0 at y=40, 1 at the bottom edge
    paper = session.apply([Exemplar(glow, rising)], strength=0.3, seed=1, mode="paper", **settings).image
    session.undo()
    blend = session.apply([Exemplar(glow, rising)], strength=0.3, seed=1, mode="blend", **settings).image

    with tempfile.TemporaryDirectory() as folder:
        session.save(f"{folder}/session")
        replayed = EditSession.load(f"{folder}/session", editor)  # replays both steps, checks every pixel
        assert np.array_equal(np.asarray(replayed.current), np.asarray(blend))

    top = contact_sheet([("source", source), ("1. moon in a box, map", maps.overlay(source, where)),
                         ("1. result", moon_step)])
    bottom = contact_sheet([("2. gradient map", maps.overlay(moon_step, rising)), ("2. paper mode", paper),
                            ("2. blend mode", blend)],
                           "model: pixels' bundled demo model; photos: scikit-image rocket and moon")
    sheet = Image.new("RGB", (top.width, top.height + bottom.height), "white")
    sheet.paste(top, (0, 0))
    sheet.paste(bottom, (0, top.height))
    sheet.save(path)
    print(f"wrote {path}; session history: {[(h['mode'], h['strength'], h['seed']) for h in session.history]}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "worked_example.png")
