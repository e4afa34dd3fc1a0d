"""Edit specs: schema validation that names the offending key, and `pixels edit --spec` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import box_map, photo
from PIL import Image

from pixels import Editor, EditSession
from pixels.cli import main
from pixels.errors import InputError
from pixels.inputs.spec import load_spec, parse_spec


@pytest.fixture
def folder(tmp_path):
    photo(40, 30, seed=1).save(tmp_path / "source.png")
    photo(64, 64, seed=2).save(tmp_path / "fox.png")
    Image.fromarray((box_map(40, 30, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save(tmp_path / "where.png")
    Image.fromarray((box_map(40, 30, box=(20, 0, 40, 30)) * 255).astype(np.uint8)).save(tmp_path / "right.png")
    spec = """
source: source.png
edits:
  - exemplars:
      - {image: fox.png, map: where.png}
    prompt: a fox
    steps: 4
    strength: 0.75
    guidance: 3
    seed: 5
  - map: right.png
    steps: 4
    seed: 6
    mode: blend
"""
    (tmp_path / "edits.yaml").write_text(spec)
    return tmp_path


def test_spec_parses_with_paths_relative_to_the_file(folder):
    spec = load_spec(folder / "edits.yaml")
    assert spec.source == str(folder / "source.png") and len(spec.edits) == 2
    first = spec.edits[0]
    assert first.exemplars[0].image == str(folder / "fox.png") and first.exemplars[0].strength_map == str(
        folder / "where.png")
    assert first.settings == {"prompt": "a fox", "num_inference_steps": 4, "strength": 0.75, "guidance_scale": 3,
                              "seed": 5}
    assert spec.edits[1].settings["mode"] == "blend" and spec.edits[1].strength_map == str(folder / "right.png")


@pytest.mark.parametrize(
    "data, match",
    [
        ([], "spec: expected a mapping with an 'edits' list"),
        ({"edits": []}, "spec.edits: expected a non-empty list"),
        ({"edits": [{}], "output": "x"}, "spec: unknown key 'output'; allowed: source, edits"),
        ({"edits": [{"stength": 0.5}]}, r"edits\[0\]: unknown key 'stength'"),
        ({"edits": [{"steps": "ten"}]}, r"edits\[0\].steps: expected integer, got 'ten'"),
        ({"edits": [{"steps": 4}, {"strength": True}]}, r"edits\[1\].strength: expected number, got True"),
        ({"edits": [{"exemplars": [{"map": "m.png"}]}]},
         r"edits\[0\].exemplars\[0\]: expected a mapping with an 'image'"),
        ({"edits": [{"exemplars": [{"image": "a.png", "box": [1, 2, 3]}]}]},
         r"exemplars\[0\].box: expected \[x, y, w, h\]"),
        ({"edits": [{"exemplars": [{"image": "a.png", "mapp": "m.png"}]}]}, r"exemplars\[0\]: unknown key 'mapp'"),
        ({"edits": [{"exemplars": "a.png"}]}, r"edits\[0\].exemplars: expected a list"),
        ({"edits": [{"seed": 1.5}]}, r"edits\[0\].seed: expected integer or null"),
    ],
)
def test_schema_errors_point_at_the_key(tmp_path, data, match):
    with pytest.raises(InputError, match=match):
        parse_spec(data, tmp_path)


def test_unparseable_spec_files(tmp_path):
    (tmp_path / "bad.yaml").write_text("edits: [unclosed")
    with pytest.raises(InputError, match="^spec: cannot parse"):
        load_spec(tmp_path / "bad.yaml")
    with pytest.raises(InputError, match="^spec: no such file"):
        load_spec(tmp_path / "missing.yaml")


def test_edit_with_spec_matches_a_session_and_saves_it(sd_folder, folder, capsys):
    out, saved = folder / "out.png", folder / "session"
    code = main(["edit", "--spec", str(folder / "edits.yaml"), "--model", str(sd_folder), "-o", str(out),
                 "--save-session", str(saved)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "edit 2/2" in captured.out
    editor = Editor.from_pretrained(str(sd_folder), device="cpu")
    replayed = EditSession.load(saved, editor)  # replays both edits from the recorded seeds, bit-exactly
    assert np.array_equal(np.asarray(Image.open(out).convert("RGB")), np.asarray(replayed.current))
    assert [h["seed"] for h in replayed.history] == [5, 6]
    assert json.loads(Image.open(out).info["pixels"])["spec"] == str(folder / "edits.yaml")


def test_bad_spec_values_exit_2_before_loading(folder, capsys):
    (folder / "bad.yaml").write_text("source: source.png\nedits:\n  - {steps: 0}\n")
    code = main(["edit", "--spec", str(folder / "bad.yaml"), "--model", "does/not-matter", "-o", str(folder / "o.png")])
    assert code == 2 and "edits[0].steps: expected an integer in [1, 10000], got 0" in capsys.readouterr().err
    (folder / "bad.yaml").write_text("edits:\n  - exemplars: [{image: missing.png, map: where.png}]\n")
    code = main(["edit", str(folder / "source.png"), "--spec", str(folder / "bad.yaml"), "--model", "x",
                 "-o", str(folder / "o.png")])
    assert code == 2 and "exemplars[0]: no such file" in capsys.readouterr().err
    assert not (folder / "o.png").exists()
