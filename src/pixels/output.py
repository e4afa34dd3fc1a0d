"""Writing results: atomically, never clobbering without permission, with settings embedded in PNGs."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .errors import InputError

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def output_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"output: {str(path)!r} has an unsupported extension; use one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def check_output(path: str | os.PathLike, *, overwrite: bool, inputs: list[str] = ()) -> Path:
    """Validate an output path before any work is done; returns it resolved."""
    out = Path(path).expanduser()
    output_format(out)
    if not out.parent.is_dir():
        raise InputError(f"output: folder {str(out.parent)!r} does not exist")
    if out.is_dir():
        raise InputError(f"output: {str(out)!r} is a folder")
    if out.exists() and not overwrite:
        raise InputError(f"output: {str(out)!r} exists; pass --overwrite to replace it")
    for given in inputs:
        if given and Path(given).exists() and out.exists() and os.path.samefile(given, out) and not overwrite:
            raise InputError(f"output: {str(out)!r} is also an input; pass --overwrite to replace it")
    return out


def parameters_text(md: dict[str, Any]) -> str:
    """The A1111-style `parameters` text that other tools (and image hosts) read."""
    fields = [
        ("Steps", md.get("num_inference_steps")), ("Sampler", md.get("scheduler_class")),
        ("CFG scale", md.get("guidance_scale")), ("Seed", md.get("seed")),
        ("Size", "x".join(map(str, md.get("size", [])))), ("Model", md.get("model")),
        ("Denoising strength", md.get("strength")), ("Denoising start", md.get("denoising_start")),
        ("PIXELS mode", md.get("mode")), ("Exemplars", len(md.get("exemplars", []))),
    ]
    line = ", ".join(f"{key}: {value}" for key, value in fields if value not in (None, ""))
    text = md.get("prompt", "")
    if md.get("negative_prompt"):
        text += f"\nNegative prompt: {md['negative_prompt']}"
    return f"{text}\n{line}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_image(image: Image.Image, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
               *, overwrite: bool = False) -> Path:
    """Write `image` to `path` atomically: a temporary file in the same folder, then a rename.

    Without `overwrite` the final step is a hard link, which fails if the path appeared meanwhile.
    """
    out = Path(path).expanduser()
    fmt = output_format(out)
    kwargs: dict[str, Any] = {}
    if fmt == "PNG" and metadata is not None:
        info = PngInfo()
        info.add_itxt("pixels", json.dumps(metadata, default=str))
        info.add_itxt("parameters", parameters_text(metadata))
        kwargs["pnginfo"] = info
    elif fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = 95
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            image.save(f, format=fmt, **kwargs)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are ordinary files
        if overwrite:
            os.replace(tmp, out)
        else:
            try:
                os.link(tmp, out)
            except FileExistsError:
                raise InputError(f"output: {str(out)!r} exists; pass --overwrite to replace it") from None
            except OSError:  # file systems without hard links: check, then rename
                if out.exists():
                    raise InputError(f"output: {str(out)!r} exists; pass --overwrite to replace it") from None
                os.replace(tmp, out)
                return out
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out
