"""Progressive sessions: chained edits, undo/redo, and save/load that replays bit-exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import box_map, photo
from PIL import Image

from pixels import Editor, Exemplar, maps
from pixels.errors import InputError, PixelsError
from pixels.session import EditSession

FAST = dict(num_inference_steps=4, strength=0.75, guidance_scale=3.0)


@pytest.fixture
def session(sd_pipe):
    return EditSession(Editor.from_pipe(sd_pipe), photo(32, 32, seed=1))


def two_edits(session: EditSession) -> None:
    session.apply([Exemplar(photo(48, 48, seed=2), box_map(box=(4, 4, 16, 16)))], prompt="a cat", seed=5, **FAST)
    session.apply(strength_map=maps.invert(maps.linear((32, 32), (0, 0), (32, 0))), seed=None, mode="blend",
                  **FAST)


def test_each_edit_starts_from_the_previous_result(session, sd_pipe):
    first = session.apply([Exemplar(photo(48, 48, seed=2), box_map(box=(4, 4, 16, 16)))], seed=5, **FAST)
    second = session.apply(strength_map=box_map(box=(16, 0, 32, 32)), seed=6, **FAST)
    assert session.current is second.image
    # the second edit equals a plain edit of the first result
    again = Editor.from_pipe(sd_pipe).edit(first.image, strength_map=box_map(box=(16, 0, 32, 32)), seed=6, **FAST)
    assert np.array_equal(np.asarray(again.image), np.asarray(second.image))
    assert [h["seed"] for h in session.history] == [5, 6]


def test_undo_and_redo(session):
    source = np.asarray(session.current)
    with pytest.raises(InputError, match="undo: nothing to undo"):
        session.undo()
    two_edits(session)
    second = np.asarray(session.current)
    first = np.asarray(session.undo())
    assert not np.array_equal(first, second) and len(session.history) == 1
    assert np.array_equal(np.asarray(session.undo()), source) and session.history == []
    assert np.array_equal(np.asarray(session.redo()), first)
    assert np.array_equal(np.asarray(session.redo()), second)
    with pytest.raises(InputError, match="redo: nothing to redo"):
        session.redo()
    session.undo()
    session.apply(strength_map=box_map(), seed=1, **FAST)  # a new edit drops what was undone
    with pytest.raises(InputError, match="nothing to redo"):
        session.redo()


def test_save_and_load_replay_bit_exactly(session, sd_pipe, tmp_path):
    two_edits(session)
    folder = session.save(tmp_path / "session")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["steps"]) == 2 and manifest["steps"][1]["settings"]["mode"] == "blend"
    assert isinstance(manifest["steps"][1]["settings"]["seed"], int)  # a random seed was recorded
    loaded = EditSession.load(folder, Editor.from_pipe(sd_pipe))
    assert np.array_equal(np.asarray(loaded.current), np.asarray(session.current))
    assert loaded.history == session.history
    with pytest.raises(InputError, match="exists; pass overwrite=True"):
        session.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session"]  # no staging folder left behind


def test_load_detects_a_different_result_and_bad_folders(session, sd_pipe, tmp_path):
    session.apply(strength_map=box_map(), seed=3, **FAST)
    folder = session.save(tmp_path / "s")
    Image.fromarray(255 - np.asarray(Image.open(folder / "step-01" / "result.png"))).save(folder / "step-01/result.png")
    with pytest.raises(PixelsError, match=r"steps\[0\]: the replayed result differs"):
        EditSession.load(folder, Editor.from_pipe(sd_pipe))
    assert EditSession.load(folder, Editor.from_pipe(sd_pipe), verify=False).history[0]["seed"] == 3
    with pytest.raises(InputError, match="is not a saved session"):
        EditSession.load(tmp_path, Editor.from_pipe(sd_pipe))
    with pytest.raises(InputError, match="generator: sessions record seeds"):
        session.apply(generator=None)
