"""`pixels map`: shapes, combinations and previews written as 8-bit PNG maps, with clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import photo
from PIL import Image

from pixels.cli import main
from pixels.inputs import maps


def read(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L"
        return np.asarray(image)


def test_shapes_match_the_python_map_tools(tmp_path, capsys):
    size = (40, 30)
    cases = [
        (["box", "4,5,10,8"], maps.box(size, (4, 5, 10, 8))),
        (["ellipse", "20,15,12,8", "--value", "0.5"], maps.ellipse(size, (20, 15), (12, 8), 0.5)),
        (["radial", "20,15,4,12"], maps.radial(size, (20, 15), 4, 12)),
        (["linear", "0,0,40,0", "--invert"], maps.invert(maps.linear(size, (0, 0), (40, 0)))),
        (["polygon", "2,2,30,4,10,25"], maps.polygon(size, [(2, 2), (30, 4), (10, 25)])),
        (["ellipse", "20,15,12,8", "--feather", "3"], maps.feather(maps.ellipse(size, (20, 15), (12, 8)), 3)),
    ]
    for k, (argv, expected) in enumerate(cases):
        out = tmp_path / f"m{k}.png"
        assert main(["map", *argv, "--size", "40x30", "-o", str(out)]) == 0
        assert np.array_equal(read(out), np.asarray(maps.to_image(expected))), argv
    assert "wrote" in capsys.readouterr().out


def test_alpha_combine_invert_and_preview(tmp_path):
    photo(40, 30).save(tmp_path / "photo.png")
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 3] = 0
    rgba[5:20, 5:20, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    assert main(["map", "alpha", str(tmp_path / "cut.png"), "-o", str(tmp_path / "a.png")]) == 0
    assert read(tmp_path / "a.png")[10, 10] == 255 and read(tmp_path / "a.png")[25, 30] == 0
    assert main(["map", "box", "20,0,20,30", "--like", str(tmp_path / "photo.png"), "-o", str(tmp_path / "b.png")]) == 0
    assert main(["map", "combine", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--how", "max",
                 "-o", str(tmp_path / "c.png")]) == 0
    c = read(tmp_path / "c.png")
    assert c[10, 10] == 255 and c[25, 30] == 255 and c[25, 2] == 0
    assert main(["map", "invert", str(tmp_path / "c.png"), "-o", str(tmp_path / "i.png")]) == 0
    assert np.array_equal(read(tmp_path / "i.png"), 255 - c)
    assert main(["map", "preview", str(tmp_path / "photo.png"), str(tmp_path / "c.png"),
                 "-o", str(tmp_path / "p.png")]) == 0
    with Image.open(tmp_path / "p.png") as preview:
        assert preview.mode == "RGB" and preview.size == (40, 30)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["box", "1,2,3", "--size", "10x10"], "box: expected X,Y,W,H"),
        (["box", "1,2,3,x", "--size", "10x10"], "box: expected finite numbers"),
        (["ellipse", "5,5,3,3"], "exactly one of --size WxH or --like IMAGE"),
        (["radial", "5,5,3,3", "--size", "ten"], "--size: expected WxH"),
        (["polygon", "1,1,5,5", "--size", "10x10"], "polygon: expected X1,Y1,X2,Y2,X3,Y3"),
        (["ellipse", "5,5,3,3", "--size", "10x10", "--feather", "-2"], "feather: radius must be >= 0"),
        (["combine", "only-one.png"], "combine: expected MAP MAP..."),
        (["alpha", "{photo}"], "has no transparency"),
    ],
)
def test_bad_map_arguments_exit_2_and_write_nothing(tmp_path, capsys, argv, message):
    photo(12, 12).save(tmp_path / "photo.png")
    argv = [a.format(photo=tmp_path / "photo.png") for a in argv]
    out = tmp_path / "out.png"
    assert main(["map", *argv, "-o", str(out)]) == 2
    assert message in capsys.readouterr().err and not out.exists()
