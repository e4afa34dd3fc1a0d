"""`pixels edit` and the library under it where they used to go wrong: a bad exemplar box, a step count that
runs nothing at the model's recommended strength, malformed model_index.json files, model folders whose names
are not UTF-8, and the A1111 `parameters` text."""

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
from pixels.cli import build_parser
from pixels.core.schedulers import SCHEDULERS
from pixels.errors import InputError
from pixels.models import loading
from pixels.models.loading import load_pipeline
from pixels.outputs.writers import parameters_text, read_metadata, save_image

CPU = dict(device=torch.device("cpu"), dtype=torch.float32)
DEMO = Path(str(resources.files("pixels").joinpath("demo", "weights")))


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
        # path, map, box, condition, cut-out, prompt, negative prompt
        assert args.exemplars == [[name, None, None, 0.0, None, None, None, {}]]


# --- steps that run nothing -----------------------------------------------------------------------------------

def test_steps_that_run_nothing_are_refused_naming_the_fix():
    editor = Editor.from_pretrained("demo", device="cpu")
    edit = dict(source=photo(32, 32), strength_map=np.ones((32, 32)), seed=0)
    with pytest.raises(InputError, match=r"^strength: 4 steps at strength 0.15 run int\(4 x 0.15\) = 0 denoising"
                                         r" steps; give at least 7 steps or a strength of at least 0.25$"):
        editor.edit(**edit, num_inference_steps=4, strength=0.15)
    for steps, strength in ((7, 0.15), (4, 0.25)):  # the smallest fixes it names run one step
        assert editor.edit(**edit, num_inference_steps=steps, strength=strength).metadata["steps_run"] == 1


def test_flow_models_round_their_truncation_otherwise_and_run_those_steps():
    from diffusers import FlowMatchEulerDiscreteScheduler

    from pixels.adapters.flow import flow_img2img_timesteps

    scheduler = FlowMatchEulerDiscreteScheduler()
    scheduler.set_timesteps(4)
    assert len(flow_img2img_timesteps(scheduler, 4, 0.15)) == 1  # int(4 - 0.6) = 3 skipped: one step runs


def test_recommended_strength_that_runs_nothing_says_it_came_from_the_model(tmp_path, capsys):
    photo(64, 64).save(tmp_path / "photo.png")
    photo(64, 64, seed=1).save(tmp_path / "ex.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(tmp_path / "map.png")
    edit = ["edit", tmp_path / "photo.png", "-e", tmp_path / "ex.png", "-m", tmp_path / "map.png", "--model", "demo",
            "-o", tmp_path / "out.png"]
    code, _, err = run([*edit, "--steps", "4"], capsys)
    assert code == 2 and not (tmp_path / "out.png").exists()
    assert "--strength: 4 steps at strength 0.15 run int(4 x 0.15) = 0 denoising steps; give at least 7 steps" in err
    assert "(--strength 0.15 is demo's recommended setting, not one you gave" in err
    code, _, err = run([*edit, "--steps", "4", "--strength", "0.1"], capsys)
    assert code == 2 and "strength 0.1 run" in err and "recommended setting, not" not in err  # the user's own value
    code, _, err = run([*edit, "--steps", "7"], capsys)
    assert code == 0 and (tmp_path / "out.png").exists()  # the fix the message names runs


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


# --- the A1111 `parameters` text --------------------------------------------------------------------------------


def test_pixels_scheduler_choices_have_their_a1111_names():
    from pixels.core.schedulers import a1111_sampler

    names = {key: a1111_sampler(cls, overrides) for key, (cls, overrides) in SCHEDULERS.items()}
    assert names == {"ddim": "DDIM", "euler": "Euler", "euler-a": "Euler a", "dpm++2m": "DPM++ 2M"}


def test_scheduler_classes_and_karras_sigmas_map_to_a1111_names():
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler

    from pixels.core.schedulers import a1111_sampler

    assert a1111_sampler("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}) == "DPM++ 2M Karras"
    assert a1111_sampler("EulerDiscreteScheduler", EulerDiscreteScheduler(use_karras_sigmas=True).config) \
        == "Euler Karras"
    sde = DPMSolverMultistepScheduler(algorithm_type="sde-dpmsolver++")
    assert a1111_sampler(type(sde).__name__, sde.config) == "DPM++ 2M SDE"
    for cls, name in [("DPMSolverSDEScheduler", "DPM++ SDE"), ("UniPCMultistepScheduler", "UniPC"),
                      ("LMSDiscreteScheduler", "LMS"), ("HeunDiscreteScheduler", "Heun"), ("DDPMScheduler", "DDPM"),
                      ("PNDMScheduler", "PLMS"), ("FlowMatchEulerDiscreteScheduler", "Flow Match Euler"),
                      ("DDIMScheduler", "DDIM"), ("EulerAncestralDiscreteScheduler", "Euler a")]:
        assert a1111_sampler(cls) == name
    assert a1111_sampler("DDIMScheduler", {"use_karras_sigmas": True}) == "DDIM"  # no Karras variant
    assert a1111_sampler("DEISMultistepScheduler") == "DEISMultistepScheduler"  # A1111 has no name for it
    assert a1111_sampler(None) is None


def metadata(**changes) -> dict:
    return {"prompt": "", "negative_prompt": None, "num_inference_steps": 20, "scheduler_class": "DDIMScheduler",
            "guidance_scale": 7.5, "seed": 5, "size": [64, 48], "model": "demo", "strength": 0.5, "mode": "paper",
            "exemplars": [], **changes}


def test_parameters_text_reads_back_as_a1111_metadata():
    text = parameters_text(metadata(prompt="a red fox, in snow", negative_prompt="blur, text",
                                    scheduler_class="EulerAncestralDiscreteScheduler", model="/models/a, b"))
    prompt, negative, pairs = parse_a1111(text)
    assert (prompt, negative) == ("a red fox, in snow", "blur, text")
    assert pairs["Sampler"] == "Euler a" and pairs["Steps"] == "20" and pairs["Seed"] == "5"
    assert pairs["Size"] == "64x48" and pairs["Model"] == "/models/a, b" and pairs["Denoising strength"] == "0.5"


def test_parameters_text_with_an_empty_prompt_starts_with_the_settings():
    text = parameters_text(metadata())
    assert text.startswith("Steps: 20, Sampler: DDIM, ") and "\n" not in text
    assert parse_a1111(text)[:2] == ("", None)
    text = parameters_text(metadata(negative_prompt="blur"))
    assert text.startswith("Negative prompt: blur\nSteps: 20")
    assert parse_a1111(text)[:2] == ("", "blur")


def test_written_result_has_a1111_sampler_name(tmp_path, capsys):
    source = tmp_path / "photo.png"
    photo(64, 64).save(source)
    code, _, err = run(["edit", source, "--map", source, "--model", "demo", "--steps", 20, "--strength", 0.5,
                        "--scheduler", "euler-a", "--seed", 1, "-o", tmp_path / "out.png"], capsys)
    assert code == 0, err
    with Image.open(tmp_path / "out.png") as image:
        text = image.info["parameters"]
    prompt, negative, pairs = parse_a1111(text)
    assert text.startswith("Steps: 20, Sampler: Euler a, ") and (prompt, negative) == ("", None)
    assert pairs["Model"] == "demo" and pairs["Seed"] == "1"
