"""Step skipping: model calls whose output the next pin overwrites are not made."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import box_map, photo

from pixels import Editor, Exemplar
from pixels.core.release import first_needed_step, keep_mask
from pixels.core.schedulers import skipping_is_exact


def run(editor, **kwargs):
    calls = []
    handle = editor.adapter.denoiser.register_forward_hook(lambda *args: calls.append(1))
    try:
        result = editor.edit(photo(32, 32, seed=4), seed=3, guidance_scale=4.0, **kwargs)
    finally:
        handle.remove()
    return result, len(calls)


@pytest.mark.parametrize("scheduler", ["ddim", "euler"])
@pytest.mark.parametrize("strength", [0.3, 0.55, 1.0])
def test_skipping_is_identical_for_first_order_schedulers(any_pipe, scheduler, strength):
    editor = Editor.from_pipe(any_pipe)
    steps = 10
    m = box_map(value=strength)
    kwargs = dict(strength_map=m, num_inference_steps=steps, scheduler=scheduler, preserve="none")
    skipped, skipped_calls = run(editor, skip_steps="auto", **kwargs)
    full, full_calls = run(editor, skip_steps="never", **kwargs)
    assert np.array_equal(np.asarray(skipped.image), np.asarray(full.image))
    assert full_calls == steps
    # released from step ceil((1 - s) K); the call just before it is the first that matters
    first_release = math.ceil(round((1 - strength) * steps, 9))
    assert skipped_calls == steps - max(first_release - 1, 0) == skipped.metadata["model_calls"]
    assert skipped.metadata["skipped_steps"] == steps - skipped_calls


def test_skipping_with_an_exemplar_or_white_map_changes_nothing(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    exemplar = Exemplar(photo(32, 32, seed=9), box_map())
    _, calls = run(editor, exemplars=[exemplar], num_inference_steps=6, scheduler="ddim")
    assert calls == 6  # the graft is released at step 0


def test_auto_does_not_skip_where_the_result_would_change(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    kwargs = dict(strength_map=box_map(value=0.3), num_inference_steps=10, scheduler="dpm++2m", preserve="none")
    auto, auto_calls = run(editor, skip_steps="auto", **kwargs)
    always, always_calls = run(editor, skip_steps="always", **kwargs)
    assert auto_calls == 10 and always_calls == 4
    # a multistep solver restarts without its history: close, but not the same pixels
    a, b = np.asarray(auto.image, float), np.asarray(always.image, float)
    assert not np.array_equal(a, b)


def test_first_needed_step_matches_the_keep_rule():
    keep = torch.tensor([0.9, 0.75, 1.0]).view(1, 1, 1, 3)
    for steps in (1, 4, 10, 33):
        start = first_needed_step(keep, steps)
        released = [i for i in range(steps) if not keep_mask(keep, i, steps).all()]
        assert start == (max(released[0] - 1, 0) if released else steps - 1)
    assert first_needed_step(torch.ones(1, 1, 2, 2), 5) == 4  # nothing released: only the last call
    assert first_needed_step(torch.zeros(1, 1, 2, 2), 5) == 0


def test_which_schedulers_skip_exactly(sd_pipe):
    from pixels.core.schedulers import make_scheduler

    assert skipping_is_exact(make_scheduler(sd_pipe.scheduler, "ddim"))
    assert not skipping_is_exact(make_scheduler(sd_pipe.scheduler, "ddim"), eta=0.5)
    assert skipping_is_exact(make_scheduler(sd_pipe.scheduler, "euler"))
    assert not skipping_is_exact(make_scheduler(sd_pipe.scheduler, "euler-a"))
    assert not skipping_is_exact(make_scheduler(sd_pipe.scheduler, "dpm++2m"))


def test_cli_skip_steps_and_prompt_images_on_a_text_model(tmp_path, sd_folder, capsys):
    from pixels.cli import main

    photo(32, 32).save(tmp_path / "src.png")
    out = tmp_path / "out.png"
    base = ["edit", str(tmp_path / "src.png"), "--model", str(sd_folder), "--steps", "3", "-o", str(out)]
    assert main(base + ["--skip-steps", "never"]) == 0 and out.exists()
    with pytest.raises(SystemExit, match="2"):
        main(base + ["--skip-steps", "sometimes", "--overwrite"])
    assert main(base + ["--prompt-image", f"{tmp_path / 'src.png'}:0.5", "--overwrite"]) == 2
    assert "--prompt-image: this sd model is conditioned on text only" in capsys.readouterr().err
    assert main(base + ["--prompt-image", f"{tmp_path / 'src.png'}:-1", "--overwrite"]) == 2
    assert "--prompt-image[0]: the weight must be a number in (0, 100]" in capsys.readouterr().err
