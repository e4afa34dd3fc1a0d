"""Check once: every front end reads each input file once, builds the checked job before any model loads, and
hands that job to the editor (`plan_edit` -> `Editor.run`)."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import box_map, photo
from PIL import Image

from pixels import EditJob, Editor, EditSession, Exemplar, InputError, plan_edit
from pixels.cli import main
from pixels.errors import PixelsNote
from pixels.inputs import images

FAST = ["--model", "demo", "--steps", "100", "--strength", "0.05", "--seed", "3", "-q"]  # 5 demo steps


@pytest.fixture
def decodes(monkeypatch) -> Counter:
    """How many times each image file is decoded."""
    opened: Counter = Counter()
    real = images._open

    def counting(path, name, max_pixels):
        opened[Path(path).resolve().name] += 1
        return real(path, name, max_pixels)

    monkeypatch.setattr(images, "_open", counting)
    return opened


@pytest.fixture(scope="module")
def editor() -> Editor:
    return Editor.from_pretrained("demo", device="cpu")


def files(folder: Path, *names: str) -> dict[str, str]:
    """Photos and maps on disk: names ending in -map are maps, the rest photos."""
    out = {}
    for k, name in enumerate(names):
        path = folder / f"{name}.png"
        if name.endswith("map"):
            Image.fromarray((box_map(48, 32, (8 + 4 * k, 4, 32, 28)) * 255).astype(np.uint8)).save(path)
        else:
            photo(48, 32, seed=k).save(path)
        out[name] = str(path)
    return out


def test_pixels_edit_reads_every_input_once(tmp_path, decodes):
    f = files(tmp_path, "source", "ex", "ex-map", "extra-map")
    code = main(["edit", f["source"], "-e", f["ex"], "-m", f["ex-map"], "--map", f["extra-map"], *FAST,
                 "-o", str(tmp_path / "out.png"), "--contact-sheet", str(tmp_path / "sheet.png")])
    assert code == 0 and (tmp_path / "out.png").exists()
    assert decodes == {"source.png": 1, "ex.png": 1, "ex-map.png": 1, "extra-map.png": 1}


def test_a_spec_run_reads_every_input_once(tmp_path, decodes):
    f = files(tmp_path, "source", "a", "a-map", "b", "b-map")
    spec = {"source": f["source"], "edits": [
        {"exemplars": [{"image": f["a"], "map": f["a-map"]}], "seed": 1},
        {"exemplars": [{"image": f["b"], "map": f["b-map"]}], "seed": 2},
    ]}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    code = main(["edit", "--spec", str(tmp_path / "spec.json"), *FAST, "-o", str(tmp_path / "out.png")])
    assert code == 0
    assert decodes == {"source.png": 1, "a.png": 1, "a-map.png": 1, "b.png": 1, "b-map.png": 1}


def test_a_batch_row_reads_every_input_once(tmp_path, decodes):
    f = files(tmp_path, "source", "ex", "ex-map")
    rows = [{"source": f["source"], "exemplars": [{"image": f["ex"], "map": f["ex-map"]}], "output": "one.png",
             "steps": 100, "strength": 0.05, "seed": 3}]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    code = main(["batch", str(tmp_path / "rows.jsonl"), "-o", str(tmp_path / "out"), "--model", "demo", "-q"])
    assert code == 0 and (tmp_path / "out" / "one.png").exists()
    assert decodes == {"source.png": 1, "ex.png": 1, "ex-map.png": 1}


def test_a_studio_edit_reads_every_input_once(editor, tmp_path, decodes):
    from pixels.app import context
    from pixels.app import handlers as h
    from pixels.app import painting
    from pixels.app.exemplars import Slot

    f = files(tmp_path, "source", "ex")
    ctx = context.create(editor, "demo", root=tmp_path / "app")
    try:
        st = ctx.sessions.open("browser")
        h.use_photo(ctx, st, f["source"], name="source.png")
        paint = np.zeros((32, 48))
        paint[4:28, 8:40] = 1.0
        view = h.run_edit(ctx, st, None, {"map": painting.map_url(paint)}, 0,
                          [Slot(f["ex"])], {"steps": 100, "strength": 0.05, "guidance": 1.0, "seed": "7"})
        assert view.result is not None and view.result.seed == 7
    finally:
        ctx.close()
    assert decodes == {"source.png": 1, "ex.png": 1}


def test_a_job_runs_as_the_edit_it_plans(editor):
    source, exemplar = photo(48, 32), photo(48, 32, seed=5)
    where = box_map(48, 32, (8, 4, 40, 28))
    job = plan_edit(source, [Exemplar(exemplar, where)], num_inference_steps=100, strength=0.05, seed=4)
    assert isinstance(job, EditJob) and job.seed == 4 and job.settings.num_inference_steps == 100
    ran = editor.run(job)
    edited = editor.edit(source, [Exemplar(exemplar, where)], num_inference_steps=100, strength=0.05, seed=4)
    assert np.array_equal(np.asarray(ran.image), np.asarray(edited.image))
    assert np.array_equal(np.asarray(editor.run(job).image), np.asarray(ran.image))  # a job runs the same twice
    drawn = plan_edit(source, num_inference_steps=100, strength=0.05)  # no seed: drawn once, when planned
    assert drawn.seed is not None and editor.run(drawn).metadata["seed"] == drawn.seed


def test_planning_needs_no_model_and_says_every_input_error_first(tmp_path):
    with pytest.raises(InputError) as error:
        plan_edit(photo(48, 32), [Exemplar(str(tmp_path / "missing.png"), box_map(48, 32))])
    assert error.value.param == "exemplars[0]"
    with pytest.raises(InputError) as error:
        plan_edit(photo(48, 32), num_inference_steps=0)
    assert error.value.param == "num_inference_steps"


def test_notes_come_back_on_the_job_and_the_result_and_as_warnings(editor):
    small = photo(24, 16, seed=2)  # fitted into its map's area: a note
    job = plan_edit(photo(48, 32), [Exemplar(small, box_map(48, 32))], num_inference_steps=100, strength=0.05,
                    seed=1)
    assert any("24x16 fitted (cover)" in text for text in job.notes)
    said: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", PixelsNote)  # run() says the model's notes to on_note, not as warnings
        result = editor.run(job, on_note=said.append)
    assert set(job.notes) <= set(result.metadata["notes"])
    assert set(said) == set(result.metadata["notes"]) - set(job.notes)
    with pytest.warns(PixelsNote, match="24x16 fitted"):
        editor.edit(photo(48, 32), [Exemplar(small, box_map(48, 32))], num_inference_steps=100, strength=0.05,
                    seed=1)


def test_a_chained_job_places_its_exemplars_on_the_previous_result(editor):
    source, exemplar = photo(48, 32), photo(48, 32, seed=9)
    box = (4, 4, 20, 16)
    first = plan_edit(source, num_inference_steps=100, strength=0.05, seed=1)
    second = plan_edit(source, [Exemplar(exemplar, box=box)], num_inference_steps=100, strength=0.05, seed=2)
    session = EditSession(editor, source)
    session.apply(first)
    chained = session.apply(second)
    alone = EditSession(editor, source)
    alone.apply(num_inference_steps=100, strength=0.05, seed=1)
    direct = alone.apply([Exemplar(exemplar, box=box)], num_inference_steps=100, strength=0.05, seed=2)
    assert np.array_equal(np.asarray(chained.image), np.asarray(direct.image))
    # the exemplar's canvas outside its box is the previous result, not the first source
    placed = np.asarray(chained.exemplars[0])
    assert np.array_equal(placed[20:, 30:], np.asarray(session.images[1])[20:, 30:])
    with pytest.raises(InputError) as error:
        session.apply(second, prompt="also")
    assert error.value.param == "job"
