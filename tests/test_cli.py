"""`pixels edit` end to end on a tiny model saved to disk: outputs, metadata, exit codes, no partial files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import box_map, photo
from conftest import run_cli as run
from PIL import Image

from pixels import Editor, Exemplar
from pixels.cli import main


@pytest.fixture
def files(tmp_path):
    """A source photo, an exemplar of another size and a box map, as files."""
    source, exemplar, where = tmp_path / "source.png", tmp_path / "exemplar.png", tmp_path / "where.png"
    photo(40, 30, seed=1).save(source)
    photo(64, 64, seed=2).save(exemplar)
    Image.fromarray((box_map(40, 30, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save(where)
    return tmp_path, source, exemplar, where


def edit_args(sd_folder, source, output, *extra):
    return ["edit", source, "--model", sd_folder, "--steps", 4, "--seed", 7, "-o", output, *extra]


def test_edit_writes_png_with_metadata_and_matches_the_api(sd_folder, files, capsys):
    tmp, source, exemplar, where = files
    out = tmp / "out.png"
    code, stdout, stderr = run(edit_args(sd_folder, source, out, "-e", exemplar, "-m", where, "--prompt", "fox",
                                         "--strength", 0.75, "--guidance", 3), capsys)
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and "seed 7" in stdout
    assert "exemplars[0]: 64x64 fitted (cover) into its map's edited area, box (4, 4, 16, 16)" in stderr
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    with Image.open(out) as image:
        assert image.size == (40, 30)
        info = dict(image.info)
        pixels = np.asarray(image.convert("RGB"))
    metadata = json.loads(info["pixels"])
    assert metadata["seed"] == 7 and metadata["prompt"] == "fox" and metadata["strength"] == 0.75
    assert metadata["model"] == str(sd_folder) and metadata["family"] == "sd"
    assert metadata["exemplars"] == [{"image": str(exemplar), "strength_map": str(where), "box": [4, 4, 16, 16],
                                      "fit": "cover", "condition": 0.0}]
    assert info["parameters"].startswith("fox\nSteps: 4, Sampler: DDIM, CFG scale: 3.0, Seed: 7")
    # The command line and the Python API give the same pixels for the same settings.
    editor = Editor.from_pretrained(str(sd_folder), device="cpu")
    with pytest.warns(UserWarning):
        api = editor.edit(str(source), exemplars=[Exemplar(str(exemplar), str(where))], prompt="fox",
                          num_inference_steps=4, strength=0.75, guidance_scale=3.0, seed=7)
    assert np.array_equal(pixels, np.asarray(api.image))
    # strength-0 pixels are the source's, bit for bit
    keep = box_map(40, 30, box=(4, 4, 20, 20)) == 0
    assert np.array_equal(pixels[keep], np.asarray(Image.open(source))[keep])


def test_existing_output_is_not_overwritten_without_flag(sd_folder, files, capsys):
    tmp, source, _, _ = files
    out = tmp / "out.png"
    out.write_bytes(b"precious")
    code, _, stderr = run(edit_args(sd_folder, source, out), capsys)
    assert code == 2 and "exists; pass --overwrite" in stderr
    assert out.read_bytes() == b"precious"
    code, _, stderr = run(edit_args(sd_folder, source, out, "--overwrite", "-q"), capsys)
    assert code == 0, stderr
    with Image.open(out) as image:
        assert image.size == (40, 30)


def test_source_is_never_the_output_without_flag(sd_folder, files, capsys):
    _, source, _, _ = files
    before = source.read_bytes()
    code, _, stderr = run(edit_args(sd_folder, source, source), capsys)
    assert code == 2 and "exists" in stderr and source.read_bytes() == before


def test_quiet_prints_nothing_and_jpeg_output(sd_folder, files, capsys):
    tmp, source, _, where = files
    out = tmp / "out.jpg"
    code, stdout, stderr = run(edit_args(sd_folder, source, out, "--map", where, "-q", "--scheduler", "euler"), capsys)
    assert code == 0 and stdout == "" and stderr == ""
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (40, 30)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", 0], "--steps: expected an integer in [1, 10000], got 0"),
        (["--strength", 1.5], "--strength: must lie in (0, 1], got 1.5"),
        (["--strength", 0], "--strength: must lie in (0, 1], got 0"),
        (["--denoising-start", 1.0], "--denoising-start: must lie in (0, 1)"),
        (["--scheduler", "plms"], "scheduler: unknown scheduler 'plms'"),
        (["--device", "tpu"], "device: unknown device 'tpu'"),
        (["--dtype", "int8"], "dtype: unknown dtype 'int8'"),
        (["-e", "{tmp}/missing.png", "-m", "{where}"], "exemplars[0]: no such file"),
        (["-e", "{source}"], "exemplars[0]: no strength_map, no alpha channel and no box"),
        (["--map", "{tmp}/notes.txt"], "--map: "),
        (["--map", "{tmp}/float.tif"], "--map: float values must lie in [0, 1]"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(sd_folder, files, capsys, extra, message):
    tmp, source, _, where = files
    (tmp / "notes.txt").write_text("not an image")
    Image.fromarray(np.full((30, 40), 3.0, np.float32), "F").save(tmp / "float.tif")
    extra = [str(a).format(tmp=tmp, where=where, source=source) for a in extra]
    out = tmp / "out.png"
    code, stdout, stderr = run(edit_args(sd_folder, source, out, *extra), capsys)
    assert code == 2 and message in stderr, stderr
    assert "Traceback" not in stderr and not out.exists()
    assert sorted(p.name for p in tmp.iterdir()) == ["exemplar.png", "float.tif", "notes.txt", "source.png",
                                                     "where.png"]


def test_unreadable_source_and_bad_output_paths(sd_folder, files, capsys):
    tmp, source, _, _ = files
    broken = tmp / "broken.png"
    broken.write_bytes(source.read_bytes()[:200])
    code, _, stderr = run(edit_args(sd_folder, broken, tmp / "a.png"), capsys)
    assert code == 2 and "source: " in stderr and "truncated or corrupt" in stderr
    code, _, stderr = run(edit_args(sd_folder, source, tmp / "a.gif"), capsys)
    assert code == 2 and "unsupported extension" in stderr
    code, _, stderr = run(edit_args(sd_folder, source, tmp / "no" / "a.png"), capsys)
    assert code == 2 and "does not exist" in stderr
    assert not (tmp / "a.png").exists()


def test_map_options_are_tied_to_their_exemplar(sd_folder, files, capsys):
    tmp, source, exemplar, where = files
    with pytest.raises(SystemExit) as exit_info:
        main(["edit", str(source), "-m", str(where), "--model", str(sd_folder), "-o", str(tmp / "a.png")])
    assert exit_info.value.code == 2
    assert "a map must follow the -e EXEMPLAR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["edit", str(source), "-e", str(exemplar), "-m", str(where), "-m", str(where), "--model", "x",
              "-o", str(tmp / "a.png")])
    assert "already has the map" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(files, capsys, monkeypatch):
    tmp, source, _, _ = files
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, stderr = run(["edit", source, "--model", tmp / "no-such-model", "-o", tmp / "a.png"], capsys)
    assert code == 2 and "no such file or folder" in stderr
    code, _, stderr = run(["edit", source, "--model", "someone/not-cached-model", "--offline", "-o", tmp / "a.png"],
                          capsys)
    assert code == 2 and "hf download someone/not-cached-model" in stderr and "a local diffusers folder" in stderr
    assert "Traceback" not in stderr and not (tmp / "a.png").exists()


def test_failure_while_running_exits_1_without_output(sd_folder, files, capsys, monkeypatch):
    tmp, source, _, _ = files

    def broken(self, *args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr("pixels.adapters.base.Adapter.predict", broken)
    code, _, stderr = run(edit_args(sd_folder, source, tmp / "a.png"), capsys)
    assert code == 1 and "internal error: RuntimeError: simulated failure" in stderr and "--debug" in stderr
    assert "Traceback" not in stderr and not (tmp / "a.png").exists()
    code, _, stderr = run(edit_args(sd_folder, source, tmp / "a.png", "--debug"), capsys)
    assert code == 1 and "Traceback" in stderr and "simulated failure" in stderr


def test_out_of_memory_is_a_user_facing_error(sd_folder, files, capsys, monkeypatch):
    tmp, source, _, _ = files

    def exhausted(self, *args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

    monkeypatch.setattr("pixels.adapters.base.Adapter.predict", exhausted)
    code, _, stderr = run(edit_args(sd_folder, source, tmp / "a.png"), capsys)
    assert code == 2 and "memory: the edit ran out of memory on cpu" in stderr and "--crop auto" in stderr
    assert not (tmp / "a.png").exists()


def test_module_entry_point_and_version():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "pixels", "--version"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip().startswith("pixels ")
    done = subprocess.run([sys.executable, "-m", "pixels", "edit"], capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "required" in done.stderr


def test_exemplar_box_and_fit_from_the_command_line(sd_folder, files, capsys):
    tmp, source, exemplar, _ = files
    out = tmp / "out.png"
    code, _, stderr = run(edit_args(sd_folder, source, out, "-e", f"{exemplar}@2,3,12,10", "--fit", "contain"), capsys)
    assert code == 0, stderr
    with Image.open(out) as image:
        metadata = json.loads(image.info["pixels"])
        pixels = np.asarray(image.convert("RGB"))
    assert metadata["exemplars"] == [{"image": str(exemplar), "strength_map": None, "box": [2, 3, 12, 10],
                                      "fit": "contain", "condition": 0.0}]
    # contain: a square exemplar in a 12x10 box covers columns 3..12 and rows 3..12; nothing else changes
    covered = np.zeros((30, 40), bool)
    covered[3:13, 3:13] = True
    assert np.array_equal(pixels[~covered], np.asarray(Image.open(source))[~covered])
    code, _, stderr = run(edit_args(sd_folder, source, tmp / "b.png", "-e", f"{exemplar}@50,50,4,4"), capsys)
    assert code == 2 and "exemplars[0].box: (50, 50, 4, 4) lies entirely outside the 40x30 source" in stderr


def test_contact_sheet_and_text_only_region_in_one_pass(sd_folder, files, capsys):
    """An exemplar region and a prompt-only region (--map) in the same edit, plus the contact sheet."""
    tmp, source, exemplar, where = files
    text_region = tmp / "text.png"
    Image.fromarray((box_map(40, 30, box=(26, 10, 38, 26)) * 255).astype(np.uint8)).save(text_region)
    out, sheet = tmp / "out.png", tmp / "sheet.png"
    code, _, stderr = run(edit_args(sd_folder, source, out, "-e", exemplar, "-m", where, "--map", text_region,
                                    "--prompt", "moss", "--contact-sheet", sheet), capsys)
    assert code == 0, stderr
    pixels, src = np.asarray(Image.open(out).convert("RGB")), np.asarray(Image.open(source))
    exemplar_area, text_area = box_map(40, 30, box=(4, 4, 20, 20)) > 0, box_map(40, 30, box=(26, 10, 38, 26)) > 0
    untouched = ~(exemplar_area | text_area)
    assert np.array_equal(pixels[untouched], src[untouched])
    assert not np.array_equal(pixels[exemplar_area], src[exemplar_area])
    assert not np.array_equal(pixels[text_area], src[text_area])
    with Image.open(sheet) as image:
        assert image.width > 3 * 200  # source, map, exemplar and result tiles side by side
    code, _, stderr = run(edit_args(sd_folder, source, tmp / "c.png", "--contact-sheet", tmp / "c.png"), capsys)
    assert code == 2 and "--contact-sheet: must differ" in stderr


def test_every_command_that_loads_a_model_has_the_same_model_flags():
    from pixels.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    shared = ("--model", "--device", "--dtype", "--allow-unsafe-pickle", "--offline")

    def flags(name):
        return {option: (action.help, action.default) for action in commands[name]._actions
                for option in action.option_strings if option in shared}

    edit = flags("edit")
    assert set(edit) == set(shared)
    assert flags("batch") == edit
    app = flags("app")  # the studio loads the bundled demo model unless told otherwise
    assert set(app) == set(shared) and app["--model"][1] == "demo"
    assert {k: v for k, v in app.items() if k != "--model"} == {k: v for k, v in edit.items() if k != "--model"}
    args = build_parser().parse_args(["app", "--dtype", "fp32", "--allow-unsafe-pickle"])
    assert (args.model, args.dtype, args.allow_unsafe_pickle) == ("demo", "fp32", True)
