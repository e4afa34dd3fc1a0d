"""Variations in the studio: N seeds in one run, denoised together, picked from a grid; and the session
library's `variations` / `keep` beneath them."""

from __future__ import annotations

import numpy as np
import pytest
from test_app import FAST, ROCKET, canvas_with, ctx, editor, layer, pixels_of, st  # noqa: F401 - fixtures

from pixels import EditSession, InputError, plan_edit
from pixels.app import handlers as h

STROKE = canvas_with(layer(128, 192, (120, 10, 50, 30)))


def test_four_variations_run_together_each_as_its_own_seed_would_and_one_is_picked(ctx, st):
    view = h.run_edit(ctx, st, None, STROKE, 0, [], FAST, variations=4)
    assert [caption.split(" · ")[1] for _, caption in view.variations] == ["seed 7", "seed 8", "seed 9", "seed 10"]
    assert view.result.seed == 7 and "4 variations (seeds 7, 8, 9, 10)" in view.status
    assert len(view.gallery) == 2  # one candidate in the history, not four
    grid = [pixels_of(image) for image, _ in view.variations]
    assert len({g.tobytes() for g in grid}) == 4  # four different results
    for k, seed in enumerate((7, 8, 9, 10)):  # each as the edit with that seed alone
        alone = ctx.sessions.open(f"alone-{seed}")
        h.use_sample(ctx, alone, ROCKET)
        single = pixels_of(h.run_edit(ctx, alone, None, STROKE, 0, [], {**FAST, "seed": str(seed)}).result.after)
        assert np.abs(single.astype(int) - grid[k].astype(int)).max() <= 1
    from pixels.app.browse import step_view

    step_view(st, 0)  # looking elsewhere first: a variation picked is shown in its own step again
    picked = h.pick(st, None, 2)
    assert picked.result.seed == 9 and st.history.shown == 1 and len(st.history.session.nodes) == 1 and "Variation 3 (seed 9) shown" in picked.status
    np.testing.assert_array_equal(pixels_of(picked.result.after), grid[2])
    assert st.history.session.history[-1]["seed"] == 9 and len(st.history.frames) == 2
    # the picked one is recorded as applied: the saved session replays it bit for bit
    loaded = h.load_session(ctx, ctx.sessions.open("replay"), str(h.save_session(st)))
    np.testing.assert_array_equal(pixels_of(loaded.result.after), grid[2])
    h.continue_edit(st, None)
    assert h.view(st).variations == []  # continuing leaves the variations behind
    with pytest.raises(InputError, match=r"^variations: no variations to pick from"):
        h.pick(st, None, 0)


@pytest.mark.parametrize("bad", [0, 9, "x", 2.5, None, True])
def test_a_number_of_variations_out_of_range_is_refused_by_name(ctx, st, bad):
    with pytest.raises(InputError, match=r"^variations: expected a whole number in \[1, 8\]"):
        h.run_edit(ctx, st, None, STROKE, 0, [], FAST, variations=bad)
    assert len(st.history.frames) == 1


def test_a_cancelled_run_of_variations_changes_nothing(ctx, st):
    h.run_edit(ctx, st, None, STROKE, 0, [], FAST)
    frames, seed = list(st.history.frames), st.history.session.history[-1]["seed"]
    run_id = h.arm(st)
    st.token(run_id).set()
    view = h.run_edit(ctx, st, run_id, STROKE, 0, [], {**FAST, "seed": "20"}, variations=3)
    assert "cancelled" in view.status and st.history.frames == frames
    assert st.history.session.history[-1]["seed"] == seed and view.variations == []


def test_the_session_keeps_only_a_result_its_variations_made_from_the_job(editor):
    session = EditSession(editor, pixels_of(h.photos.bundled(ROCKET)))
    where = np.zeros((128, 192))
    where[10:40, 120:170] = 1.0
    job = plan_edit(session.current, [], where, num_inference_steps=100, strength=0.05, seed=3)
    results = session.variations(job, [3, 4])
    assert [r.metadata["seed"] for r in results] == [3, 4] and session.history == []  # nothing applied yet
    other = plan_edit(session.current, [], 1.0 - where, num_inference_steps=100, strength=0.05, seed=3)
    with pytest.raises(InputError, match="expected a result `variations` made from this job") as error:
        session.keep(other, results[1])
    assert error.value.param == "result"
    session.keep(job, results[1])
    assert session.history[-1]["seed"] == 4
    np.testing.assert_array_equal(pixels_of(session.current), pixels_of(results[1].image))
    with pytest.raises(InputError) as error:
        session.variations(job, [])
    assert error.value.param == "seeds"
