"""Reading images and strength maps from paths, PIL images and numpy arrays, with documented conversions.

Every accepted input is turned into an 8-bit RGB picture (plus its alpha, if any) or a float64 strength
map in [0, 1]; anything else raises `InputError` naming the argument.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..core.frame import ImageLike
from ..errors import InputError, first_line
from ..files import open_regular
from ..limits import MAX_PIXELS

# The raster formats pixels reads, chosen by Pillow from the file's content. Nothing else is opened: some
# of Pillow's other plugins hand the data to external programs (EPS is run by the Ghostscript interpreter).
FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
MAP_SNAP = 4 / 255  # 8/16-bit map values this close to 0 or 1 count as exactly 0 or 1 (JPEG ringing)

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as PIL's "L" conversion


def _check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise InputError(f"empty image ({width}x{height})", param=name)
    if width * height > max_pixels:
        raise InputError(
            f"{width}x{height} is {width * height:,} pixels, more than the limit of {max_pixels:,}", param=name
        )


def _open(path: Path, name: str, max_pixels: int) -> Image.Image:
    """Decode an image file of one of FORMATS, as detected from its content (not its name)."""
    with open_regular(path, name) as f:
        try:
            with Image.open(f, formats=FORMATS) as image:
                _check_size(*image.size, name, max_pixels)  # from the header, before decoding anything
                image.load()
                return image.copy()
        except InputError:
            raise
        except UnidentifiedImageError:
            raise InputError(
                f"{path} is not an image in a format pixels reads ({', '.join(FORMATS)})", param=name
            ) from None
        except Image.DecompressionBombError as e:
            raise InputError(f"{path} is too large to decode safely ({e})", param=name) from None
        except MemoryError:
            raise InputError(f"{path} does not fit in memory once decoded", param=name) from None
        except Exception as e:  # noqa: BLE001 - a decoder fails in many ways on truncated or corrupt data
            raise InputError(f"{path} is truncated or corrupt ({type(e).__name__}: {first_line(e, 120)})",
                             param=name) from None


def _float_image(array: np.ndarray, name: str) -> np.ndarray:
    """Float data must already lie in [0, 1]; float64 stays float64 (maps keep every bit), others become float32."""
    values = array.astype(np.float64 if array.dtype == np.float64 else np.float32)
    if values.size and (not np.isfinite(values).all() or values.min() < 0 or values.max() > 1):
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (np.nan, np.nan)
        bad = "non-finite values, " if not np.isfinite(values).all() else ""
        raise InputError(
            f"float values must lie in [0, 1] ({bad}min {lo:.4g}, max {hi:.4g}); "
            "scale the array, or pass uint8 / uint16 data", param=name
        )
    return values


def _unit_array(array: np.ndarray, name: str) -> tuple[np.ndarray, bool]:
    """Numpy data as float32 in [0, 1], and whether it came from integers (so snapping applies)."""
    if array.dtype == np.bool_:
        return array.astype(np.float32), True
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0, True
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0, True
    if np.issubdtype(array.dtype, np.floating):
        return _float_image(array, name), False
    raise InputError(
        f"unsupported array dtype {array.dtype}; use uint8, uint16, bool, or float in [0, 1]", param=name
    )


def _array_channels(array: np.ndarray, name: str, max_pixels: int) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> (H, W, C) with C in {1, 3, 4}."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise InputError(
            f"array of shape {array.shape} is not an image; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)",
            param=name,
        )
    _check_size(array.shape[1], array.shape[0], name, max_pixels)
    return array


def _pil_unit(image: Image.Image, name: str) -> tuple[np.ndarray, bool]:
    """A PIL image as (H, W, C) float32 in [0, 1] with C in {1, 3, 4}, and whether snapping applies.

    16-bit and 32-bit integer grayscale keep their full precision; float ("F") images must lie in [0, 1].
    """
    try:
        return _pil_pixels(image, name)
    except InputError:
        raise
    except MemoryError:
        raise InputError(f"the {image.width}x{image.height} image does not fit in memory", param=name) from None
    except Exception as e:  # noqa: BLE001 - Pillow refuses some modes and corrupt EXIF data in its own ways
        raise InputError(f"cannot convert a {image.mode!r} image to RGB ({type(e).__name__}: {first_line(e, 120)})",
                         param=name) from None


def _pil_pixels(image: Image.Image, name: str) -> tuple[np.ndarray, bool]:
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode.startswith("I;16"):
        return (np.asarray(image, np.float32) / 65535.0)[..., None], True
    if mode == "I":
        values = np.asarray(image, np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise InputError(
                f"32-bit integer image with values {values.min()}..{values.max()}, outside 0..65535", param=name
            )
        return (values.astype(np.float32) / 65535.0)[..., None], True
    if mode == "F":
        return _float_image(np.asarray(image, np.float32), name)[..., None], False
    if mode == "1":
        image = image.convert("L")
    elif mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("PA", "RGBa"):
        image = image.convert("RGBA")
    elif mode == "La":  # premultiplied gray + alpha, which Pillow does not convert: divide the alpha out
        la = np.asarray(image, np.float32)
        gray = np.where(la[..., 1] > 0, la[..., 0] * 255 / np.maximum(la[..., 1], 1), 0)
        image = Image.fromarray(np.stack([np.clip(np.round(gray), 0, 255), la[..., 1]], -1).astype(np.uint8), "LA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX...
    array = np.asarray(image, np.float32) / 255.0
    if image.mode == "LA":
        array = array[..., [0, 0, 0, 1]]  # gray + alpha -> RGBA
    return (array if array.ndim == 3 else array[..., None]), True


def _to_unit(value: ImageLike, name: str, max_pixels: int) -> tuple[np.ndarray, bool]:
    if isinstance(value, (str, os.PathLike)):
        return _pil_unit(_open(Path(value), name, max_pixels), name)
    if isinstance(value, Image.Image):
        _check_size(*value.size, name, max_pixels)
        return _pil_unit(value, name)
    if isinstance(value, np.ndarray):
        array = _array_channels(value, name, max_pixels)
        return _unit_array(array, name)
    if type(value).__module__.partition(".")[0] == "torch":
        raise InputError("got a torch.Tensor; pass a PIL image, a numpy array or a path", param=name)
    raise InputError(f"expected a PIL image, a numpy array or a path, got {type(value).__name__}", param=name)


def load_image(value: ImageLike, *, name: str, max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, np.ndarray | None]:
    """Read a picture as 8-bit RGB, plus its alpha as float32 (H, W) in [0, 1] when it has a
    non-opaque alpha channel (None otherwise). EXIF orientation is applied."""
    unit, _ = _to_unit(value, name, max_pixels)
    alpha = None
    if unit.shape[2] == 4:
        alpha = unit[..., 3]
        if alpha.min() >= 1.0:
            alpha = None
        unit = unit[..., :3]
    elif unit.shape[2] == 1:
        unit = np.repeat(unit, 3, axis=2)
    rgb = np.clip(np.round(unit * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB"), alpha


def load_map(
    value: ImageLike,
    *,
    name: str,
    size: tuple[int, int],
    invert: bool = False,
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, list[str]]:
    """Read a strength map as float64 (H, W) in [0, 1] (white = full edit) for a source of `size` (W, H).

    - colour maps are reduced to their luminance (ITU-R 601 weights);
    - integer data (8/16-bit files and uint arrays) within MAP_SNAP of 0 or 1 is snapped to exactly 0 or 1,
      so JPEG-compressed maps still keep their black pixels bit-exact; float arrays are taken as they are;
    - `invert=True` reads the reference convention (white = keep) and flips it;
    - a map with transparency is multiplied by its alpha (transparent = keep);
    - a map of another size is resized bilinearly to the source, and a note says so.
    """
    notes: list[str] = []
    unit, integer = _to_unit(value, name, max_pixels)
    alpha = None
    if unit.shape[2] in (2, 4):
        alpha = unit[..., -1]
        unit = unit[..., :-1]
    channels = unit[..., :3]
    gray = unit.shape[2] == 1 or bool((channels == channels[..., :1]).all())
    values = unit[..., 0] if gray else channels @ _LUMA
    # float64 from here on: 1 - (1 - v) == v exactly, so inverted maps reach the keep rule unchanged
    values = np.clip(values.astype(np.float64), 0.0, 1.0)
    if integer:
        low, high = np.float32(MAP_SNAP), np.float32(1.0 - MAP_SNAP)  # the grid integer data was read on
        values = np.where(values <= low, 0.0, np.where(values >= high, 1.0, values))
    if invert:
        values = 1.0 - values
    if alpha is not None and alpha.min() < 1.0:
        values = values * alpha
        notes.append(f"{name}: has transparency; strength multiplied by alpha (transparent = keep)")
    width, height = size
    if values.shape != (height, width):
        h, w = values.shape
        resized = Image.fromarray(values.astype(np.float32), "F").resize((width, height), Image.BILINEAR)
        values = np.asarray(resized, np.float64)
        notes.append(f"{name}: resized from {w}x{h} to {width}x{height} to match the source")
    return np.clip(values, 0.0, 1.0), notes


