"""Region cropping: only a box around the edited area is diffused, then pasted back."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import box_map, photo

from pixels import Editor, Exemplar, InputError
from pixels.core.crop import crop_around, resize_map

FAST = dict(num_inference_steps=4, guidance_scale=4.0, seed=1)


def calls_and_sizes(editor):
    sizes = []
    handle = editor.adapter.denoiser.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[-2:]))
    return sizes, handle


def test_crop_around_keeps_the_margin_inside_the_frame_and_on_the_grid():
    x, y, w, h = crop_around((40, 40, 10, 10), 8, (100, 80), 8)
    assert x <= 32 and y <= 32 and x + w >= 58 and y + h >= 58  # edited area plus margin inside
    assert w % 8 == 0 and h % 8 == 0
    x, y, w, h = crop_around((0, 70, 5, 10), 16, (100, 80), 8)  # clipped by the frame's edges
    assert x == 0 and y + h == 80 and w % 8 == 0 and h % 8 == 0 and y <= 54
    assert crop_around((0, 0, 100, 80), 16, (100, 80), 8) == (0, 0, 100, 80)  # cannot grow past the frame


def test_resize_map_keeps_exact_zero_and_one_areas():
    m = box_map(64, 64, (16, 16, 48, 48))
    small = resize_map(m.astype(np.float64), (32, 32))
    assert small[10:22, 10:22].min() == 1.0 and small[:6].max() == 0.0 and small.dtype == np.float64


@pytest.mark.parametrize("pipe_name", ["sd_pipe", "pixel_pipe"])
def test_auto_crop_diffuses_a_smaller_frame_and_keeps_the_rest(request, pipe_name):
    editor = Editor.from_pipe(request.getfixturevalue(pipe_name))
    source = photo(96, 64, seed=3)
    m = box_map(96, 64, (60, 20, 76, 36))
    sizes, handle = calls_and_sizes(editor)
    try:
        result = editor.edit(source, strength_map=m, crop="auto", crop_margin=8, **FAST)
    finally:
        handle.remove()
    out, src = np.asarray(result.image), np.asarray(source)
    assert np.array_equal(out[m == 0], src[m == 0])
    assert not np.array_equal(out[m > 0], src[m > 0])
    x, y, w, h = result.metadata["crop_box"]
    assert x <= 52 and y <= 12 and x + w >= 84 and y + h >= 44 and (w, h) != (96, 64)
    f = editor.adapter.vae_scale_factor
    assert all(tuple(s) == (result.metadata["diffused_size"][1] // f, result.metadata["diffused_size"][0] // f)
               for s in sizes)
    assert result.metadata["diffused_size"] == [w + -w % editor.adapter.size_multiple,
                                                h + -h % editor.adapter.size_multiple]


def test_a_cropped_edit_is_the_edit_of_the_cropped_inputs(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source = photo(96, 96, seed=3)
    m = box_map(96, 96, (56, 56, 80, 80))
    exemplar = Exemplar(photo(24, 24, seed=8), m, box=(56, 56, 24, 24), fit="stretch")
    cropped = editor.edit(source, exemplars=[exemplar], crop=(48, 48, 40, 40), **FAST)
    placed = cropped.exemplars[0].crop((48, 48, 88, 88))
    alone = editor.edit(source.crop((48, 48, 88, 88)), exemplars=[Exemplar(placed, m[48:88, 48:88])], **FAST)
    out = np.asarray(cropped.image)
    assert np.array_equal(out[48:88, 48:88], np.asarray(alone.image))
    outside = np.ones((96, 96), bool)
    outside[48:88, 48:88] = False
    assert np.array_equal(out[outside], np.asarray(source)[outside])


def test_crop_resize_native_and_explicit_boxes(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source = photo(96, 96, seed=5)
    m = box_map(96, 96, (40, 40, 56, 56))
    result = editor.edit(source, strength_map=m, crop=(32, 32, 32, 32), crop_resize="native", **FAST)
    native = editor.adapter.native_size
    assert result.metadata["crop_box"] == [32, 32, 32, 32]
    assert result.metadata["diffused_size"] == [native, native]
    assert np.array_equal(np.asarray(result.image)[m == 0], np.asarray(source)[m == 0])
    with pytest.raises(InputError, match="crop: .* cuts through the edited area"):
        editor.edit(source, strength_map=m, crop=(44, 44, 8, 8), **FAST)
    with pytest.raises(InputError, match="crop: expected"):
        editor.edit(source, strength_map=m, crop="small", **FAST)
    with pytest.raises(InputError, match="crop_resize"):
        editor.edit(source, strength_map=m, crop="auto", crop_resize=2, **FAST)


def test_auto_crop_with_nothing_edited_returns_the_source(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source = photo(40, 40, seed=1)
    result = editor.edit(source, strength_map=np.zeros((40, 40)), crop="auto", **FAST)
    assert np.array_equal(np.asarray(result.image), np.asarray(source))
    assert result.metadata["crop_box"] is None


def test_cli_crop_auto_and_bad_values(tmp_path, sd_folder, capsys):
    from PIL import Image

    from pixels.cli import main

    photo(64, 64).save(tmp_path / "src.png")
    Image.fromarray((box_map(64, 64, (40, 40, 56, 56)) * 255).astype(np.uint8)).save(tmp_path / "map.png")
    out = tmp_path / "out.png"
    base = ["edit", str(tmp_path / "src.png"), "--map", str(tmp_path / "map.png"), "--model", str(sd_folder),
            "--steps", "3", "-o", str(out)]
    assert main(base + ["--crop", "auto", "--crop-margin", "4"]) == 0
    assert "diffused" in capsys.readouterr().out and out.exists()
    with pytest.raises(SystemExit, match="2"):
        main(base + ["--crop", "1,2,3", "--overwrite"])
    assert main(base + ["--crop-margin", "-1", "--overwrite"]) == 2
    assert "--crop-margin" in capsys.readouterr().err


def test_region_encoding_of_exemplars(sd_pipe):
    """exemplar_encode="region" encodes only around each exemplar's edited area, on the latent grid."""
    editor = Editor.from_pipe(sd_pipe)
    source = photo(160, 160, seed=3)
    small = Exemplar(photo(160, 160, seed=8), box_map(160, 160, (100, 100, 120, 120)))
    whole = Exemplar(photo(160, 160, seed=9), np.ones((160, 160)))
    shapes = []
    handle = editor.adapter.pipe.vae.encoder.register_forward_hook(
        lambda module, args, out: shapes.append(tuple(args[0].shape[-2:])))
    try:
        full = editor.edit(source, exemplars=[whole], **FAST)
        region = editor.edit(source, exemplars=[whole], exemplar_encode="region", **FAST)
        assert np.array_equal(np.asarray(full.image), np.asarray(region.image))  # the region is the frame
        shapes.clear()
        out = editor.edit(source, exemplars=[small], exemplar_encode="region", **FAST)
    finally:
        handle.remove()
    assert shapes == [(160, 160), (124, 124)]  # pixels 36-160: 64 px of context before the region, frame after
    m = box_map(160, 160, (100, 100, 120, 120))
    assert np.array_equal(np.asarray(out.image)[m == 0], np.asarray(source)[m == 0])
    with pytest.raises(InputError, match="exemplar_encode: unknown value"):
        editor.edit(source, exemplars=[small], exemplar_encode="crop", **FAST)
