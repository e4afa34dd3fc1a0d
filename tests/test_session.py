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
    session.apply(strength_map=box_map(), seed=1, **FAST)  # a new edit starts a branch, with nothing after it
    with pytest.raises(InputError, match="nothing to redo"):
        session.redo()


def test_edits_after_undo_or_go_branch_and_keep_the_other_branches(session, sd_pipe):
    two_edits(session)  # steps 1 -> 2
    session.undo()
    third = session.apply(strength_map=box_map(box=(0, 16, 32, 32)), seed=7, **FAST)  # a sibling of step 2
    assert session.position == 3 and session.path() == [1, 3] and len(session.nodes) == 3
    assert [(n["step"], n["parent"], n["children"], n["on_path"], n["current"]) for n in session.tree] == \
        [(1, 0, [2, 3], True, False), (2, 1, [], False, False), (3, 1, [], True, True)]
    # the branch equals a plain edit of step 1's result
    again = Editor.from_pipe(sd_pipe).edit(session.image(1), strength_map=box_map(box=(0, 16, 32, 32)), seed=7, **FAST)
    assert np.array_equal(np.asarray(again.image), np.asarray(third.image))
    assert [h["seed"] for h in session.history] == [5, 7]
    session.go(2)  # back to the other branch
    assert session.current is session.image(2) and session.path() == [1, 2] and session.history[1]["mode"] == "blend"
    assert session.undo() is session.image(1) and session.redo() is session.image(2)  # redo follows the branch left
    session.go(0)
    fourth = session.apply(strength_map=box_map(), seed=8, **FAST)  # a second edit of the source
    assert session.children(0) == [1, 4] and session.steps[0].result is fourth.image and session.can_undo
    assert not session.can_redo
    for bad in (5, -1, True, "2"):
        with pytest.raises(InputError, match=r"step: expected a step in \[0, 4\]"):
            session.go(bad)
    session.forget()  # the last step made, a leaf: thrown away as if never applied
    assert len(session.nodes) == 3 and session.position == 0 and session.children(0) == [1]
    session.go(1)  # not the last step made, and it has children
    with pytest.raises(InputError, match="forget: only the last step made"):
        session.forget()
    assert len(session.nodes) == 3 and session.position == 1


def test_a_saved_tree_replays_every_branch_bit_exactly_and_stands_where_it_was(session, sd_pipe, tmp_path):
    two_edits(session)
    session.go(1)
    session.apply(strength_map=box_map(box=(0, 16, 32, 32)), seed=7, **FAST)
    session.go(2)  # saved standing on the first branch's leaf
    folder = session.save(tmp_path / "tree")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [s["parent"] for s in manifest["steps"]] == [0, 1, 1] and manifest["current"] == 2
    loaded = EditSession.load(folder, Editor.from_pipe(sd_pipe))
    assert loaded.position == 2 and loaded.tree == session.tree
    for k in range(4):
        assert np.array_equal(np.asarray(loaded.image(k)), np.asarray(session.image(k)))
    # a manifest without parents or current (as older versions wrote) is one branch standing on its last step
    for step in manifest["steps"]:
        del step["parent"]
    del manifest["current"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    chain = EditSession.load(folder, Editor.from_pipe(sd_pipe), verify=False)
    assert chain.path() == [1, 2, 3] and chain.position == 3
    for bad, pattern in (({"parent": 3}, r"steps\[2\]\.parent: expected an earlier step in \[0, 2\]"),
                         ({"current": 9}, r"current: expected a step in \[0, 3\]")):
        broken = json.loads(json.dumps(manifest))
        if "parent" in bad:
            broken["steps"][2]["parent"] = bad["parent"]
        else:
            broken["current"] = bad["current"]
        (folder / "manifest.json").write_text(json.dumps(broken))
        with pytest.raises(InputError, match=pattern):
            EditSession.load(folder, Editor.from_pipe(sd_pipe), verify=False)


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
