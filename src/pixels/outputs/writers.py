"""Writing results: checked before any work, written atomically, never clobbering without permission,
with the settings embedded in PNGs."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..errors import InputError, short
from ..files import check_name_length, check_writable
from .transaction import atomic_write, recover

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
EXIF_DESCRIPTION, EXIF_IFD, EXIF_USER_COMMENT = 0x010E, 0x8769, 0x9286  # ImageDescription, Exif IFD, UserComment


def output_format(path: str | os.PathLike, name: str = "output") -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"{short(str(path))} has an unsupported extension; use one of {', '.join(FORMATS)}", param=name
        )
    return FORMATS[suffix]


def check_output(path: str | os.PathLike, *, overwrite: bool, inputs: Sequence = (), name: str = "output") -> Path:
    """Validate an output path before any work is done: format, folder, name length, permission to write,
    and no clobbering of an existing file (or of an input) without `overwrite`. Returns the path."""
    out = Path(path).expanduser()
    output_format(out, name)
    check_name_length(out, name)
    if not out.parent.is_dir():
        raise InputError(f"folder {str(out.parent)!r} does not exist", param=name)
    recover(out.parent)  # a run killed while writing here is cleaned up before anything is judged
    if out.is_dir():
        raise InputError(f"{str(out)!r} is a folder", param=name)
    if os.path.lexists(out) and not overwrite:
        what = "exists (it is also an input)" if any(_same(given, out) for given in inputs) else "exists"
        raise InputError(f"{str(out)!r} {what}; pass overwrite=True to replace it", param=name)
    check_writable(out.parent, name)
    return out


def _same(given: Any, out: Path) -> bool:
    try:
        return bool(given) and isinstance(given, (str, os.PathLike)) and os.path.samefile(given, out)
    except (OSError, ValueError):
        return False


def printable(text: str) -> str:
    """Text that encodes as UTF-8: undecodable bytes of file names show as escapes instead of failing."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parameters_text(md: dict[str, Any]) -> str:
    """The A1111-style `parameters` text that other tools (and image hosts) read: the prompt, a
    "Negative prompt: " line if there is one, then one line of `Key: value` pairs, with A1111's sampler names
    ("DPM++ 2M", "Euler a"). As A1111 writes it, an empty prompt leaves no empty first line, and a value with
    a comma, colon or line break is written as a JSON string, so that the pairs split at the commas."""
    from ..core.schedulers import a1111_sampler

    fields = [
        ("Steps", md.get("num_inference_steps")), ("Sampler", a1111_sampler(md.get("scheduler_class"))),
        ("CFG scale", md.get("guidance_scale")), ("Seed", md.get("seed")),
        ("Size", "x".join(map(str, md.get("size", [])))), ("Model", md.get("model")),
        ("Denoising strength", md.get("strength")), ("Denoising start", md.get("denoising_start")),
        ("PIXELS mode", md.get("mode")), ("Exemplars", len(md.get("exemplars", []))),
    ]
    line = ", ".join(f"{key}: {_quoted(value)}" for key, value in fields if value not in (None, ""))
    lines = [md["prompt"]] if md.get("prompt") else []
    if md.get("negative_prompt"):
        lines.append(f"Negative prompt: {md['negative_prompt']}")
    return printable("\n".join([*lines, line]))


def _quoted(value: Any) -> str:
    """A value of the settings line as A1111 writes it: as is, or as a JSON string if it has a comma, a colon or
    a line break (which would split it)."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n\r") else text


def image_writer(image: Image.Image, path: str | os.PathLike, metadata: dict[str, Any] | None = None
                 ) -> Callable[[BinaryIO], None]:
    """What writes `image` in the format of `path`'s extension, with `metadata` in PNG text chunks."""
    fmt = output_format(path)
    kwargs: dict[str, Any] = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if metadata is not None:
        settings = json.dumps(metadata, default=str)  # ASCII: escapes anything else
        if fmt == "PNG":
            info = PngInfo()
            info.add_itxt("pixels", settings)
            info.add_itxt("parameters", parameters_text(metadata))
            kwargs["pnginfo"] = info
        else:  # JPEG and WebP: EXIF, as other tools write it (the A1111 text in UserComment)
            exif = Image.Exif()
            exif[EXIF_DESCRIPTION] = settings
            exif.get_ifd(EXIF_IFD)[EXIF_USER_COMMENT] = b"UNICODE\0" + parameters_text(metadata).encode("utf-16-be")
            kwargs["exif"] = exif

    def write(f: BinaryIO) -> None:
        image.save(f, format=fmt, **kwargs)

    return write


def save_image(image: Image.Image, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
               *, overwrite: bool = False) -> Path:
    """Write `image` to `path` atomically (a complete file or nothing), refusing to replace an existing
    file unless `overwrite`."""
    return atomic_write(path, image_writer(image, path, metadata), overwrite=overwrite)


def read_metadata(path: str | os.PathLike) -> dict[str, Any] | None:
    """The settings pixels embedded in a result it wrote (PNG text chunk, or EXIF in JPEG and WebP), or None
    for an image without them."""
    from ..files import open_regular
    from ..inputs.images import FORMATS as READABLE

    with open_regular(path, "image") as f, Image.open(f, formats=READABLE) as image:
        text = image.info.get("pixels") if image.format == "PNG" else image.getexif().get(EXIF_DESCRIPTION)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None

