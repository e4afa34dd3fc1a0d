"""The bundled demo: a complete edit on bundled photos with the bundled model, offline, in seconds.

It puts a patch of lunar surface (the exemplar) into the evening sky of a rocket-launch photo, with a
radial strength map: fully grafted in the middle, fading to the untouched sky.
Photos: scikit-image's `data.rocket` (SpaceX, CC0) and `data.moon` (public domain), downscaled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from ..inputs import maps
from ..inputs.images import load_map
from ..models.catalog import BY_NAME

MOON_CENTER = (158.0, 30.0)  # (x, y) in the 192x128 rocket photo: the sky between two towers
MOON_RADIUS = 12.0  # fully grafted inside this radius...
FADE_RADIUS = 22.0  # ...fading to the kept sky at this one


RECOMMENDED = BY_NAME["demo"].settings  # the demo model's settings, written once, in the catalogue


@dataclass(frozen=True)
class DemoSettings:
    num_inference_steps: int = RECOMMENDED["num_inference_steps"]  # the full schedule; strength truncates it
    strength: float = RECOMMENDED["strength"]  # low: the small model keeps the exemplar's layout, blends its edge
    seed: int = 0  # fixed, so the demo and its documented figures are reproducible
    scheduler: str | None = None  # the model's own (DDIM)


def asset(name: str) -> Image.Image:
    with resources.files("pixels").joinpath("demo", "photos", name).open("rb") as f:
        return Image.open(f, formats=["PNG"]).convert("RGB")


def inputs() -> tuple[Image.Image, Image.Image, np.ndarray]:
    """(source, exemplar placed on a source-sized canvas, strength map)."""
    source = asset("rocket.png")
    moon = asset("moon.png")
    side = int(2 * FADE_RADIUS)
    moon = moon.resize((side, side), Image.LANCZOS)
    canvas = source.copy()  # the canvas outside the placed exemplar is the source itself
    canvas.paste(moon, (int(MOON_CENTER[0] - side / 2), int(MOON_CENTER[1] - side / 2)))
    radial = maps.to_image(maps.radial(source.size, MOON_CENTER, MOON_RADIUS, FADE_RADIUS))
    # Read back as the saved 8-bit map.png will be read, so the demo's files reproduce the demo's numbers.
    strength, _ = load_map(radial, name="map", size=source.size)
    return source, canvas, strength


FILES = ("source.png", "exemplar.png", "map.png", "naive_paste.png", "result.png", "contact_sheet.png")


def check(output: str | Path, *, overwrite: bool = False, settings: DemoSettings = DemoSettings()) -> Path:
    """Check the demo's settings and output folder (it may be missing; its parent must exist)."""
    from ..core.settings import EditSettings, check_seed
    from ..errors import InputError
    from ..files import check_writable
    from ..outputs.transaction import recover

    EditSettings(num_inference_steps=settings.num_inference_steps, strength=settings.strength,
                 scheduler=settings.scheduler)  # validated as it is made
    check_seed(settings.seed)
    folder = Path(output).expanduser()
    if folder.is_dir():
        recover(folder)  # a run killed while writing here is cleaned up before anything is judged
    if os.path.lexists(folder) and not folder.is_dir():
        raise InputError(f"{str(folder)!r} exists and is not a folder", param="output")
    clashes = [n for n in FILES if os.path.lexists(folder / n)]
    if clashes and not overwrite:
        raise InputError(
            f"{', '.join(clashes)} already in {str(folder)!r}; pass overwrite=True to replace them", param="output"
        )
    parent = folder if folder.is_dir() else folder.parent
    if not parent.is_dir():
        raise InputError(f"folder {str(parent)!r} does not exist", param="output")
    check_writable(parent, "output")
    return folder


def run(output: str | Path, *, overwrite: bool = False, settings: DemoSettings = DemoSettings(), editor=None,
        on_step=None) -> dict:
    """Run the demo edit and write its files into folder `output` (made if missing, once the edit is done);
    returns what was written and measured. On any error nothing is written and no folder is made."""
    from ..editor import Editor, Exemplar
    from ..eval.metrics import evaluate, naive_paste
    from ..outputs.sheet import edit_sheet
    from ..outputs.transaction import Transaction
    from ..outputs.writers import image_writer

    # 1. Check the settings and the folder before any work
    folder = check(output, overwrite=overwrite, settings=settings)

    # 2. The edit
    source, exemplar, strength = inputs()
    editor = editor or Editor.from_pretrained("demo", device="cpu")
    result = editor.edit(
        source, exemplars=[Exemplar(exemplar, strength_map=strength)], num_inference_steps=settings.num_inference_steps,
        strength=settings.strength, seed=settings.seed, scheduler=settings.scheduler,
        guidance_scale=RECOMMENDED["guidance_scale"],
        on_step=on_step,
    )
    paste = Image.fromarray(naive_paste(source, exemplar, strength >= 1.0))
    report = evaluate(result.image, source, strength, exemplar)
    files = {  # FILES, in order
        "source.png": source, "exemplar.png": exemplar, "map.png": maps.to_image(strength),
        "naive_paste.png": paste, "result.png": result.image,
        "contact_sheet.png": edit_sheet(source, strength, [exemplar], result.image, result.metadata),
    }

    # 3. All six files, or none (a folder made here is removed again if writing fails)
    made = not folder.exists()
    folder.mkdir(exist_ok=True)
    try:
        with Transaction() as transaction:
            for name, image in files.items():
                writer = image_writer(image, folder / name, result.metadata if name == "result.png" else None)
                transaction.file(folder / name, writer, overwrite=overwrite)
            transaction.commit()
    except BaseException:
        if made:
            os.rmdir(folder)
        raise
    return {"folder": folder, "files": list(files), "metadata": result.metadata, "report": report}
