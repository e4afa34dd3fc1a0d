"""What a new user meets first: recommended settings per model, notes instead of silent no-ops, metadata in
every output format, helpful refusals, and `pixels evaluate` without surprises."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import box_map, photo
from conftest import run_cli as run
from PIL import Image

from pixels import Editor, Exemplar
from pixels.cli import main
from pixels.errors import PixelsNote
from pixels.models.estimate import cost_note
from pixels.outputs.sheet import caption
from pixels.outputs.writers import read_metadata, save_image


@pytest.fixture
def files(tmp_path):
    photo(48, 32, seed=1).save(tmp_path / "source.png")
    photo(20, 20, seed=2).save(tmp_path / "exemplar.png")
    Image.fromarray((box_map(48, 32, box=(8, 8, 24, 24)) * 255).astype(np.uint8)).save(tmp_path / "where.png")
    return tmp_path


def test_short_model_names_bring_their_recommended_settings(files, capsys):
    out = files / "out.png"
    code, _, err = run(["edit", files / "source.png", "--model", "demo", "--map", files / "where.png", "--seed", 1,
                        "-o", out], capsys)
    assert code == 0, err
    assert "demo: using its recommended settings --steps 100 --strength 0.15 --guidance 1" in err
    metadata = read_metadata(out)
    assert (metadata["num_inference_steps"], metadata["strength"], metadata["guidance_scale"]) == (100, 0.15, 1.0)
    # a flag wins over the recommendation, and the note says only what is still taken from it
    code, _, err = run(["edit", files / "source.png", "--model", "demo", "--map", files / "where.png",
                        "--strength", 0.3, "--seed", 1, "-o", files / "b.png"], capsys)
    assert code == 0 and "--strength" not in err.split("recommended settings")[1].split("(")[0]
    assert read_metadata(files / "b.png")["strength"] == 0.3


def test_settings_a_model_does_not_use_are_named(files, capsys):
    code, _, err = run(["edit", files / "source.png", "--model", "demo", "--map", files / "where.png",
                        "--guidance", 5, "--scheduler", "euler", "--eta", 0.5, "--dtype", "fp16", "--steps", 20,
                        "--strength", 0.3, "-o", files / "o.png"], capsys)
    assert code == 0, err
    assert "guidance_scale 5 is ignored: this pixel model runs without guidance" in err
    assert "eta 0.5 is ignored: EulerDiscreteScheduler takes no eta" in err
    assert "float16 on the CPU is slow" in err
    notes = read_metadata(files / "o.png")["notes"]
    assert any("guidance_scale 5 is ignored" in n for n in notes) and any("eta 0.5" in n for n in notes)


def test_an_exemplar_map_that_never_reaches_1_is_never_grafted_and_says_so(files, capsys, sd_pipe):
    Image.new("RGB", (48, 32), (255, 0, 0)).save(files / "red.png")  # painted red: luminance 0.299
    code, _, err = run(["edit", files / "source.png", "--model", "demo", "-e", files / "exemplar.png", "-m",
                        files / "red.png", "--steps", 20, "--strength", 0.3, "-o", files / "o.png"], capsys)
    assert code == 0 and "never reaches full strength (at most 0.299)" in err and "--mode blend" in err
    with pytest.warns(PixelsNote, match="never reaches full strength"):
        Editor.from_pipe(sd_pipe).edit(photo(32, 32), exemplars=[Exemplar(photo(32, 32, seed=3), box_map(value=0.8))],
                                       num_inference_steps=2, seed=1)
    code, _, err = run(["edit", files / "source.png", "--model", "demo", "-e", files / "exemplar.png", "-m",
                        files / "red.png", "--mode", "blend", "--steps", 20, "--strength", 0.3, "-o", files / "p.png"],
                       capsys)
    assert code == 0 and "never reaches full strength" not in err  # blend mode mixes gray strengths in


def test_an_exemplar_without_a_region_is_refused_with_the_ways_to_give_one(files, capsys):
    code, _, err = run(["edit", files / "source.png", "--model", "demo", "-e", files / "exemplar.png",
                        "-o", files / "o.png"], capsys)
    assert code == 2 and "exemplars[0]: no strength_map, no alpha channel and no box" in err
    assert "-m MAP" in err and "EXEMPLAR@X,Y,W,H" in err


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_every_output_format_carries_the_settings(files, capsys, suffix):
    out = files / f"out{suffix}"
    code, stdout, err = run(["edit", files / "source.png", "--model", "demo", "--map", files / "where.png",
                             "--steps", 20, "--strength", 0.3, "-q", "-o", out], capsys)
    assert code == 0 and stdout == "" and err == ""
    metadata = read_metadata(out)
    assert isinstance(metadata["seed"], int) and metadata["num_inference_steps"] == 20  # the random seed is kept
    with Image.open(out) as image:
        if suffix == ".png":
            assert image.info["parameters"].startswith("Steps: 20")  # empty prompt: no empty first line
        else:
            comment = image.getexif().get_ifd(0x8769)[0x9286]
            assert comment.startswith(b"UNICODE\0") and "Steps: 20" in comment[8:].decode("utf-16-be")


def test_read_metadata_of_images_pixels_did_not_write(tmp_path):
    photo(8, 8).save(tmp_path / "plain.png")
    photo(8, 8).save(tmp_path / "plain.jpg")
    assert read_metadata(tmp_path / "plain.png") is None and read_metadata(tmp_path / "plain.jpg") is None
    save_image(photo(8, 8), tmp_path / "with.webp", {"seed": 3, "prompt": "é"})
    assert read_metadata(tmp_path / "with.webp") == {"seed": 3, "prompt": "é"}


def test_a_slow_edit_is_announced_before_it_runs(sd_pipe, monkeypatch):
    assert cost_note((2000, 3000), 32) is not None and "crop='auto'" in cost_note((2000, 3000), 32)
    assert cost_note((1024, 1024), 512) is None and cost_note((2048, 2048), 1024) is None
    monkeypatch.setattr("pixels.editor.cost_note", lambda frame, native: f"slow: {frame}")
    with pytest.warns(PixelsNote, match=r"slow: \(32, 32\)"):
        result = Editor.from_pipe(sd_pipe).edit(photo(32, 32), strength_map=box_map(), num_inference_steps=2, seed=1)
    assert "slow: (32, 32)" in result.metadata["notes"]


def test_the_contact_sheet_caption_has_the_schedule():
    text = caption({"model": "m", "num_inference_steps": 100, "strength": 1.0, "denoising_start": 0.6, "seed": 3,
                    "mode": "paper", "prompt": ""})
    assert "denoising_start=0.6" in text and "num_inference_steps=100" in text and "prompt" not in text


def test_help_without_a_command_and_the_model_help(capsys):
    assert main([]) == 2
    said = capsys.readouterr()
    assert said.out == "" and "COMMAND" in said.err and "give a command: edit, batch" in said.err  # on stderr
    with pytest.raises(SystemExit):
        main(["edit", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "short name (pixels models)" in help_text


def test_evaluate_is_quiet_about_models_nobody_asked_for_and_places_the_exemplar(files, capsys):
    """Without --clip/--dino nothing is said of models that are not cached; an exemplar of another size goes
    into the box the result's metadata records, as the edit placed it."""
    out = files / "out.png"
    assert run(["edit", files / "source.png", "--model", "demo", "-e", f"{files / 'exemplar.png'}@8,8,16,16",
                "--steps", 20, "--strength", 0.3, "-q", "-o", out], capsys)[0] == 0
    Image.fromarray((box_map(48, 32, box=(8, 8, 24, 24)) * 255).astype(np.uint8)).save(files / "region.png")
    code, stdout, err = run(["evaluate", out, "--source", files / "source.png", "--map", files / "region.png",
                             "--exemplar", files / "exemplar.png", "--json"], capsys)
    assert code == 0, err
    assert "skipped" not in err and "placed into the box (8, 8, 16, 16)" in err
    report = json.loads(stdout)
    # the placed exemplar is what was grafted: closer to the result than the stretched one would be
    assert report["exemplar"]["psnr"] > report["exemplar_in_source"]["psnr"]
    code, _, err = run(["evaluate", out, "--source", files / "source.png", "--map", files / "region.png",
                        "--exemplar", files / "exemplar.png", "--clip", files / "no-such-clip"], capsys)
    assert code == 0 and "CLIP skipped" in err  # a model asked for by name is reported when missing
