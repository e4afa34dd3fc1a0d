"""Paper mode equals the reference rule; a full-white edit equals diffusers' own img2img."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import box_map, photo
from diffusers.utils.torch_utils import randn_tensor

from pixels import Editor, Exemplar
from pixels.core.schedulers import SCHEDULERS, make_scheduler


def with_scheduler(pipe, name):
    """A pipeline sharing `pipe`'s modules, with the scheduler pixels would build for `name`."""
    extra = {k: pipe.config[k] for k in ("requires_aesthetics_score",) if k in pipe.config}
    return type(pipe)(**{**pipe.components, "scheduler": make_scheduler(pipe.scheduler, name)}, **extra)


@pytest.mark.parametrize("name", list(SCHEDULERS))  # the model's own scheduler: test_families.py
def test_white_map_equals_diffusers_img2img(latent_pipe, name):
    pipe = with_scheduler(latent_pipe, name)
    source = photo(32, 32, seed=1)
    settings = dict(prompt="a red fox", num_inference_steps=6, strength=0.7, guidance_scale=5.0)
    ours = Editor.from_pipe(pipe).edit(source, strength_map=np.ones((32, 32), np.float32), seed=3,
                                       scheduler=name, **settings)
    theirs = pipe(image=source, generator=torch.Generator().manual_seed(3), output_type="np", **settings).images[0]
    theirs = (theirs * 255).round().astype(np.uint8)
    diff = np.abs(np.asarray(ours.image).astype(int) - theirs.astype(int))
    # Same components, seed and settings: identical up to float reordering (at most one 8-bit level).
    assert diff.max() <= 1, diff.max()
    assert ours.metadata["model_calls"] == ours.metadata["steps_run"] == int(6 * 0.7)


def reference_edit(pipe, source, exemplar, keep_map, steps, strength, guidance, seed, prompt, noise_at):
    """The reference PIXELS pipeline (paper mode), transcribed step by step on diffusers' own pipeline pieces."""
    gen = torch.Generator().manual_seed(seed)
    sf = pipe.vae.config.scaling_factor
    embeds, negative = pipe.encode_prompt(prompt, "cpu", 1, True, None)
    embeds = torch.cat([negative, embeds])
    # 1. encode S and E; 3. one noise per image (order: S encode, S noise, E encode, E noise)
    z_s = pipe.vae.encode(pipe.image_processor.preprocess(source)).latent_dist.sample(gen) * sf
    n_s = randn_tensor(z_s.shape, generator=gen, dtype=z_s.dtype)
    z_e = pipe.vae.encode(pipe.image_processor.preprocess(exemplar)).latent_dist.sample(gen) * sf
    n_e = randn_tensor(z_e.shape, generator=gen, dtype=z_e.dtype)
    # 2. img2img timesteps
    pipe.scheduler.set_timesteps(steps)
    timesteps, _ = pipe.get_timesteps(steps, strength, "cpu")
    k = len(timesteps)
    # 4. bilinear resize of the keep map, no antialias
    m = F.interpolate(torch.from_numpy(keep_map)[None, None], size=z_s.shape[-2:], mode="bilinear",
                      align_corners=False, antialias=False)
    for i, t in enumerate(timesteps):
        keep = (m > i / k).float()  # 5. strict threshold i/K
        if i == 0:  # 6. latent surgery
            z = keep * noise_at(pipe.scheduler, z_s, n_s, t, i) + (1 - keep) * noise_at(pipe.scheduler, z_e, n_e, t, i)
        else:  # 7. pin
            z = keep * noise_at(pipe.scheduler, z_s, n_s, t, i) + (1 - keep) * z
        x = pipe.scheduler.scale_model_input(torch.cat([z] * 2), t)
        uncond, cond = pipe.unet(x, t, encoder_hidden_states=embeds, return_dict=False)[0].chunk(2)
        z = pipe.scheduler.step(uncond + guidance * (cond - uncond), t, z, return_dict=False)[0]
    # 8. decode
    image = pipe.vae.decode(z / sf, return_dict=False)[0]
    return pipe.image_processor.postprocess(image.detach(), output_type="pil")[0]


def scheduler_add_noise(scheduler, x, n, t, i):
    return scheduler.add_noise(x, n, t.reshape(1))


def explicit_noise(scheduler, x, n, t, i):
    """The forward process written out, independent of diffusers' stateful add_noise."""
    if hasattr(scheduler, "sigmas") and type(scheduler).__name__.startswith("Euler"):
        return x + scheduler.sigmas[scheduler.begin_index + i] * n
    a = scheduler.alphas_cumprod[int(t)]
    return a.sqrt() * x + (1 - a).sqrt() * n


def gray_map() -> np.ndarray:
    """Keep map (reference convention) with black, white and three grays."""
    keep = np.ones((32, 32), np.float32)
    keep[4:28, 4:28] = 0.75
    keep[8:24, 8:24] = 0.4
    keep[10:22, 10:22] = 0.0
    keep[12:16, 20:30] = 0.2
    return keep


@pytest.mark.parametrize("name", ["ddim", "euler"])
def test_paper_mode_is_the_reference_rule_bit_exact(sd_pipe, name):
    pipe = with_scheduler(sd_pipe, name)
    source, exemplar = photo(32, 32, seed=4), photo(32, 32, seed=5)
    keep = gray_map()
    settings = dict(prompt="a cat", guidance_scale=6.0, num_inference_steps=8, strength=1.0)
    expected = reference_edit(pipe, source, exemplar, keep, 8, 1.0, 6.0, 11, "a cat", scheduler_add_noise)
    got = Editor.from_pipe(pipe).edit(
        source, exemplars=[Exemplar(exemplar, strength_map=keep)], invert_map=True, seed=11, scheduler=name,
        preserve="none", **settings,
    )
    assert np.array_equal(np.asarray(got.image), np.asarray(expected))


@pytest.mark.parametrize("name", ["ddim", "euler"])
def test_paper_mode_noises_each_step_at_its_own_level(sd_pipe, name):
    """Against the forward process written out: the pins use sigma_i / alpha_i of their own step."""
    pipe = with_scheduler(sd_pipe, name)
    source, exemplar = photo(32, 32, seed=4), photo(32, 32, seed=5)
    expected = reference_edit(pipe, source, exemplar, gray_map(), 8, 0.75, 6.0, 2, "", explicit_noise)
    got = Editor.from_pipe(pipe).edit(
        source, exemplars=[Exemplar(exemplar, strength_map=gray_map())], invert_map=True, seed=2,
        scheduler=name, preserve="none", num_inference_steps=8, strength=0.75, guidance_scale=6.0,
    )
    diff = np.abs(np.asarray(got.image).astype(int) - np.asarray(expected).astype(int))
    assert diff.max() <= 1


def test_paper_mode_exemplar_changes_only_through_its_graft(sd_pipe):
    """The exemplar enters only where the keep map is 0: with no black in the map it changes nothing."""
    editor = Editor.from_pipe(sd_pipe)
    source = photo(32, 32, seed=6)
    gray = box_map(value=0.6)
    kwargs = dict(num_inference_steps=5, seed=9, scheduler="ddim")
    alone = editor.edit(source, strength_map=gray, **kwargs)
    with_gray_exemplar = editor.edit(source, exemplars=[Exemplar(photo(32, 32, seed=7), strength_map=gray)], **kwargs)
    # The exemplar still takes its VAE encode and noise draw (generator order of the reference),
    # which DDIM with eta 0 never reads again: the images must match exactly.
    assert np.array_equal(np.asarray(alone.image), np.asarray(with_gray_exemplar.image))
    grafted = editor.edit(source, exemplars=[Exemplar(photo(32, 32, seed=7), strength_map=box_map())], **kwargs)
    assert not np.array_equal(np.asarray(alone.image), np.asarray(grafted.image))


@pytest.mark.parametrize("name", [None, "euler", "dpm++2m"])
def test_v_prediction_models_equal_diffusers_img2img(sd_pipe, name):
    """SD 2.x 768 checkpoints predict v: the scheduler's config carries it and the loop needs nothing else."""
    v_scheduler = type(sd_pipe.scheduler).from_config(sd_pipe.scheduler.config, prediction_type="v_prediction")
    pipe = with_scheduler(type(sd_pipe)(**{**sd_pipe.components, "scheduler": v_scheduler}), name)
    source = photo(32, 32, seed=2)
    settings = dict(prompt="a boat", num_inference_steps=5, strength=0.8, guidance_scale=4.0)
    ours = Editor.from_pipe(pipe).edit(source, seed=4, scheduler=name, **settings)
    theirs = pipe(image=source, generator=torch.Generator().manual_seed(4), output_type="np", **settings).images[0]
    diff = np.abs(np.asarray(ours.image).astype(int) - (theirs * 255).round().astype(int))
    assert diff.max() <= 1
