"""The family-independent invariants, written once and run on every family's tiny pipeline (`pixels.testing.tiny`):

- a map that is 0 everywhere returns the source bit for bit, even with preserve="none", and runs no model;
- strength-0 pixels are exact and the edited ones change;
- the same seed gives the same image, another seed another one;
- the number of model calls does not depend on the number of exemplars;
- odd image sizes come back at their size, borders kept;
- with a white map and no exemplar, an edit equals the family's own diffusers pipeline on the same
  components, seed and settings, within one 8-bit level.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_map, photo
from PIL import Image

from pixels import Editor, Exemplar
from pixels.adapters.kandinsky import KandinskyV22Adapter
from pixels.testing.tiny import FAMILIES

FAST = dict(num_inference_steps=4, guidance_scale=4.0)
# Families without a diffusers pipeline to compare a white-map edit with: diffusers has no img2img for
# pixel-space DDPM models, and the Kandinsky inpaint decoder is compared by the input its UNet receives
# (tests/test_kandinsky.py), its pipeline blending the result with the source in pixel space.
NO_REFERENCE = {"pixel", "kandinsky-inpaint"}


@pytest.fixture(params=FAMILIES)
def family(request, tiny_pipes):
    return request.param, tiny_pipes(request.param)


def prompt_for(name: str) -> str:
    return "" if name == "pixel" else "a red fox"  # the pixel-space model is unconditional


def calls_of(editor: Editor) -> tuple[list, torch.utils.hooks.RemovableHandle]:
    calls: list = []
    return calls, editor.adapter.denoiser.register_forward_hook(lambda *args: calls.append(1))


def test_zero_map_is_the_source_without_a_model_call(family):
    name, pipe = family
    editor = Editor.from_pipe(pipe)
    source = photo(32, 32, seed=2)
    calls, handle = calls_of(editor)
    try:
        result = editor.edit(source, strength_map=np.zeros((32, 32)), seed=0, preserve="none", **FAST)
    finally:
        handle.remove()
    assert np.array_equal(np.asarray(result.image), np.asarray(source))
    assert calls == [] and result.metadata["model_calls"] == 0


def test_strength_zero_pixels_exact_and_the_edit_happens(family):
    name, pipe = family
    source, exemplar = photo(32, 32, seed=3), photo(32, 32, seed=8)
    m = box_map(value=1.0)
    m[4:8, 4:28] = 0.5  # a gray band beside the graft
    result = Editor.from_pipe(pipe).edit(source, exemplars=[Exemplar(exemplar, strength_map=m)], seed=1,
                                         prompt=prompt_for(name), **FAST)
    out, src = np.asarray(result.image), np.asarray(source)
    assert result.image.size == source.size
    assert np.array_equal(out[m == 0], src[m == 0])
    assert not np.array_equal(out[m == 1], src[m == 1])


def test_same_seed_same_result_and_the_seed_matters(family):
    name, pipe = family
    editor = Editor.from_pipe(pipe)
    source, m = photo(32, 32, seed=4), box_map()
    a, b, c = (editor.edit(source, strength_map=m, seed=s, prompt=prompt_for(name), **FAST) for s in (5, 5, 6))
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))
    assert a.metadata["seed"] == 5


def test_model_calls_do_not_grow_with_the_exemplar_count(family):
    name, pipe = family
    editor = Editor.from_pipe(pipe)
    source, counts = photo(32, 32, seed=1), []
    for n in (0, 1, 3):
        exemplars = [Exemplar(photo(32, 32, seed=10 + k), strength_map=box_map(box=(4 * k, 0, 4 * k + 12, 32)))
                     for k in range(n)]
        calls, handle = calls_of(editor)
        try:
            result = editor.edit(source, exemplars=exemplars, strength_map=box_map(value=0.5), seed=0,
                                 skip_steps="never", prompt=prompt_for(name), **FAST)
        finally:
            handle.remove()
        assert result.metadata["model_calls"] == len(calls)
        counts.append(len(calls))
    assert counts[0] > 0 and counts == [counts[0]] * 3


def test_odd_sizes_keep_their_size_and_every_border_pixel(family):
    name, pipe = family
    source = photo(37, 29, seed=5)
    m = box_map(37, 29, box=(6, 5, 30, 22))
    result = Editor.from_pipe(pipe).edit(source, strength_map=m, seed=2, prompt=prompt_for(name), **FAST)
    out, src = np.asarray(result.image), np.asarray(source)
    assert result.image.size == (37, 29)
    assert np.array_equal(out[m == 0], src[m == 0])  # the border rows and columns among them
    assert not np.array_equal(out[m == 1], src[m == 1])


def reference(name: str, pipe, editor: Editor, source: Image.Image, seed: int, settings: dict) -> np.ndarray:
    """The family's own diffusers pipeline on the same components: (H, W, 3) in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    if name.startswith("kandinsky"):
        from diffusers import KandinskyV22Img2ImgPipeline

        embeds, negative = pipe.prior_pipe(settings["prompt"], num_inference_steps=25, guidance_scale=4.0,
                                           generator=torch.Generator().manual_seed(KandinskyV22Adapter.prior_seed),
                                           return_dict=False)
        decoder = KandinskyV22Img2ImgPipeline(unet=pipe.unet, movq=pipe.movq,
                                              scheduler=editor.adapter.make_scheduler(None))
        decoder.set_progress_bar_config(disable=True)
        rest = {k: v for k, v in settings.items() if k != "prompt"}
        return decoder(image=source, image_embeds=embeds, negative_image_embeds=negative, height=32, width=32,
                       generator=generator, output_type="np", **rest).images[0]
    extra = {}
    if name.endswith("inpaint"):
        extra = dict(mask_image=Image.new("L", (32, 32), 255), height=32, width=32)
    elif name.startswith(("sd3", "flux")):
        extra = dict(height=32, width=32)
    pipe.set_progress_bar_config(disable=True)
    return pipe(image=source, generator=generator, output_type="np", **extra, **settings).images[0]


@pytest.mark.parametrize("name", [name for name in FAMILIES if name not in NO_REFERENCE])
def test_a_white_map_edit_equals_the_diffusers_pipeline(tiny_pipes, name):
    pipe = tiny_pipes(name)
    editor = Editor.from_pipe(pipe)
    source = photo(32, 32, seed=1)
    settings = dict(prompt=prompt_for(name), num_inference_steps=6, strength=0.7, guidance_scale=5.0)
    ours = editor.edit(source, strength_map=np.ones((32, 32)), seed=3, **settings)
    theirs = (reference(name, pipe, editor, source, 3, settings) * 255).round().astype(int)
    diff = np.abs(np.asarray(ours.image).astype(int) - theirs)
    assert diff.max() <= 1, diff.max()
    assert ours.metadata["model_calls"] == ours.metadata["steps_run"]
