"""Nothing lost, nothing executed: the data-loss, code-execution, partial-output and hang paths, and the
error contract (exit 2 with one line naming the argument for anything the user can change)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import box_map, deadline, photo
from conftest import run_cli as run
from PIL import EpsImagePlugin, Image

from pixels import Editor, EditSession
from pixels.errors import InputError, NonFiniteError

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 40 30\n0 0 moveto 40 30 lineto stroke\nshowpage\n%%EOF\n"


@pytest.fixture
def files(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    source, exemplar, where = photos / "source.png", photos / "exemplar.png", photos / "where.png"
    photo(40, 30, seed=1).save(source)
    photo(64, 64, seed=2).save(exemplar)
    Image.fromarray((box_map(40, 30, box=(4, 4, 20, 20)) * 255).astype(np.uint8)).save(where)
    (photos / "notes.txt").write_text("my notes")
    (photos / "album").mkdir()
    photo(8, 8, seed=3).save(photos / "album" / "holiday.png")
    return tmp_path, source, exemplar, where


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def edit(sd_folder, source, output, *extra):
    return ["edit", source, "--model", sd_folder, "--steps", 4, "--strength", 0.5, "--seed", 7, "-o", output, *extra]


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the model is loaded: the checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs and outputs were checked")

    monkeypatch.setattr(Editor, "from_pretrained", classmethod(refuse))


# -- data loss -------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["photos", ".", "photos/album"])
def test_save_session_never_replaces_a_folder_of_user_files(sd_folder, files, capsys, monkeypatch, where, no_model):
    tmp, source, _, _ = files
    monkeypatch.chdir(tmp)
    before = snapshot(tmp)
    code, _, stderr = run(edit(sd_folder, source, tmp / "out.png", "--save-session", where, "--overwrite"), capsys)
    assert code == 2 and "session:" in stderr and "holds no pixels session" in stderr, stderr
    assert snapshot(tmp) == before


def test_output_inside_the_session_folder_is_refused(sd_folder, files, capsys):
    tmp, source, _, _ = files
    session = tmp / "session"
    assert run(edit(sd_folder, source, tmp / "first.png", "--save-session", session, "-q"), capsys)[0] == 0
    before = snapshot(tmp)
    code, _, stderr = run(edit(sd_folder, source, session / "out.png", "--save-session", session, "--overwrite"),
                          capsys)
    assert code == 2 and "would lie inside the session folder" in stderr, stderr
    assert snapshot(tmp) == before
    # a session folder that holds an input is refused too
    code, _, stderr = run(edit(sd_folder, session / "source.png", tmp / "x.png", "--save-session", session,
                               "--overwrite"), capsys)
    assert code == 2 and "contains the input" in stderr
    assert snapshot(tmp) == before


def test_overwrite_replaces_a_session_and_touches_nothing_else(sd_folder, files, capsys):
    tmp, source, _, _ = files
    session = tmp / "session"
    assert run(edit(sd_folder, source, tmp / "a.png", "--save-session", session, "-q"), capsys)[0] == 0
    first = snapshot(session)
    code, _, stderr = run(edit(sd_folder, source, tmp / "b.png", "--save-session", session, "--overwrite", "-q",
                               "--seed", 8), capsys)
    assert code == 0, stderr
    second = snapshot(session)
    assert set(second) == set(first) and second["step-01/result.png"] != first["step-01/result.png"]
    assert json.loads(second["manifest.json"])["format"] == "pixels-session"
    assert sorted(p.name for p in tmp.iterdir()) == ["a.png", "b.png", "photos", "session"]  # nothing left over
    # a session folder that also holds a file pixels did not write is not replaced
    (session / "my-notes.txt").write_text("keep me")
    before = snapshot(tmp)
    code, _, stderr = run(edit(sd_folder, source, tmp / "c.png", "--save-session", session, "--overwrite"), capsys)
    assert code == 2 and "holds files pixels did not write" in stderr and "my-notes.txt" in stderr
    assert snapshot(tmp) == before


def test_session_save_from_python_refuses_user_folders(sd_pipe, files):
    tmp, source, _, _ = files
    session = EditSession(Editor.from_pipe(sd_pipe), source)
    before = snapshot(tmp)
    for folder in (tmp / "photos", tmp):
        with pytest.raises(InputError, match="holds no pixels session"):
            session.save(folder, overwrite=True)
    assert snapshot(tmp) == before


# -- code execution ----------------------------------------------------------------------------------
@pytest.fixture
def ghostscript_spy(tmp_path, monkeypatch):
    """A fake `gs` first on PATH that records every call: Pillow's EPS plugin runs Ghostscript."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "gs-calls"
    bin_dir.mkdir()
    gs = bin_dir / "gs"
    gs.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit 0\n")
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # search PATH again
    return calls


@pytest.mark.parametrize("role", ["source", "exemplar", "map", "exemplar map", "prompt image"])
@pytest.mark.parametrize("name", ["art.eps", "innocent.png"])
def test_postscript_is_never_handed_to_ghostscript(sd_folder, files, capsys, ghostscript_spy, role, name, no_model):
    tmp, source, exemplar, where = files
    hostile = tmp / name
    hostile.write_bytes(EPS)
    args = {
        "source": [hostile],
        "exemplar": [source, "-e", hostile, "-m", where],
        "map": [source, "--map", hostile],
        "exemplar map": [source, "-e", exemplar, "-m", hostile],
        "prompt image": [source, "--prompt-image", hostile],
    }[role]
    code, _, stderr = run(["edit", *args, "--model", sd_folder, "-o", tmp / "out.png"], capsys)
    assert code == 2 and "is not an image in a format pixels reads" in stderr, stderr
    assert not ghostscript_spy.exists(), "Ghostscript was run"


def test_postscript_refused_by_every_command(files, capsys, ghostscript_spy, tmp_path):
    tmp, source, _, where = files
    hostile = tmp / "map.png"
    hostile.write_bytes(EPS)
    for argv in (["evaluate", hostile, "--source", source, "--map", where, "--clip", "none", "--dino", "none"],
                 ["evaluate", source, "--source", source, "--map", hostile, "--clip", "none", "--dino", "none"],
                 ["map", "invert", hostile, "-o", tmp / "m.png"],
                 ["map", "box", "1,1,4,4", "--like", hostile, "-o", tmp / "m.png"]):
        code, _, stderr = run(argv, capsys)
        assert code == 2 and "not an image in a format pixels reads" in stderr, (argv, stderr)
    assert not ghostscript_spy.exists() and not (tmp / "m.png").exists()


def test_session_files_are_read_as_images_of_the_allowed_formats(sd_pipe, files, ghostscript_spy):
    tmp, source, _, _ = files
    session = EditSession(Editor.from_pipe(sd_pipe), source)
    session.apply(strength_map=box_map(40, 30), num_inference_steps=2, seed=1)
    folder = session.save(tmp / "s")
    (folder / "step-01" / "result.png").write_bytes(EPS)
    with pytest.raises(InputError, match="not an image in a format pixels reads"):
        EditSession.load(folder, Editor.from_pipe(sd_pipe))
    assert not ghostscript_spy.exists()


# -- partial results -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["existing folder", "missing parent", "file in its place"])
def test_bad_session_target_is_refused_before_the_model_loads(sd_folder, files, capsys, case, no_model):
    tmp, source, _, _ = files
    target = {"existing folder": tmp / "photos", "missing parent": tmp / "no" / "session",
              "file in its place": tmp / "photos" / "notes.txt"}[case]
    before = snapshot(tmp)
    code, _, stderr = run(edit(sd_folder, source, tmp / "out.png", "--save-session", target), capsys)
    assert code == 2 and "session:" in stderr, stderr
    assert snapshot(tmp) == before


def test_an_error_after_the_edit_leaves_no_new_file(sd_folder, files, capsys, monkeypatch):
    tmp, source, _, _ = files

    def disk_full(self, staging):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(EditSession, "_write", disk_full)
    before = snapshot(tmp)
    code, _, stderr = run(edit(sd_folder, source, tmp / "out.png", "--contact-sheet", tmp / "sheet.png",
                               "--save-session", tmp / "session"), capsys)
    assert code == 2 and "the disk is full" in stderr, stderr
    assert snapshot(tmp) == before and sorted(p.name for p in tmp.iterdir()) == ["photos"]


def test_a_failure_while_moving_outputs_in_restores_what_was_there(sd_folder, files, capsys, monkeypatch):
    tmp, source, _, _ = files
    (tmp / "out.png").write_bytes(b"the previous result")
    real_rename = os.rename

    def failing_rename(src, dst, *args, **kwargs):
        if Path(dst).name == "session":
            raise OSError(errno.EIO, "Input/output error")
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", failing_rename)
    before = snapshot(tmp)
    code, _, stderr = run(edit(sd_folder, source, tmp / "out.png", "--overwrite", "--contact-sheet",
                               tmp / "sheet.png", "--save-session", tmp / "session"), capsys)
    assert code == 1 and "Input/output error" in stderr
    assert snapshot(tmp) == before and sorted(p.name for p in tmp.iterdir()) == ["out.png", "photos"]


# -- hangs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["source", "map", "exemplar", "spec", "dev-zero"])
def test_non_regular_files_are_refused_without_blocking(sd_folder, files, capsys, role, no_model):
    tmp, source, exemplar, where = files
    fifo = tmp / "pipe.png"
    os.mkfifo(fifo)
    args = {
        "source": [fifo], "map": [source, "--map", fifo], "exemplar": [source, "-e", fifo, "-m", where],
        "spec": ["--spec", fifo], "dev-zero": [source, "--map", "/dev/zero"],
    }[role]
    with deadline(20):
        code, _, stderr = run(["edit", *args, "--model", sd_folder, "-o", tmp / "out.png"], capsys)
    assert code == 2 and "is not a regular file" in stderr, stderr


def test_non_regular_session_manifest_is_refused(sd_pipe, tmp_path):
    (tmp_path / "s").mkdir()
    os.mkfifo(tmp_path / "s" / "manifest.json")
    with deadline(20), pytest.raises(InputError, match="not a regular file"):
        EditSession.load(tmp_path / "s", Editor.from_pipe(sd_pipe))


# -- clear errors with exit 2 instead of raw exceptions ------------------------------------------------------
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", 1001], "--steps: 1001 is more than the 1000 timesteps this model's scheduler"),
        (["--device", "cpu:abc"], "device: unknown device 'cpu:abc'"),
        (["-e", "{exemplar}@0,0,60000,60000"], "exemplars[0].box: 60000x60000 is 3,600,000,000 pixels"),
        (["--crop", "0,0,40,30", "--crop-resize", "60000"], "--crop-resize: expected 'native' or an integer in"),
        (["--map", "{thin}", "--crop", "auto", "--crop-margin", "0", "--crop-resize", "16000"],
         "--crop-resize: 16000 makes the 4x2 crop 16000x8000"),
        (["--crop", "0,0,60000,60000"], "--crop: 60000x60000 is 3,600,000,000 pixels"),
        (["--prompt", "a \udcff fox"], "--prompt: not valid UTF-8 text"),
        (["--guidance", "1e308"], "--guidance: must lie in [0, 100], got 1e+308"),
        (["--max-megapixels", "0.0005"], "source: 40x30 is 1,200 pixels, more than the limit of 500"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(sd_folder, files, capsys, extra, message):
    tmp, source, exemplar, _ = files
    Image.fromarray((box_map(40, 30, box=(0, 0, 4, 2)) * 255).astype(np.uint8)).save(tmp / "thin.png")
    extra = [str(a).format(exemplar=exemplar, thin=tmp / "thin.png") for a in extra]
    code, stdout, stderr = run(edit(sd_folder, source, tmp / "out.png", *extra), capsys)
    assert code == 2 and message in stderr, stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp / "out.png").exists()


def test_output_name_too_long_and_unwritable_folder(sd_folder, files, capsys, monkeypatch, no_model):
    tmp, source, _, _ = files
    code, _, stderr = run(edit(sd_folder, source, tmp / ("a" * 300 + ".png")), capsys)
    assert code == 2 and "is longer than 255 bytes" in stderr
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and Path(path).parent == tmp / "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    (tmp / "locked").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    code, _, stderr = run(edit(sd_folder, source, tmp / "locked" / "out.png"), capsys)
    assert code == 2 and "cannot write into folder" in stderr and "permission denied" in stderr
    assert list((tmp / "locked").iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_read_only_folder_for_real(sd_folder, files, capsys, no_model):
    tmp, source, _, _ = files
    locked = tmp / "locked"
    locked.mkdir(mode=0o500)
    code, _, stderr = run(edit(sd_folder, source, locked / "out.png"), capsys)
    assert code == 2 and "permission denied" in stderr


def test_non_finite_latents_stop_the_edit(sd_pipe, sd_folder, files, capsys, monkeypatch):
    tmp, source, _, _ = files
    real = type(Editor.from_pipe(sd_pipe).adapter).predict

    def overflow(self, latents, t, cond):
        return real(self, latents, t, cond) * float("inf")

    monkeypatch.setattr("pixels.adapters.base.Adapter.predict", overflow)
    with pytest.raises(NonFiniteError, match="NaN or infinite at step 1 of 2"):
        Editor.from_pipe(sd_pipe).edit(source, num_inference_steps=4, strength=0.5, seed=1)
    code, _, stderr = run(edit(sd_folder, source, tmp / "out.png"), capsys)
    assert code == 2 and "NaN or infinite" in stderr and "--dtype fp32" in stderr
    assert not (tmp / "out.png").exists()


def test_negative_crop_offsets_parse(sd_folder, files, capsys):
    tmp, source, _, where = files
    code, _, stderr = run(edit(sd_folder, source, tmp / "out.png", "--map", where, "--crop", "-10,-10,40,40", "-q"),
                          capsys)
    assert code == 0, stderr
    with Image.open(tmp / "out.png") as image:
        assert json.loads(image.info["pixels"])["crop_box"] == [0, 0, 30, 30]
    code, _, stderr = run(["map", "linear", "-10,0,30,0", "--size", "40x30", "-o", tmp / "fade.png"], capsys)
    assert code == 0, stderr
