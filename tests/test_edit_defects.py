"""`pixels edit` and the library under it where they used to go wrong: a bad exemplar box, malformed
model_index.json files, model folders whose names are not UTF-8, and the A1111 `parameters` text."""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import photo
from conftest import run_cli as run
from PIL import Image

from pixels import Editor
from pixels import loading
from pixels.cli import build_parser
from pixels.errors import InputError
from pixels.loading import load_pipeline
from pixels.output import parameters_text, read_metadata, save_image
from pixels.schedulers import SCHEDULERS

CPU = dict(device=torch.device("cpu"), dtype=torch.float32)
DEMO = Path(str(resources.files("pixels").joinpath("models", "demo")))


def demo_copy(folder: Path, index=None) -> Path:
    """The bundled demo model copied to `folder`, with `index` (a function of its model_index.json) applied."""
    shutil.copytree(DEMO, folder)
    if index is not None:
        data = json.loads((DEMO / "model_index.json").read_text())
        (folder / "model_index.json").write_text(json.dumps(index(data)))
    return folder


def parse_a1111(text: str) -> tuple[str, str | None, dict[str, str]]:
    """Read a `parameters` text as A1111 metadata readers do: the last line is `Key: value, ...` pairs (a value
    with commas is a JSON string), the lines before it the prompt, then an optional `Negative prompt:` part."""
    *lines, settings = text.split("\n")
    prompt, negative = [], None
    for line in lines:
        if negative is None and line.startswith("Negative prompt:"):
            negative = [line.removeprefix("Negative prompt:").strip()]
        elif negative is not None:
            negative.append(line)
        else:
            prompt.append(line)
    pairs = {}
    for key, value in re.findall(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', settings):
        pairs[key] = json.loads(value) if value.startswith('"') else value
    return "\n".join(prompt), None if negative is None else "\n".join(negative), pairs


# --- an exemplar's box on the command line ----------------------------------------------------------------------


@pytest.mark.parametrize("value, says", [
    ("ex.png@0,0,-5,5", "box width must be > 0, got -5"),
    ("ex.png@0,0,5,0", "box height must be > 0, got 0"),
    ("ex.png@0,0,5", "a box is X,Y,W,H (4 integers), got '0,0,5'"),
    ("ex.png@1.5,0,5,5", "box x must be an integer, got '1.5'"),
])
def test_invalid_exemplar_box_names_the_argument_and_the_value(tmp_path, capsys, monkeypatch, value, says):
    source = tmp_path / "photo.png"
    photo(64, 64).save(source)
    photo(32, 32, seed=1).save(tmp_path / "ex.png")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        run(["edit", source, "-e", value, "--model", "demo", "-o", tmp_path / "out.png"], capsys)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"-e/--exemplar: {value!r}: {says}" in err and "no such file" not in err
    assert not (tmp_path / "out.png").exists()


def test_exemplar_names_with_at_signs_still_work(tmp_path, monkeypatch):
    from pixels.cli.edit import parse_placed

    monkeypatch.chdir(tmp_path)
    assert parse_placed("ex.png@-3,-4,5,6") == ("ex.png", (-3, -4, 5, 6))  # a box may stick out of the source
    assert parse_placed("me@2x.png") == ("me@2x.png", None)  # not a box: all of it is the path
    for name in ("ref.png@0,0,-5,5", "ref@0,0,5"):  # a file of that name is used as it is
        photo(16, 16).save(tmp_path / name, format="PNG")
        assert parse_placed(name) == (name, None)
        args = build_parser().parse_args(["edit", "photo.png", "-e", name, "--model", "demo", "-o", "out.png"])
        assert args.exemplars == [[name, None, None, 0.0]]


# --- malformed model_index.json --------------------------------------------------------------------------------


@pytest.mark.parametrize("change, key", [
    (lambda d: {**d, "_class_name": ["DDPMPipeline"]}, "'_class_name'"),
    (lambda d: {**d, "_class_name": ["my_pipeline", "MyPipeline"]}, "'_class_name'"),  # remote code's spelling
    (lambda d: {**d, "_class_name": 3}, "'_class_name'"),
    (lambda d: {**d, "_class_name": None}, "'_class_name'"),
    (lambda d: {**d, "unet": "UNet2DModel"}, "component 'unet'"),
    (lambda d: {**d, "unet": ["diffusers", "UNet2DModel", "extra"]}, "component 'unet'"),
    (lambda d: {**d, "unet": [1, 2]}, "component 'unet'"),
    (lambda d: {**d, "scheduler": {"library": "diffusers"}}, "component 'scheduler'"),
])
def test_malformed_model_index_is_refused_naming_the_file_and_the_key(tmp_path, change, key):
    folder = demo_copy(tmp_path / "model", change)
    with pytest.raises(InputError) as refused:
        load_pipeline(str(folder), **CPU)
    assert type(refused.value) is InputError and refused.value.param == "model"
    assert refused.value.message.startswith(f"cannot read {str(folder / 'model_index.json')!r}: {key} must be")


def test_malformed_model_index_exits_2_on_the_command_line(tmp_path, capsys):
    folder = demo_copy(tmp_path / "model", lambda d: {**d, "_class_name": ["DDPMPipeline"]})
    photo(64, 64).save(tmp_path / "photo.png")
    code, _, err = run(["edit", tmp_path / "photo.png", "--map", tmp_path / "photo.png", "--model", folder,
                        "-o", tmp_path / "out.png"], capsys)
    assert code == 2 and "'_class_name' must be a pipeline class name" in err and "internal error" not in err


def test_well_formed_model_index_entries_still_load(tmp_path):
    # null components, unknown keys and non-component values are diffusers' business, as before
    folder = demo_copy(tmp_path / "model", lambda d: {**d, "extra": [1, 2, 3], "flag": True})
    assert type(load_pipeline(str(folder), **CPU)).__name__ == "DDPMPipeline"


# --- a model folder whose name is not UTF-8 ---------------------------------------------------------------------


@pytest.fixture
def undecodable_model(tmp_path):
    name = tmp_path / os.fsdecode(b"model-\xff")  # a str with a surrogate escape, as Python reads such names
    try:
        return demo_copy(name)
    except (OSError, UnicodeError):
        pytest.skip("this file system does not take names that are not UTF-8")


def test_model_folder_with_undecodable_name_loads_and_edits(undecodable_model, tmp_path):
    model = str(undecodable_model)
    editor = Editor.from_pretrained(model, device="cpu")
    assert editor.model_id == model and editor.adapter.pipe.name_or_path == model  # not the path it loaded through
    strength = np.zeros((64, 64), np.float32)
    strength[16:48, 16:48] = 1.0
    result = editor.edit(photo(64, 64), strength_map=strength, num_inference_steps=20, strength=0.5,
                         guidance_scale=1.0, seed=3)
    assert result.metadata["model"] == model
    out = save_image(result.image, tmp_path / "out.png", result.metadata)
    assert read_metadata(out)["model"] == model
    with Image.open(out) as image:
        assert "Model: " in image.info["parameters"]


def test_model_folder_with_undecodable_name_on_the_command_line(undecodable_model, tmp_path, capsys):
    photo(64, 64).save(tmp_path / "photo.png")
    code, out, err = run(["edit", tmp_path / "photo.png", "--map", tmp_path / "photo.png", "--model",
                          undecodable_model, "--steps", 20, "--strength", 0.5, "--guidance", 1, "-o",
                          tmp_path / "out.png"], capsys)
    assert code == 0, err
    assert read_metadata(tmp_path / "out.png")["model"] == str(undecodable_model)


def test_undecodable_model_name_without_proc_is_refused_naming_it(undecodable_model, tmp_path, monkeypatch):
    monkeypatch.setattr(loading, "PROC_FD", str(tmp_path / "no-proc"))
    with pytest.raises(InputError) as refused:
        load_pipeline(str(undecodable_model), **CPU)
    assert refused.value.param == "model" and repr(str(undecodable_model)) in refused.value.message
    assert "valid UTF-8" in refused.value.message


