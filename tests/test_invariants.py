"""Invariants of an edit, on every family and scheduler: kept pixels exact, determinism, cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_map, photo

from pixels import Editor, Exemplar, InputError
from pixels.core.loop import blend_into_source, combine_grafts
from pixels.core.schedulers import SCHEDULERS

FAST = dict(num_inference_steps=4, guidance_scale=4.0)


def count_calls(editor: Editor):
    calls = []
    handle = editor.adapter.denoiser.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_strength_zero_pixels_exact_and_edit_happens(any_pipe, name):
    source = photo(32, 32, seed=3)
    exemplar = photo(32, 32, seed=8)
    m = box_map(value=1.0)
    m[4:8, 4:28] = 0.5  # a gray band beside the graft
    result = Editor.from_pipe(any_pipe).edit(
        source, exemplars=[Exemplar(exemplar, strength_map=m)], seed=1, scheduler=name, **FAST
    )
    out, src = np.asarray(result.image), np.asarray(source)
    assert result.image.size == source.size
    assert np.array_equal(out[m == 0], src[m == 0])
    assert not np.array_equal(out[m == 1], src[m == 1])


def test_same_seed_same_result_and_seed_matters(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source, m = photo(32, 32, seed=4), box_map()
    a = editor.edit(source, strength_map=m, seed=5, scheduler="euler-a", **FAST)
    b = editor.edit(source, strength_map=m, seed=5, scheduler="euler-a", **FAST)
    c = editor.edit(source, strength_map=m, seed=6, scheduler="euler-a", **FAST)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))
    assert a.metadata["seed"] == 5
    g = editor.edit(source, strength_map=m, generator=torch.Generator().manual_seed(5), scheduler="euler-a", **FAST)
    assert np.array_equal(np.asarray(a.image), np.asarray(g.image))


def test_random_seed_is_recorded_and_reproduces(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source = photo(32, 32, seed=4)
    first = editor.edit(source, strength_map=box_map(), **FAST)
    again = editor.edit(source, strength_map=box_map(), seed=first.metadata["seed"], **FAST)
    assert np.array_equal(np.asarray(first.image), np.asarray(again.image))


def test_combine_grafts_single_disjoint_and_overlap():
    torch.manual_seed(0)
    z = [torch.randn(1, 4, 8, 8) for _ in range(2)]
    n = [torch.randn(1, 4, 8, 8) for _ in range(2)]
    left = torch.zeros(1, 1, 8, 8)
    left[..., :5] = 1
    right = torch.zeros(1, 1, 8, 8)
    right[..., 3:] = 1
    latent, noise, total = combine_grafts([left], z[:1], n[:1])
    assert torch.equal(latent[..., :5], z[0][..., :5]) and torch.equal(noise[..., :5], n[0][..., :5])
    assert (total[..., :5] > 0).all() and not (total[..., 5:] > 0).any()
    latent, noise, total = combine_grafts([left, right], z, n)
    assert torch.equal(latent[..., :3], z[0][..., :3]) and torch.equal(latent[..., 5:], z[1][..., 5:])
    assert torch.allclose(latent[..., 3:5], (z[0][..., 3:5] + z[1][..., 3:5]) / 2)
    assert torch.allclose(noise[..., 3:5], (n[0][..., 3:5] + n[1][..., 3:5]) / 2**0.5)
    assert (total > 0).all()
    # soft weights (blend mode): a weighted average, unit-variance noise, and the total weight
    latent, noise, total = combine_grafts([left * 0.25, right * 0.75], z, n)
    assert torch.allclose(latent[..., 3:5], 0.25 * z[0][..., 3:5] + 0.75 * z[1][..., 3:5])
    assert torch.allclose(noise[..., 3:5], (0.25 * n[0][..., 3:5] + 0.75 * n[1][..., 3:5]) / (0.25**2 + 0.75**2) ** 0.5)
    assert torch.equal(latent[..., :3], z[0][..., :3]) and torch.allclose(total[..., 3:5], torch.ones(1))


def test_blend_into_source_endpoints_and_variance():
    torch.manual_seed(1)
    zs, ns, ze, ne = (torch.randn(1, 4, 64, 64) for _ in range(4))
    amount = torch.linspace(0, 1, 64).view(1, 1, 1, 64)
    clean, noise = blend_into_source(zs, ns, amount, ze, ne)
    assert torch.equal(clean[..., 0], zs[..., 0]) and torch.equal(noise[..., 0], ns[..., 0])
    assert torch.equal(clean[..., -1], ze[..., -1]) and torch.equal(noise[..., -1], ne[..., -1])
    assert torch.allclose(clean[..., 32], (1 - amount[..., 32]) * zs[..., 32] + amount[..., 32] * ze[..., 32])
    assert abs(noise.std().item() - 1) < 0.02  # the mixed noise keeps unit variance


def first_model_input(editor, monkeypatch, **kwargs):
    """The latents the model sees at step 0 (guidance off, DDIM: no input scaling)."""
    seen = []
    predict = editor.adapter.predict
    monkeypatch.setattr(editor.adapter, "predict", lambda x, t, c: seen.append(x.clone()) or predict(x, t, c))
    editor.edit(seed=0, num_inference_steps=4, strength=0.5, guidance_scale=1.0, scheduler="ddim", **kwargs)
    monkeypatch.undo()
    return seen[0]


def test_two_exemplars_in_one_pass_each_lands_in_its_region(sd_pipe, monkeypatch):
    """Each exemplar's graft covers exactly its own region: the step-0 latents of a two-exemplar edit
    equal, region by region, those of the same edit where the other exemplar's map is empty."""
    editor = Editor.from_pipe(sd_pipe)
    source = photo(32, 32, seed=0)
    dark, light = np.zeros((32, 32, 3), np.uint8), np.full((32, 32, 3), 255, np.uint8)
    a, b, empty = box_map(box=(0, 0, 16, 32)), box_map(box=(16, 0, 32, 32)), np.zeros((32, 32), np.float32)
    both = first_model_input(editor, monkeypatch, source=source, exemplars=[Exemplar(dark, a), Exemplar(light, b)])
    only_a = first_model_input(editor, monkeypatch, source=source,
                               exemplars=[Exemplar(dark, a), Exemplar(light, empty)])
    only_b = first_model_input(editor, monkeypatch, source=source,
                               exemplars=[Exemplar(dark, empty), Exemplar(light, b)])
    plain = first_model_input(editor, monkeypatch, source=source, strength_map=np.ones((32, 32), np.float32))
    half = both.shape[-1] // 2  # the tiny VAE's factor is 2: pixel column 16 is latent column 8
    assert torch.equal(both[..., :half], only_a[..., :half])
    assert torch.equal(both[..., half:], only_b[..., half:])
    # and the grafts did replace the noised source on both sides
    assert not torch.equal(both[..., :half], plain[..., :half])
    assert not torch.equal(both[..., half:], plain[..., half:])


def test_sizes_off_the_vae_grid_keep_every_border_pixel(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source = photo(33, 27, seed=5)  # the tiny VAE's factor is 2: both sides are odd
    m = np.zeros((27, 33), np.float32)
    m[:, -5:] = 1.0  # edit the last columns, including the one beyond the grid
    result = editor.edit(source, strength_map=m, seed=0, **FAST)
    out, src = np.asarray(result.image), np.asarray(source)
    assert result.image.size == (33, 27)
    assert np.array_equal(out[:, :-5], src[:, :-5])
    assert not np.array_equal(out[:, -1], src[:, -1])


def test_no_map_is_a_full_frame_edit_and_inverted_maps_agree(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source = photo(32, 32, seed=5)
    full = editor.edit(source, seed=2, **FAST)
    white = editor.edit(source, strength_map=np.ones((32, 32), np.float32), seed=2, **FAST)
    assert np.array_equal(np.asarray(full.image), np.asarray(white.image))
    m = (box_map() * 255).astype(np.uint8)
    m[12:20, 12:20] = 128
    plain = editor.edit(source, strength_map=m, seed=2, **FAST)
    inverted = editor.edit(source, strength_map=255 - m, invert_map=True, seed=2, **FAST)
    assert np.array_equal(np.asarray(plain.image), np.asarray(inverted.image))


def test_exemplar_alpha_is_its_region_and_other_sizes_are_resized(sd_pipe):
    editor = Editor.from_pipe(sd_pipe)
    source = photo(32, 32, seed=5)
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = 255
    rgba[16:48, 16:48, 3] = 255  # opaque square in the middle, transparent elsewhere
    with pytest.warns(UserWarning, match="resized from 64x64 to 32x32"):
        result = editor.edit(source, exemplars=[Exemplar(rgba)], seed=0, **FAST)
    out, src = np.asarray(result.image), np.asarray(source)
    # transparent rows far enough from the square to stay zero after the bilinear resize are kept exactly
    assert np.array_equal(out[:6], src[:6]) and np.array_equal(out[-6:], src[-6:])
    assert result.strength_map[16, 16] == 1.0 and result.strength_map[0, 0] == 0.0
    with pytest.raises(InputError, match=r"exemplars\[0\]: no strength_map, no alpha channel and no box"):
        editor.edit(source, exemplars=[Exemplar(photo(32, 32))], **FAST)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(num_inference_steps=2.5), "num_inference_steps"),
        (dict(strength=0.0), "strength"),
        (dict(strength=1.5), "strength"),
        (dict(denoising_start=1.0), "denoising_start"),
        (dict(guidance_scale=float("nan")), "guidance_scale"),
        (dict(scheduler="heun++"), "scheduler"),
        (dict(mode="magic"), "mode"),
        (dict(preserve="some"), "preserve"),
        (dict(seed=-1), "seed"),
        (dict(seed=1, generator=torch.Generator()), "seed"),
        (dict(strength_map=np.full((32, 32), 2.0)), "strength_map"),
        (dict(exemplars=[photo()]), "exemplars"),
        (dict(strength=0.1, num_inference_steps=4), "strength: 4 steps at strength 0.1 run int"),
    ],
)
def test_bad_arguments_are_named(sd_pipe, kwargs, match):
    with pytest.raises(InputError, match=match):
        Editor.from_pipe(sd_pipe).edit(photo(), **kwargs)


def test_metadata_records_every_setting(refiner_pipe):
    result = Editor.from_pipe(refiner_pipe).edit(
        photo(), strength_map=box_map(), prompt="x", seed=4, denoising_start=0.6, guidance_scale=17.5,
        num_inference_steps=10,
    )
    md = result.metadata
    assert md["family"] == "sdxl" and md["refiner"] is True and md["aesthetic_score"] == 6.0
    assert md["denoising_start"] == 0.6 and md["guidance_scale"] == 17.5 and md["seed"] == 4
    assert md["steps_run"] == md["model_calls"] == 4  # the last 40% of a 10-step DDIM schedule
    assert md["size"] == [32, 32] and md["mode"] == "paper" and md["preserve"] == "exact"


def test_from_pipe_accepts_text_to_image_pipelines(sd_pipe, sdxl_pipe):
    """A loaded text-to-image pipeline is reused as is (same modules) and edits like its img2img twin."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    for img2img, cls in ((sd_pipe, StableDiffusionPipeline), (sdxl_pipe, StableDiffusionXLPipeline)):
        text2img = cls(**{k: v for k, v in img2img.components.items() if k in cls._get_signature_keys(cls)[0]})
        editor = Editor.from_pipe(text2img)
        assert editor.adapter.pipe.unet is img2img.unet and editor.adapter.pipe.vae is img2img.vae
        source = photo(32, 32, seed=3)
        a = editor.edit(source, strength_map=box_map(), seed=1, **FAST)
        b = Editor.from_pipe(img2img).edit(source, strength_map=box_map(), seed=1, **FAST)
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_on_step_reports_every_step(sd_pipe):
    seen = []
    result = Editor.from_pipe(sd_pipe).edit(photo(), seed=0, num_inference_steps=10, strength=0.5,
                                            on_step=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(1, 6)] and result.metadata["steps_run"] == 5


def test_guidance_distilled_unets_get_the_users_scale_as_an_embedding(tmp_path):
    """LCM-style UNets run one branch and take the guidance scale as a timestep condition."""
    from conftest import build_sd, unet_kwargs
    from diffusers import UNet2DConditionModel

    pipe = build_sd(tmp_path)
    torch.manual_seed(0)
    pipe.unet = UNet2DConditionModel(**unet_kwargs(), time_cond_proj_dim=32)
    editor = Editor.from_pipe(pipe)
    seen = []
    handle = editor.adapter.denoiser.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["timestep_cond"]), with_kwargs=True
    )
    try:
        for scale in (2.0, 8.0):
            editor.edit(photo(), num_inference_steps=2, guidance_scale=scale, seed=0)
    finally:
        handle.remove()
    assert seen[0].shape[0] == 1  # one branch
    expected = [pipe.get_guidance_scale_embedding(torch.tensor([s - 1.0]), embedding_dim=32) for s in (2.0, 8.0)]
    assert torch.allclose(seen[0], expected[0]) and torch.allclose(seen[-1], expected[1])
