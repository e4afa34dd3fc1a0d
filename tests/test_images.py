"""Every accepted image and map input converts as documented; everything else is refused by name."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pixels.core.frame import to_pil, to_tensor
from pixels.errors import InputError
from pixels.inputs.images import MAP_SNAP, load_image, load_map

RGB = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)


def save(tmp_path, image: Image.Image, name: str, **kwargs) -> str:
    path = tmp_path / name
    image.save(path, **kwargs)
    return str(path)


# -- pictures -------------------------------------------------------------------------------------


def test_rgb_path_pil_and_array_agree(tmp_path):
    path = save(tmp_path, Image.fromarray(RGB), "a.png")
    for value in (path, Image.fromarray(RGB), RGB):
        image, alpha = load_image(value, name="source")
        assert image.mode == "RGB" and image.size == (5, 6) and alpha is None
        assert np.array_equal(np.asarray(image), RGB)


def test_grayscale_and_bilevel_become_gray_rgb():
    gray = RGB[..., 0]
    image, _ = load_image(Image.fromarray(gray, "L"), name="source")
    assert np.array_equal(np.asarray(image), np.repeat(gray[..., None], 3, axis=2))
    bilevel, _ = load_image(Image.fromarray(gray > 127).convert("1"), name="source")
    assert set(np.unique(np.asarray(bilevel))) <= {0, 255}


def test_palette_with_transparency_keeps_alpha(tmp_path):
    palette = Image.fromarray(RGB).convert("P", palette=Image.ADAPTIVE, colors=8)
    palette.info["transparency"] = 0
    path = save(tmp_path, palette, "p.png", transparency=0)
    image, alpha = load_image(path, name="exemplar")
    index = np.asarray(Image.open(path))
    assert alpha is not None and np.array_equal(alpha == 0, index == 0)
    rgb, _ = load_image(Image.fromarray(RGB).convert("P"), name="exemplar")
    assert rgb.mode == "RGB"


def test_rgba_alpha_returned_and_opaque_alpha_dropped():
    rgba = np.dstack([RGB, np.full((6, 5), 255, np.uint8)])
    _, alpha = load_image(rgba, name="exemplar")
    assert alpha is None
    rgba[0, 0, 3] = 0
    image, alpha = load_image(Image.fromarray(rgba, "RGBA"), name="exemplar")
    assert alpha.dtype == np.float32 and alpha[0, 0] == 0 and alpha[1, 1] == 1
    assert np.array_equal(np.asarray(image), RGB)


def test_la_gray_with_alpha():
    la = Image.fromarray(np.dstack([RGB[..., 0], np.full((6, 5), 128, np.uint8)]), "LA")
    image, alpha = load_image(la, name="exemplar")
    assert np.array_equal(np.asarray(image)[..., 2], RGB[..., 0])
    assert np.allclose(alpha, 128 / 255)


def test_cmyk_and_ycbcr_converted_by_pillow():
    cmyk = Image.fromarray(RGB).convert("CMYK")
    image, _ = load_image(cmyk, name="source")
    assert image.mode == "RGB" and np.array_equal(np.asarray(image), np.asarray(cmyk.convert("RGB")))
    image, _ = load_image(Image.fromarray(RGB).convert("YCbCr"), name="source")
    assert np.abs(np.asarray(image).astype(int) - RGB).max() <= 3


def test_16_bit_images_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 257, 65535, 32896]], np.uint16)
    path = save(tmp_path, Image.fromarray(values), "deep.png")
    for value in (path, values):
        image, _ = load_image(value, name="source")
        assert np.asarray(image)[0, :, 0].tolist() == [0, 1, 255, 128]


def test_float_arrays_in_unit_range_only():
    image, _ = load_image(np.full((2, 2, 3), 0.5, np.float32), name="source")
    assert np.asarray(image).max() == 128
    with pytest.raises(InputError, match=r"source: float values must lie in \[0, 1\].*max 255"):
        load_image(np.full((2, 2, 3), 255.0), name="source")
    with pytest.raises(InputError, match="source: float values.*non-finite"):
        load_image(np.array([[np.nan, 0.5]]), name="source")
    with pytest.raises(InputError, match="min -0.5"):
        load_image(np.array([[-0.5, 0.5]]), name="source")


def test_exif_orientation_applied(tmp_path):
    image = Image.fromarray(RGB)  # 5 wide, 6 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = save(tmp_path, image, "rot.jpg", exif=exif, quality=95)
    loaded, _ = load_image(path, name="source")
    assert loaded.size == (6, 5)


@pytest.mark.parametrize(
    "value, match",
    [
        ("does/not/exist.png", "source: no such file"),
        (np.zeros((4, 4, 2), np.uint8), r"source: array of shape \(4, 4, 2\) is not an image"),
        (np.zeros((0, 4), np.uint8), r"source: empty image \(4x0\)"),
        (np.zeros((2, 2), np.int32), "unsupported array dtype int32"),
        (torch.zeros(1, 3, 4, 4), "got a torch.Tensor"),
        (42, "expected a PIL image, a numpy array or a path, got int"),
    ],
)
def test_bad_values_name_the_argument(value, match):
    with pytest.raises(InputError, match=match):
        load_image(value, name="source")


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path, name="source")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(InputError, match="source: .*notes.png is not an image in a format pixels reads"):
        load_image(text, name="source")
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    cut = tmp_path / "cut.png"
    cut.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match="source: .*cut.png is truncated or corrupt"):
        load_image(cut, name="source")
    garbled = bytearray(buffer.getvalue())
    garbled[200:400] = b"\x00" * 200
    bad = tmp_path / "garbled.png"
    bad.write_bytes(bytes(garbled))
    with pytest.raises(InputError, match="source: .*garbled.png is truncated or corrupt"):
        load_image(bad, name="source")


def test_absurd_sizes_refused_before_decoding(tmp_path):
    path = save(tmp_path, Image.new("L", (300, 300)), "big.png")
    with pytest.raises(InputError, match="source: 300x300 is 90,000 pixels, more than the limit of 50,000"):
        load_image(path, name="source", max_pixels=50_000)
    # a real decompression bomb: a tiny file declaring a huge canvas
    bomb = save(tmp_path, Image.new("1", (20000, 20000)), "bomb.png")
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.raises(InputError, match="source: .*bomb.png is too large to decode safely"):
        load_image(bomb, name="source")


# -- maps -----------------------------------------------------------------------------------------


def test_map_from_uint8_and_uint16_and_float():
    m8, notes = load_map(np.array([[0, 128, 255]], np.uint8), name="m", size=(3, 1))
    assert m8.dtype == np.float64 and m8.tolist() == [[0.0, np.float32(128 / 255), 1.0]] and notes == []
    m16, _ = load_map(np.array([[0, 2000, 65535]], np.uint16), name="m", size=(3, 1))
    assert m16[0, 1] == np.float32(2000 / 65535)  # full 16-bit precision, no rounding to 8 bits
    mf, _ = load_map(np.array([[0.001, 0.5, 0.999]], np.float32), name="m", size=(3, 1))
    assert mf.tolist() == np.array([[0.001, 0.5, 0.999]], np.float32).tolist()  # floats are not snapped
    mb, _ = load_map(np.array([[True, False]]), name="m", size=(2, 1))
    assert mb.tolist() == [[1.0, 0.0]]


def test_jpeg_ringing_snapped_to_exact_black_and_white(tmp_path):
    values = np.array([[0, 1, 4, 5, 250, 251, 254, 255]], np.uint8)
    m, _ = load_map(values, name="m", size=(8, 1))
    assert m[0, :3].tolist() == [0, 0, 0] and 0 < m[0, 3] < 1 and 0 < m[0, 4] < 1 and m[0, 5:].tolist() == [1, 1, 1]
    assert MAP_SNAP == 4 / 255
    # a JPEG of a hard-edged box map still has exact zeros and ones away from the edge
    box = np.zeros((64, 64), np.uint8)
    box[16:48, 16:48] = 255
    path = save(tmp_path, Image.fromarray(box), "map.jpg", quality=75)
    m, _ = load_map(path, name="m", size=(64, 64))
    assert (m[:8] == 0).all() and (m[24:40, 24:40] == 1).all()


def test_map_colour_uses_luminance_and_gray_rgb_is_exact():
    colour = np.zeros((1, 3, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    colour[0, 1] = (0, 255, 0)
    colour[0, 2] = (100, 100, 100)
    m, _ = load_map(colour, name="m", size=(3, 1))
    assert np.allclose(m[0], [0.299, 0.587, 100 / 255], atol=1e-6)
    white = load_map(np.ones((2, 2, 3), np.float32), name="m", size=(2, 2))[0]
    assert (white == 1.0).all()


def test_map_invert_alpha_and_resize_are_noted():
    m, notes = load_map(np.array([[0, 255]], np.uint8), name="m", size=(2, 1), invert=True)
    assert m.tolist() == [[1.0, 0.0]] and notes == []
    rgba = np.full((2, 2, 4), 255, np.uint8)
    rgba[0, :, 3] = 0
    m, notes = load_map(rgba, name="m", size=(2, 2))
    assert m.tolist() == [[0, 0], [1, 1]] and "transparent = keep" in notes[0]
    m, notes = load_map(np.ones((10, 20), np.float32), name="strength_map", size=(40, 30))
    assert m.shape == (30, 40) and (m == 1).all()
    assert notes == ["strength_map: resized from 20x10 to 40x30 to match the source"]


def test_map_from_16_bit_file_keeps_precision(tmp_path):
    values = np.array([[0, 2000, 40000, 65535]], np.uint16)
    path = save(tmp_path, Image.fromarray(values), "m16.png")
    m, _ = load_map(path, name="m", size=(4, 1))
    assert np.allclose(m[0], values[0] / 65535) and m[0, 0] == 0 and m[0, 3] == 1


def test_inverting_twice_is_lossless():
    """Maps in the reference convention (white = keep) reach the keep rule as the same float32 values."""
    keep = np.random.default_rng(3).random((8, 8), dtype=np.float32)
    strength, _ = load_map(keep, name="m", size=(8, 8), invert=True)
    assert np.array_equal((1.0 - strength).astype(np.float32), keep)


def test_map_errors_name_the_argument():
    with pytest.raises(InputError, match=r"exemplars\[1\].strength_map: float values must lie in \[0, 1\]"):
        load_map(np.full((2, 2), 2.0), name="exemplars[1].strength_map", size=(2, 2))


# -- tensors --------------------------------------------------------------------------------------


def test_tensor_round_trip_is_exact():
    image = Image.fromarray(RGB)
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 6, 5) and tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(np.asarray(to_pil(tensor)), RGB)
    assert np.asarray(to_pil(torch.full((1, 3, 1, 1), 5.0))).tolist() == [[[255, 255, 255]]]
