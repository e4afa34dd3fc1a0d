"""The bundled demo model and `pixels demo` / `pixels evaluate`: a trained model, measured edit quality."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixels import Editor, Exemplar, demo
from pixels.cli import main
from pixels.eval.metrics import evaluate, exemplar_fidelity

DEMO_FILES = ["source.png", "exemplar.png", "map.png", "naive_paste.png", "result.png", "contact_sheet.png"]


@pytest.fixture(scope="module")
def editor():
    return Editor.from_pretrained("demo", device="cpu")


@pytest.fixture(scope="module")
def demo_edit(editor):
    source, exemplar, strength = demo.inputs()
    settings = demo.DemoSettings()
    kwargs = dict(num_inference_steps=settings.num_inference_steps, strength=settings.strength, seed=settings.seed,
                  guidance_scale=1.0)
    with_exemplar = editor.edit(source, exemplars=[Exemplar(exemplar, strength)], **kwargs)
    without = editor.edit(source, strength_map=strength, **kwargs)
    return source, exemplar, strength, with_exemplar, without


def test_bundled_model_is_small_and_loads_through_the_adapter_seam(editor):
    folder = Path(str(resources.files("pixels").joinpath("demo", "weights")))
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 25 * 2**20
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "DDPMPipeline"
    assert (folder / "training.json").is_file()  # the recipe that produced the weights
    assert editor.adapter.family == "pixel" and editor.model_id == "demo"


def test_demo_edit_keeps_background_and_blends_better_than_a_paste(demo_edit):
    source, exemplar, strength, result, _ = demo_edit
    report = evaluate(result.image, source, strength, exemplar)
    assert report["background"]["max_error"] == 0 and report["background"]["pixels"] > 0
    assert report["seam_vs_paste"]["result"] < report["seam_vs_paste"]["naive_paste"]


def test_exemplar_survives_where_it_was_grafted(demo_edit):
    source, exemplar, strength, with_exemplar, without = demo_edit
    graft = strength >= 1.0
    kept = exemplar_fidelity(with_exemplar.image, exemplar, graft)
    absent = exemplar_fidelity(without.image, exemplar, graft)
    assert kept["psnr"] > absent["psnr"] + 3 and kept["colour_distance"] < absent["colour_distance"] / 2


def test_demo_is_deterministic(editor, demo_edit):
    source, exemplar, strength, result, _ = demo_edit
    settings = demo.DemoSettings()
    again = editor.edit(source, exemplars=[Exemplar(exemplar, strength)], strength=settings.strength,
                        num_inference_steps=settings.num_inference_steps, seed=settings.seed, guidance_scale=1.0)
    assert np.array_equal(np.asarray(again.image), np.asarray(result.image))


def test_demo_command_writes_its_files_and_refuses_to_clobber(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "seam_vs_paste" in stdout and "background" in stdout and str(out) in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(DEMO_FILES)
    with Image.open(out / "result.png") as image:
        assert image.size == (192, 128) and json.loads(image.info["pixels"])["model"] == "demo"
    before = (out / "result.png").read_bytes()
    assert main(["demo", "-o", str(out), "--steps", "20"]) == 2
    assert "pass --overwrite" in capsys.readouterr().err and (out / "result.png").read_bytes() == before


def test_evaluate_command_on_the_demo_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--steps", "10", "-q"]) == 0
    capsys.readouterr()
    files = {name: str(out / name) for name in DEMO_FILES}
    code = main(["evaluate", files["result.png"], "--source", files["source.png"], "--map", files["map.png"],
                 "--exemplar", files["exemplar.png"], "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["background"]["max_error"] == 0 and report["background"]["psnr"] is None
    assert report["seam_vs_paste"]["ratio"] > 0
    code = main(["evaluate", files["contact_sheet.png"], "--source", files["source.png"], "--map", files["map.png"]])
    assert code == 2 and "--source: size" in capsys.readouterr().err


def test_unconditional_model_refuses_a_prompt(tmp_path, capsys):
    Image.new("RGB", (16, 16), "gray").save(tmp_path / "s.png")
    code = main(["edit", str(tmp_path / "s.png"), "--model", "demo", "--prompt", "a cat", "--steps", "2",
                 "--strength", "1",
                 "-o", str(tmp_path / "o.png")])
    assert code == 2 and "unconditional" in capsys.readouterr().err and not (tmp_path / "o.png").exists()


def test_blend_mode_exemplar_influence_rises_with_the_map(editor):
    """mode="blend": along a left-to-right gradient map, the result moves towards the exemplar more and more."""
    from pixels.inputs import maps

    source = demo.asset("rocket.png")
    exemplar = Image.new("RGB", source.size, (230, 150, 60))
    gradient = maps.linear(source.size, (0, 0), (source.width, 0))
    kwargs = dict(strength_map=None, num_inference_steps=50, strength=0.3, seed=0, guidance_scale=1.0)

    def influence(mode: str) -> np.ndarray:
        out = editor.edit(source, exemplars=[Exemplar(exemplar, gradient)], mode=mode, **kwargs)
        moved = np.abs(np.asarray(out.image, float) - np.asarray(source, float)).mean(axis=(0, 2))
        gap = np.abs(np.asarray(exemplar, float) - np.asarray(source, float)).mean(axis=(0, 2))
        return np.array([moved[k:k + 24].mean() / gap[k:k + 24].mean() for k in range(0, 192, 24)])

    blend, paper = influence("blend"), influence("paper")
    assert np.all(np.diff(blend) > 0), blend  # monotone in the map value, bands of 24 columns
    assert blend[-1] > 0.5 and blend[3] > 2 * paper[3]  # paper mode's gray pixels only regenerate the source
