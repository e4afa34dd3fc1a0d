"""A bounded fuzz run of the file loaders: random bytes and mutated valid files (images and specs).

Each loader must return or raise the library's InputError, within a deadline per case. The cases come
from a fixed seed (the same ones in every run); PIXELS_FUZZ_CASES raises their number for a longer search.
"""

from __future__ import annotations

import io
import json
import os
import random

import numpy as np
import pytest
from conftest import deadline, photo
from PIL import Image

from pixels.errors import InputError
from pixels.inputs.images import load_image, load_map
from pixels.inputs.spec import load_spec

CASES = int(os.environ.get("PIXELS_FUZZ_CASES", "150"))
DEADLINE = 10  # seconds per case


def valid_images() -> dict[str, bytes]:
    """Small valid files in every format pixels reads, in several modes."""
    picture = photo(24, 16, seed=3)
    rgba = picture.convert("RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(24, dtype=np.uint8) * 10, (16, 1))))
    files = {}

    def save(name, image, fmt, **kwargs):
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **kwargs)
        files[name] = buffer.getvalue()

    save("rgb.png", picture, "PNG")
    save("rgba.png", rgba, "PNG")
    save("gray16.png", Image.fromarray((np.arange(384, dtype=np.uint16).reshape(16, 24) * 170)), "PNG")
    save("palette.gif", picture.convert("P"), "GIF")
    save("photo.jpg", picture, "JPEG", quality=80)
    save("cmyk.jpg", picture.convert("CMYK"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated
    save("rotated.jpg", picture, "JPEG", exif=exif)
    save("float.tif", Image.fromarray(np.linspace(0, 1, 384, dtype=np.float32).reshape(16, 24), "F"), "TIFF")
    save("rgb.tif", picture, "TIFF", compression="tiff_lzw")
    save("rgb.bmp", picture, "BMP")
    save("rgb.webp", picture, "WEBP", quality=80)
    save("rgba.webp", rgba, "WEBP", lossless=True)
    return files


def mutate(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(5)
        position = rng.randrange(len(data) + 1)
        if kind == 0 and data:  # flip bytes
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:  # truncate
            data = data[:position]
        elif kind == 2:  # insert random bytes
            data[position:position] = rng.randbytes(rng.randint(1, 64))
        elif kind == 3 and data:  # duplicate a slice
            start = rng.randrange(len(data))
            data[position:position] = data[start:start + rng.randint(1, 256)]
        elif kind == 4 and len(data) > 24:  # large numbers where headers keep sizes
            offset = rng.randrange(min(len(data) - 4, 64))
            data[offset:offset + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00"])
    return bytes(data)


def image_cases(rng: random.Random):
    valid = valid_images()
    names = sorted(valid)
    for k in range(CASES):
        if k % 10 == 0:
            yield f"random-{k}", rng.randbytes(rng.randint(0, 512))
        elif k % 10 == 1:  # a valid signature followed by garbage
            name = rng.choice(names)
            yield f"header-{name}-{k}", valid[name][:rng.randint(4, 40)] + rng.randbytes(rng.randint(0, 400))
        else:
            name = rng.choice(names)
            yield f"mutated-{name}-{k}", mutate(valid[name], rng)


@pytest.mark.parametrize("seed", [0, 1])
def test_image_loaders_return_or_raise_input_error(tmp_path, seed):
    rng = random.Random(seed)
    converted = 0
    for name, data in image_cases(rng):
        path = tmp_path / f"case{os.path.splitext(name)[1] or '.png'}"
        path.write_bytes(data)
        with deadline(DEADLINE):
            for load in (lambda: load_image(path, name="source"),
                         lambda: load_map(path, name="strength_map", size=(24, 16))):
                try:
                    load()
                    converted += 1
                except InputError:
                    pass
    assert converted > 0  # some mutations leave a readable image: the run reaches the decoders' success paths


SPEC = {"source": "photo.png", "edits": [
    {"exemplars": [{"image": "fox.png", "map": "where.png"}, {"image": "sky.png", "box": [0, 0, 40, 20],
                                                            "fit": "contain"}],
     "map": "grass.png", "prompt": "a red fox", "steps": 30, "strength": 0.8, "seed": 7, "crop": "auto"},
    {"map": "vignette.png", "prompt": "evening light", "mode": "blend", "guidance": 4.5, "crop": [1, 2, 30, 40]},
]}


def spec_texts(rng: random.Random):
    import yaml

    texts = [json.dumps(SPEC), yaml.safe_dump(SPEC), yaml.safe_dump(SPEC, default_flow_style=True)]
    tokens = ["edits:", "- ", "  ", "{", "}", "[", "]", "&a", "*a", "!!python/object:os.system", "!!binary", ":",
              "'", '"', "\n", "#", "---", "...", "<<: *a", "? ", "%YAML 1.1", "\t", "\\u0000", "1e999", "-1", "null"]
    for k in range(CASES):
        base = rng.choice(texts)
        if k % 4 == 0:
            yield "".join(rng.choice(tokens) for _ in range(rng.randint(1, 40)))
        else:
            chars = list(base)
            for _ in range(rng.randint(1, 8)):
                position = rng.randrange(len(chars) + 1)
                if rng.random() < 0.5:
                    chars[position:position] = rng.choice(tokens)
                else:
                    del chars[position:position + rng.randint(1, 10)]
            yield "".join(chars)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_spec_loader_returns_or_raises_input_error(tmp_path, suffix):
    rng = random.Random(suffix)
    parsed = 0
    for k, text in enumerate(spec_texts(rng)):
        path = tmp_path / f"spec{suffix}"
        path.write_bytes(text.encode("utf-8", "surrogatepass") if k % 7 else rng.randbytes(64) + text.encode())
        with deadline(DEADLINE):
            try:
                load_spec(path)
                parsed += 1
            except InputError:
                pass
    assert parsed > 0
