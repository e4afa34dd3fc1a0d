"""Inpainting checkpoints (9-channel UNets): each step sees the mask of the pixels not yet released."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_map, make_scheduler, make_tokenizer, make_vae, photo, text_config, unet_kwargs
from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel
from PIL import Image
from transformers import CLIPTextModel

from pixels import Editor, Exemplar
from pixels.cli import main
from pixels.core.release import keep_mask, to_latent_map

FAST = dict(num_inference_steps=6, guidance_scale=4.0, seed=5)


@pytest.fixture(scope="module")
def inpaint_pipe(tmp_path_factory):
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**{**unet_kwargs(), "in_channels": 9})
    return StableDiffusionInpaintPipeline(
        vae=make_vae(), text_encoder=CLIPTextModel(text_config()),
        tokenizer=make_tokenizer(tmp_path_factory.mktemp("t")),
        unet=unet, scheduler=make_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def test_each_step_gets_the_released_mask_and_the_masked_source(inpaint_pipe):
    editor = Editor.from_pipe(inpaint_pipe)
    inputs = []
    handle = editor.adapter.denoiser.register_forward_hook(lambda module, args, out: inputs.append(args[0].clone()))
    m = np.zeros((32, 32))
    m[:, 16:] = np.linspace(0.1, 1.0, 16)  # pixels released at different steps
    exemplar = Exemplar(photo(32, 32, seed=3), box_map(box=(24, 8, 32, 24)))
    try:
        editor.edit(photo(32, 32, seed=1), strength_map=m, exemplars=[exemplar], skip_steps="never", **FAST)
    finally:
        handle.remove()
    f = editor.adapter.vae_scale_factor
    keep = to_latent_map(1.0 - np.maximum(m, box_map(box=(24, 8, 32, 24))), (32 // f, 32 // f))
    steps = len(inputs)
    masked_first = inputs[0][:, 5:]
    for i, x in enumerate(inputs):
        released = (~keep_mask(keep, i, steps)).float()
        assert torch.equal(x[:, 4:5], released.expand(2, -1, -1, -1))  # both guidance branches
        # where still pinned: the source's latents, the same at every step; released: the blank frame's
        pinned = keep_mask(keep, i, steps).expand_as(masked_first)
        assert torch.equal(x[:, 5:][pinned], masked_first[pinned])
    # released pixels show the blank frame's latents: the same at every step, not the source's
    first, last = (~keep_mask(keep, i, steps).expand_as(masked_first) for i in (0, steps - 1))
    assert first.any() and torch.equal(inputs[-1][:, 5:][first], masked_first[first])
    newly = last & ~first
    assert newly.any() and not torch.equal(inputs[-1][:, 5:][newly], masked_first[newly])


def test_cli_runs_an_inpainting_checkpoint(tmp_path, inpaint_pipe):
    folder = tmp_path / "tiny-inpaint"
    inpaint_pipe.save_pretrained(folder, safe_serialization=True)
    photo(32, 32, seed=1).save(tmp_path / "src.png")
    Image.fromarray((box_map() * 255).astype(np.uint8)).save(tmp_path / "map.png")
    out = tmp_path / "out.png"
    code = main(["edit", str(tmp_path / "src.png"), "--map", str(tmp_path / "map.png"), "--model", str(folder),
                 "--steps", "4", "--seed", "0", "-o", str(out), "-q"])
    assert code == 0 and out.exists()

