"""Selections wherever a map is accepted: `strength_map=Select(...)` for the edit and for an exemplar, and
`map: {text: ..., points: ...}` in spec files; found on the photo when the edit is read, recorded in its metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import photo
from PIL import Image
from test_select import fresh_cache, tiny  # noqa: F401 - fixtures

from pixels import Editor, Exemplar, plan_edit
from pixels.errors import InputError
from pixels.inputs.spec import parse_spec
from pixels.select import Select, resolve_selection

FAST = dict(num_inference_steps=4, strength=0.75, guidance_scale=3.0)


def test_a_selection_as_the_strength_map_is_found_on_the_source_and_recorded(tiny, sd_pipe):  # noqa: F811
    source = photo(32, 32, seed=1)
    select = Select(points=((12, 14),), feather=2, model=tiny("sam2"))
    expected = resolve_selection(select, source)
    job = plan_edit(source, strength_map=select, seed=3, **FAST)
    np.testing.assert_array_equal(job.inputs.strength, expected.strength.astype(np.float64))
    assert any(note.startswith("strength_map: selected (clicks, boxes or depth)") for note in job.notes)
    recorded = job.labels["strength_map"]
    assert recorded == json.loads(json.dumps(expected.record)) and Select.from_dict(recorded["select"]) == select
    # the edit keeps every pixel the selection leaves out, bit for bit, and records the selection
    result = Editor.from_pipe(sd_pipe).edit(source, strength_map=select, seed=3, **FAST)
    kept = result.strength_map == 0
    assert kept.any()
    np.testing.assert_array_equal(np.asarray(result.image)[kept], np.asarray(source)[kept])
    assert json.dumps(result.metadata)  # JSON-ready, selection record included
    assert Select.from_dict(result.metadata["strength_map"]["select"]) == select


def test_an_exemplar_region_can_be_a_selection(tiny):  # noqa: F811
    source = photo(32, 32, seed=1)
    select = Select(boxes=((4, 4, 20, 16),), model=tiny("sam2"))
    job = plan_edit(source, [Exemplar(photo(24, 24, seed=2), select)], seed=1, **FAST)
    region = resolve_selection(select, source).strength.astype(np.float64)
    np.testing.assert_array_equal(job.inputs.exemplar_maps[0], region)
    assert job.labels["exemplars"][0]["strength_map"]["select"] == select.to_dict()


def test_a_selection_error_names_the_input_and_its_field(tiny):  # noqa: F811
    with pytest.raises(InputError, match=r"^strength_map\.points\[0\]: "):
        plan_edit(photo(32, 32), strength_map=Select(points=((400, 4),), model=tiny("sam2")), **FAST)
    with pytest.raises(InputError, match=r"^exemplars\[0\]\.strength_map\.boxes\[0\]: "):
        plan_edit(photo(32, 32), [Exemplar(photo(8, 8), Select(boxes=((40, 40, 5, 5),), model=tiny("sam2")))],
                  **FAST)


def test_spec_files_take_a_selection_wherever_they_take_a_map(tmp_path):
    spec = parse_spec({"edits": [{"map": {"text": "the sofa", "grow": 4},
                                  "exemplars": [{"image": "fox.png", "map": {"points": [[10, 12]], "feather": 3}}]}]},
                      tmp_path)
    edit = spec.edits[0]
    assert edit.strength_map == Select(text="the sofa", grow=4)
    assert edit.exemplars[0].strength_map == Select(points=((10, 12),), feather=3)
    assert edit.paths() == [str(tmp_path / "fox.png")]  # selections name no file
    with pytest.raises(InputError, match=r"^edits\[0\]\.map\.colour: unknown key"):
        parse_spec({"edits": [{"map": {"colour": "red"}}]}, tmp_path)
    with pytest.raises(InputError, match=r"^edits\[0\]\.exemplars\[0\]\.map"):
        parse_spec({"edits": [{"exemplars": [{"image": "a.png", "map": {"grow": 2}}]}]}, tmp_path)


def test_pixels_edit_takes_a_selection_inline_and_records_it(tiny, sd_folder, tmp_path, capsys):  # noqa: F811
    from conftest import run_cli

    from pixels.outputs.writers import read_metadata

    source, out = tmp_path / "source.png", tmp_path / "out.png"
    photo(32, 32, seed=1).save(source)
    given = f"{{points: [[12, 14]], feather: 2, model: {tiny('sam2')}}}"
    code, stdout, stderr = run_cli(["edit", source, "--model", sd_folder, "--steps", 4, "--seed", 7, "--map", given,
                                    "-o", out], capsys)
    assert code == 0, stderr
    assert "strength_map: selected" in stderr
    recorded = read_metadata(out)["strength_map"]
    select = Select.from_dict(recorded["select"])
    assert select == Select(points=((12, 14),), feather=2, model=tiny("sam2"))
    expected = resolve_selection(select, photo(32, 32, seed=1)).strength
    with Image.open(out) as image:
        np.testing.assert_array_equal(np.asarray(image.convert("RGB"))[expected == 0],
                                      np.asarray(photo(32, 32, seed=1))[expected == 0])
    # a bad selection: exit 2, the flag and the field named, nothing written
    bad = tmp_path / "bad.png"
    code, _, stderr = run_cli(["edit", source, "--model", sd_folder, "--map", "{colour: red}", "-o", bad], capsys)
    assert code == 2 and "--map colour: unknown key" in stderr and not bad.exists()


def test_batch_manifests_take_a_selection_as_a_row_map(tmp_path):
    from pixels.batch import load_manifest

    (tmp_path / "rows.csv").write_text('source,map,exemplar,exemplar_map\na.png,"{text: the sofa, grow: 4}",'
                                       'ex.png,"{points: [[3, 4]]}"\n')
    (tmp_path / "rows.yaml").write_text("- {source: a.png, map: {text: the sofa, grow: 4},"
                                        " exemplars: [{image: ex.png, map: {points: [[3, 4]]}}]}\n")
    for name in ("rows.csv", "rows.yaml"):
        (row,) = load_manifest(tmp_path / name)
        assert row.error is None, row.error
        assert row.edit.strength_map == Select(text="the sofa", grow=4)
        assert row.edit.exemplars[0].strength_map == Select(points=((3, 4),))
        assert row.inputs() == [str(tmp_path / "a.png"), str(tmp_path / "ex.png")]


def test_an_exemplar_cut_out_grafts_only_the_selected_part(tiny, tmp_path):  # noqa: F811
    source, exemplar = photo(32, 32, seed=1), photo(32, 32, seed=2)
    cutout = Select(points=((16, 16),), model=tiny("sam2"))
    job = plan_edit(source, [Exemplar(exemplar, cutout=cutout)], seed=1, **FAST)
    cut = resolve_selection(cutout, exemplar).strength.astype(np.float64)  # found on the exemplar, not the source
    np.testing.assert_array_equal(job.inputs.exemplar_maps[0], cut)  # no map, no box: the cut-out is its region
    assert job.labels["exemplars"][0]["cutout"]["select"] == cutout.to_dict()
    assert any(note.startswith("exemplars[0]: cut out") for note in job.notes)
    with pytest.raises(InputError, match=r"^exemplars\[0\]\.cutout\.points\[0\]"):
        plan_edit(source, [Exemplar(exemplar, cutout=Select(points=((99, 1),), model=tiny("sam2")))], **FAST)
    spec = parse_spec({"edits": [{"exemplars": [{"image": "lamp.png", "cutout": {"text": "the lamp"}}]}]}, tmp_path)
    assert spec.edits[0].exemplars[0].cutout == Select(text="the lamp")
    with pytest.raises(InputError, match=r"^edits\[0\]\.exemplars\[0\]\.cutout: expected a selection"):
        parse_spec({"edits": [{"exemplars": [{"image": "a.png", "cutout": "lamp"}]}]}, tmp_path)


def test_pixels_edit_cuts_an_exemplar_out_and_records_it(tiny, sd_folder, tmp_path, capsys):  # noqa: F811
    from conftest import run_cli

    from pixels.outputs.writers import read_metadata

    source, lamp, out = tmp_path / "source.png", tmp_path / "lamp.png", tmp_path / "out.png"
    photo(32, 32, seed=1).save(source)
    photo(32, 32, seed=2).save(lamp)
    given = f"{{points: [[16, 16]], model: {tiny('sam2')}}}"
    code, _, stderr = run_cli(["edit", source, "--model", sd_folder, "--steps", 4, "--seed", 7, "-e", lamp,
                               "--cutout", given, "-o", out], capsys)
    assert code == 0, stderr
    assert "exemplars[0]: cut out" in stderr
    recorded = read_metadata(out)["exemplars"][0]["cutout"]
    assert Select.from_dict(recorded["select"]) == Select(points=((16, 16),), model=tiny("sam2"))
    for bad, message in ((["-e", lamp, "--cutout", " "], "--cutout: expected a phrase or a mapping"),
                         (["-e", lamp, "--cutout", "the lamp"],  # a bare phrase: SAM 3, which is not here
                          "exemplars[0].cutout.model: sam3 (facebook/sam3) is not in the local Hugging Face cache"),
                         (["-e", lamp, "--cutout", "{colour: red}"], "--cutout colour: unknown key")):
        code, _, stderr = run_cli(["edit", source, "--model", sd_folder, *bad, "-o", tmp_path / "bad.png"], capsys)
        assert code == 2 and message in stderr and not (tmp_path / "bad.png").exists()


def test_a_selection_on_both_places_the_cut_out_exemplar_into_the_selected_box(tiny):  # noqa: F811
    """"The lamp" selected in the exemplar and in the photo: the cut-out is fitted into the photo's lamp's box."""
    from pixels.core.placement import region_box

    source, lamp = photo(40, 32, seed=1), photo(24, 24, seed=2)  # another size: fitted into its map's box
    where = Select(boxes=((6, 4, 20, 18),), largest=True, model=tiny("sam2"))
    cutout = Select(boxes=((2, 2, 20, 20),), model=tiny("sam2"))
    job = plan_edit(source, [Exemplar(lamp, where, cutout=cutout)], seed=1, **FAST)
    region = resolve_selection(where, source).strength
    box = region_box(region)
    assert box is not None and box != (0, 0, 40, 32)  # a part of the photo (on this tiny random model)
    assert tuple(job.labels["exemplars"][0]["box"]) == box
    assert any(f"fitted (cover) into its map's edited area, box {box}" in note for note in job.notes)
    assert job.labels["exemplars"][0]["cutout"]["select"] == cutout.to_dict()


def test_a_session_records_its_selections_and_replays_without_finding_them_again(tiny, sd_pipe, tmp_path,  # noqa: F811
                                                                                 monkeypatch):
    from pixels import EditSession
    from pixels.inputs import read as reading

    session = EditSession(Editor.from_pipe(sd_pipe), photo(32, 32, seed=1))
    select = Select(points=((12, 14),), model=tiny("sam2"))
    session.apply([Exemplar(photo(32, 32, seed=2), cutout=Select(points=((16, 16),), model=tiny("sam2")))],
                  strength_map=select, seed=3, **FAST)
    folder = session.save(tmp_path / "s")
    step = json.loads((folder / "manifest.json").read_text())["steps"][0]
    assert Select.from_dict(step["selections"]["strength_map"]["select"]) == select
    assert "exemplars[0].cutout" in step["selections"]

    def no_model(*args, **kwargs):
        raise AssertionError("a replay reads the saved maps; it finds nothing again")

    monkeypatch.setattr(reading, "resolve_selection", no_model)
    loaded = EditSession.load(folder, Editor.from_pipe(sd_pipe))  # checks each result bit for bit
    assert np.array_equal(np.asarray(loaded.current), np.asarray(session.current))
