"""Edits denoised together (Editor.edit_batch): one model call per step for all, each edit equal to itself
run alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_map, photo

from pixels import Editor, Exemplar, InputError

FAMILIES = ["sd", "sdxl", "pixel", "sd3", "flux-dev", "kandinsky", "sd-inpaint"]


def gray_map(value: float = 0.6, box=(4, 4, 28, 28)) -> np.ndarray:
    m = box_map(box=box, value=value)
    m[12:20, 12:20] = 1.0
    return m


def requests(name: str, mode: str, skip_steps: str) -> list[dict]:
    prompt = "" if name == "pixel" else "a fox"
    scheduler = "ddim" if name == "kandinsky" else None  # its own DDPM draws noise at every step
    common = dict(num_inference_steps=6, strength=0.8, guidance_scale=4.0, mode=mode, skip_steps=skip_steps,
                  scheduler=scheduler)
    return [
        dict(source=photo(32, 32, seed=1), strength_map=gray_map(0.3), seed=1, prompt=prompt, **common),
        dict(source=photo(32, 32, seed=2), exemplars=[Exemplar(photo(32, 32, seed=5), gray_map(0.5))], seed=2,
             prompt="" if name == "pixel" else "a red cat", **common),
        dict(source=photo(32, 32, seed=3), seed=3, strength_map=box_map(box=(0, 0, 16, 32), value=0.4), prompt=prompt,
             exemplars=[Exemplar(photo(32, 32, seed=6), box_map(box=(2, 2, 14, 14))),
                        Exemplar(photo(32, 32, seed=7), box_map(box=(18, 2, 30, 14)))], **common),
    ]


def calls_of(editor: Editor):
    calls: list = []
    return calls, editor.adapter.denoiser.register_forward_hook(lambda module, args, out: calls.append(1))


@pytest.mark.parametrize("mode, skip_steps", [("paper", "auto"), ("blend", "never"), ("paper", "never")])
@pytest.mark.parametrize("name", FAMILIES)
def test_a_batched_edit_equals_the_edit_alone(tiny_pipes, name, mode, skip_steps):
    editor = Editor.from_pipe(tiny_pipes(name))
    batch = requests(name, mode, skip_steps)
    calls, handle = calls_of(editor)
    try:
        together = editor.edit_batch(batch)
    finally:
        handle.remove()
    alone = [editor.edit(**request) for request in batch]
    for request, a, b in zip(batch, together, alone):
        diff = np.abs(np.asarray(a.image).astype(int) - np.asarray(b.image).astype(int))
        assert diff.max() <= 1, diff.max()
        assert a.metadata["seed"] == b.metadata["seed"] and a.metadata["steps_run"] == b.metadata["steps_run"]
        keep = np.asarray(a.strength_map) == 0
        assert np.array_equal(np.asarray(a.image)[keep], np.asarray(request["source"])[keep])
    # one model call per step for the whole batch: as many as the edit that starts earliest
    assert len(calls) == max(r.metadata["model_calls"] for r in alone)
    assert all(r.metadata["model_calls"] == len(calls) for r in together)


def test_edits_that_cannot_share_calls_run_apart_and_still_equal_themselves(sd_pipe):
    """Other strengths (another schedule), other sizes, and samplers that draw noise at every step."""
    editor = Editor.from_pipe(sd_pipe)
    batch = [dict(source=photo(32, 32, seed=1), strength_map=gray_map(), seed=1, num_inference_steps=4, strength=s)
             for s in (1.0, 0.5)]
    batch += [dict(source=photo(40, 24, seed=2), strength_map=box_map(40, 24, box=(4, 4, 20, 20)), seed=2,
                   num_inference_steps=4)]
    batch += [dict(source=photo(32, 32, seed=k), strength_map=gray_map(), seed=k, num_inference_steps=4,
                   scheduler="euler-a") for k in (4, 5)]
    calls, handle = calls_of(editor)
    try:
        together = editor.edit_batch(batch)
    finally:
        handle.remove()
    alone = [editor.edit(**request) for request in batch]
    for result, solo in zip(together, alone):
        assert np.array_equal(np.asarray(result.image), np.asarray(solo.image))
    # apart: no model call shared, as many as the edits made alone
    assert len(calls) == sum(solo.metadata["model_calls"] for solo in alone)


def test_failures_are_isolated_when_asked(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    good = dict(source=photo(32, 32, seed=1), strength_map=gray_map(), seed=1, num_inference_steps=4)
    outcomes = editor.edit_batch([good, dict(good, strength=7.0), dict(good, source="missing.png"), good],
                                 return_exceptions=True)
    assert isinstance(outcomes[1], InputError) and outcomes[1].param == "strength"
    assert isinstance(outcomes[2], InputError) and "no such file" in str(outcomes[2])
    assert np.array_equal(np.asarray(outcomes[0].image), np.asarray(outcomes[3].image))
    with pytest.raises(InputError):
        editor.edit_batch([good, dict(good, strength=7.0)])


def test_a_failure_during_the_shared_run_falls_back_to_one_edit_at_a_time(sd_pipe, monkeypatch):
    editor = Editor.from_pipe(sd_pipe)
    real = type(editor.adapter).predict

    def fails_in_batches(self, latents, t, cond):
        if latents.shape[0] > 2:  # a batch of two guided edits is 4 rows
            raise RuntimeError("simulated failure of a batched call")
        return real(self, latents, t, cond)

    monkeypatch.setattr(type(editor.adapter), "predict", fails_in_batches)
    batch = [dict(source=photo(32, 32, seed=k), strength_map=gray_map(), seed=k, num_inference_steps=4)
             for k in (1, 2)]
    outcomes = editor.edit_batch(batch, return_exceptions=True)
    assert all(not isinstance(o, Exception) for o in outcomes)
    with pytest.raises(RuntimeError, match="simulated failure"):
        editor.edit_batch(batch)
    assert torch.is_grad_enabled()
