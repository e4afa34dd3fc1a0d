"""Settings are declared once (EditSettings): the flags, the spec schema and the session record follow from
the declaration; plus the small contracts of Editor.edit's arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import box_map, photo
from PIL import Image

from pixels import Editor, EditSettings, InputError
from pixels.cli import build_parser, main
from pixels.core.settings import options
from pixels.inputs.spec import EDIT_KEYS

FAST = dict(num_inference_steps=4, guidance_scale=4.0)


def edit_parser():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    return commands.choices["edit"]


# The public names of every setting, written out: renaming a flag or a spec key breaks users' scripts and specs.
# (Python parameter, spec key; the flag is the spec key with dashes: the spec and the command line speak alike.)
PUBLIC_NAMES = [
    ("prompt", "prompt"), ("negative_prompt", "negative_prompt"), ("num_inference_steps", "steps"),
    ("strength", "strength"), ("denoising_start", "denoising_start"), ("guidance_scale", "guidance"),
    ("guidance_rescale", "guidance_rescale"), ("scheduler", "scheduler"), ("mode", "mode"),
    ("invert_map", "invert_map"), ("preserve", "preserve"), ("eta", "eta"), ("skip_steps", "skip_steps"),
    ("crop", "crop"), ("crop_margin", "crop_margin"), ("crop_resize", "crop_resize"), ("switch_at", "switch_at"),
    ("exemplar_encode", "exemplar_encode"),
]


def test_every_setting_has_its_public_flag_spec_key_and_record():
    assert sorted(name for name, _ in PUBLIC_NAMES) == sorted(f.name for f, _ in options())  # no setting left out
    parser = edit_parser()
    dest_of = {option: action.dest for action in parser._actions for option in action.option_strings}
    for name, key in [*PUBLIC_NAMES, ("seed", "seed")]:
        assert dest_of["--" + key.replace("_", "-")] == name, name
        assert EDIT_KEYS[key][0] == name, name
    assert set(EDIT_KEYS) == {key for _, key in PUBLIC_NAMES} | {"seed"}
    assert set(EditSettings().record()) == {name for name, _ in PUBLIC_NAMES} - {"invert_map"}  # applied to maps


def test_flags_parse_to_the_settings_and_stay_unset_when_not_given():
    args = edit_parser().parse_args(["s.png", "--model", "m", "-o", "o.png", "--steps", "8", "--crop", "-4,-4,20,20",
                                     "--invert-map", "--guidance", "3"])
    given = {f.name: getattr(args, f.name) for f, _ in options() if getattr(args, f.name) is not None}
    assert given == {"num_inference_steps": 8, "crop": (-4, -4, 20, 20), "invert_map": True, "guidance_scale": 3.0}
    assert EditSettings(**given).crop == (-4, -4, 20, 20)


def test_settings_are_checked_on_construction_and_name_the_parameter():
    with pytest.raises(InputError) as info:
        EditSettings(strength=2.0)
    assert info.value.param == "strength" and str(info.value) == "strength: must lie in (0, 1], got 2.0"
    with pytest.raises(InputError, match="^mode: unknown value 'fancy'; choose one of paper, blend"):
        EditSettings(mode="fancy")


def test_edit_takes_a_settings_object_and_keyword_overrides(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source, m = photo(32, 32, seed=1), box_map()
    settings = EditSettings(num_inference_steps=4, strength=0.5, guidance_scale=4.0)
    a = editor.edit(source, strength_map=m, settings=settings, seed=3)
    b = editor.edit(source, strength_map=m, seed=3, num_inference_steps=4, strength=0.5, guidance_scale=4.0)
    c = editor.edit(source, strength_map=m, settings=settings, seed=3, strength=0.75)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.metadata["strength"] == 0.5
    assert c.metadata["strength"] == 0.75 and c.settings.num_inference_steps == 4
    with pytest.raises(InputError, match="^stength: unknown setting 'stength'"):
        editor.edit(source, strength_map=m, stength=0.5)
    with pytest.raises(InputError, match="^settings: expected EditSettings or None"):
        editor.edit(source, strength_map=m, settings={"strength": 0.5})


def test_prompt_images_none_or_bare_images_are_recorded(sd_pipe, tiny_pipes):
    result = Editor.from_pipe(sd_pipe).edit(photo(32, 32), strength_map=box_map(), prompt_images=None, seed=1, **FAST)
    assert result.metadata["prompt_images"] == []
    kandinsky = Editor.from_pipe(tiny_pipes("kandinsky"))
    bare = kandinsky.edit(photo(32, 32), strength_map=box_map(), prompt_images=[photo(32, 32, seed=9)], seed=1, **FAST)
    paired = kandinsky.edit(photo(32, 32), strength_map=box_map(), prompt_images=[(photo(32, 32, seed=9), 1.0)],
                            seed=1, **FAST)
    assert bare.metadata["prompt_images"] == [{"image": "<Image>", "weight": 1.0}]
    assert np.array_equal(np.asarray(bare.image), np.asarray(paired.image))


def test_a_generator_records_the_seed_that_reproduces_it_or_says_there_is_none(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source, m = photo(32, 32, seed=2), box_map()
    fresh = editor.edit(source, strength_map=m, generator=torch.Generator().manual_seed(1234), **FAST)
    assert fresh.metadata["seed"] == 1234 and "seed_note" not in fresh.metadata
    again = editor.edit(source, strength_map=m, seed=fresh.metadata["seed"], **FAST)
    assert np.array_equal(np.asarray(fresh.image), np.asarray(again.image))
    used = torch.Generator().manual_seed(1234)
    torch.randn(3, generator=used)
    drawn = editor.edit(source, strength_map=m, generator=used, **FAST)
    assert drawn.metadata["seed"] is None and "no seed reproduces this edit" in drawn.metadata["seed_note"]


def test_no_negative_prompt_and_an_empty_one_are_two_things(sdxl_pipe):
    """SDXL uses zero embeddings without a negative prompt and encodes "" when it is given, as diffusers does."""
    editor = Editor.from_pipe(sdxl_pipe)
    source, m = photo(32, 32, seed=3), box_map()
    none = editor.edit(source, strength_map=m, prompt="a fox", seed=4, **FAST)
    empty = editor.edit(source, strength_map=m, prompt="a fox", negative_prompt="", seed=4, **FAST)
    assert none.metadata["negative_prompt"] is None and empty.metadata["negative_prompt"] == ""
    assert not np.array_equal(np.asarray(none.image), np.asarray(empty.image))
    theirs = sdxl_pipe(image=source, prompt="a fox", negative_prompt="", strength=1.0, num_inference_steps=4,
                       guidance_scale=4.0, generator=torch.Generator().manual_seed(4), output_type="np").images[0]
    full = editor.edit(source, strength_map=np.ones((32, 32)), prompt="a fox", negative_prompt="", seed=4, **FAST)
    assert np.abs(np.asarray(full.image).astype(int) - (theirs * 255).round().astype(int)).max() <= 1


def test_contact_sheet_with_a_spec(sd_folder, tmp_path, capsys):
    photo(40, 30, seed=1).save(tmp_path / "source.png")
    Image.fromarray((box_map(40, 30, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save(tmp_path / "where.png")
    (tmp_path / "edits.yaml").write_text("source: source.png\nedits:\n  - {map: where.png, steps: 3, seed: 1}\n"
                                         "  - {map: where.png, steps: 3, seed: 2, denoising_start: 0.5}\n")
    code = main(["edit", "--spec", str(tmp_path / "edits.yaml"), "--model", str(sd_folder), "-o",
                 str(tmp_path / "out.png"), "--contact-sheet", str(tmp_path / "sheet.png"), "-q"])
    assert code == 0, capsys.readouterr().err
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 3 * 256
    with Image.open(tmp_path / "out.png") as out:
        assert json.loads(out.info["pixels"])["denoising_start"] == 0.5


def test_guidance_rescale_equals_diffusers_and_reaches_every_interface(sdxl_pipe, sd_folder, tmp_path, capsys):
    """A setting added with one declaration: the edit, the flag, the spec key and the session record."""
    editor, source = Editor.from_pipe(sdxl_pipe), photo(32, 32, seed=1)
    settings = dict(prompt="a red fox", num_inference_steps=6, strength=0.7, guidance_scale=5.0)
    plain = editor.edit(source, strength_map=np.ones((32, 32)), seed=3, **settings)
    ours = editor.edit(source, strength_map=np.ones((32, 32)), seed=3, guidance_rescale=0.7, **settings)
    theirs = sdxl_pipe(image=source, generator=torch.Generator().manual_seed(3), output_type="np",
                       guidance_rescale=0.7, **settings).images[0]
    assert np.abs(np.asarray(ours.image).astype(int) - (theirs * 255).round().astype(int)).max() <= 1
    assert not np.array_equal(np.asarray(ours.image), np.asarray(plain.image))
    assert ours.metadata["guidance_rescale"] == 0.7 and ours.settings.record()["guidance_rescale"] == 0.7
    photo(40, 30).save(tmp_path / "s.png")
    (tmp_path / "e.yaml").write_text("edits:\n  - {guidance_rescale: 0.5, steps: 2, seed: 1}\n")
    assert main(["edit", str(tmp_path / "s.png"), "--model", str(sd_folder), "--guidance-rescale", "0.25",
                 "--steps", "2", "-o", str(tmp_path / "a.png"), "-q"]) == 0
    assert main(["edit", str(tmp_path / "s.png"), "--spec", str(tmp_path / "e.yaml"), "--model", str(sd_folder),
                 "-o", str(tmp_path / "b.png"), "-q"]) == 0
    for name, value in (("a.png", 0.25), ("b.png", 0.5)):
        with Image.open(tmp_path / name) as image:
            assert json.loads(image.info["pixels"])["guidance_rescale"] == value
    assert main(["edit", str(tmp_path / "s.png"), "--model", str(sd_folder), "--guidance-rescale", "2",
                 "-o", str(tmp_path / "c.png")]) == 2
    assert "--guidance-rescale: must lie in [0, 1], got 2.0" in capsys.readouterr().err
