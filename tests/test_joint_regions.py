"""Regional text in joint attention (`pixels.adapters.joint_regions`): SD3 and Flux, on tiny random transformers.

At a joint attention layer the image positions outside a region get exactly the layer's output for the edit's text
alone, those inside it exactly the output for the region's text alone, and each group's text tokens exactly their
own group's output; through a whole edit a whole-frame region of the edit's own text is the edit, bit for bit, the
model calls do not grow, and a region's text moves its own region most.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import box_map, photo

from pixels import Editor, InputError, Region
from pixels.adapters.joint_regions import RegionalJointAttention
from pixels.adapters.regions import RegionalText, regional

FAST = dict(num_inference_steps=4, guidance_scale=4.0, strength=1.0)


def left_half(size: int = 32) -> np.ndarray:
    m = np.zeros((size, size))
    m[:, : size // 2] = 1.0
    return m


def first(denoiser, name: str):
    """The attention module `name` of the transformer (`transformer_blocks.0.attn`, ...)."""
    return dict(denoiser.named_modules())[name]


@pytest.mark.parametrize("family, layer", [("sd3", "transformer_blocks.0.attn"),
                                           ("flux-dev", "transformer_blocks.0.attn"),
                                           ("flux-dev", "single_transformer_blocks.0.attn")])
def test_at_a_joint_layer_each_position_gets_its_own_group_s_output_bit_for_bit(tiny_pipes, family, layer):
    denoiser = Editor.from_pipe(tiny_pipes(family)).adapter.denoiser
    attn = first(denoiser, layer)
    inner, flux, single = attn.processor, family.startswith("flux"), layer.startswith("single")
    inner = inner.inner if isinstance(inner, RegionalJointAttention) else inner
    wrapped = RegionalJointAttention(inner, text_first=flux)
    generator = torch.Generator().manual_seed(0)
    width = attn.to_q.in_features
    grid_h, grid_w, tokens = 4, 6, 5  # image tokens on a 4x6 grid (a latent of 8x12), 5 text tokens a group
    image = torch.randn(2, grid_h * grid_w, width, generator=generator)
    edit_text, region_text = (torch.randn(2, tokens, width, generator=generator) for _ in range(2))
    masks = torch.zeros(1, grid_h * 2, grid_w * 2)
    masks[:, :, : grid_w] = 1.0  # the left half of the latent: the left 3 of 6 token columns
    text = RegionalText(masks, (tokens, tokens))

    def rotary(n_text: int):
        if not flux:
            return None
        angles = torch.randn(n_text + grid_h * grid_w, attn.head_dim, generator=torch.Generator().manual_seed(1))
        return angles.cos(), angles.sin()

    def alone(words):  # the layer with one group's text, as the model calls it without regions
        rot = rotary(tokens)
        if single:
            out = inner(attn, torch.cat([words, image], 1), None, None, rot)
            return out[:, tokens:], out[:, :tokens]
        return inner(attn, image, words, None, rot) if flux else inner(attn, image, words)

    with torch.no_grad():
        (edit_image, edit_words), (region_image, region_words) = alone(edit_text), alone(region_text)
        full = None
        if flux:  # both groups' text at the positions of the edit's (Flux's text ids are all zero)
            full = tuple(torch.cat([r[:tokens], r[:tokens], r[tokens:]]) for r in rotary(tokens))
        with regional(text):
            if single:
                out = wrapped(attn, torch.cat([edit_text, region_text, image], 1), None, None, full)
                words, ours = out[:, : 2 * tokens], out[:, 2 * tokens:]
            else:
                ours, words = wrapped(attn, image, torch.cat([edit_text, region_text], 1), None, full)
    left = (torch.arange(grid_h * grid_w) % grid_w) < grid_w // 2
    assert torch.equal(ours[:, ~left], edit_image[:, ~left])  # outside the region: the edit's text alone
    assert torch.equal(ours[:, left], region_image[:, left])  # inside: the region's text alone
    assert not torch.equal(edit_image[:, left], region_image[:, left])
    assert torch.equal(words[:, :tokens], edit_words) and torch.equal(words[:, tokens:], region_words)


@pytest.fixture(params=["sd3", "flux-dev", "flux-schnell"])
def editor(request, tiny_pipes):
    return Editor.from_pipe(tiny_pipes(request.param))


def test_a_whole_frame_region_of_the_edit_s_text_is_the_edit_and_calls_do_not_grow(editor):
    """The pooled text embedding (a global input of SD3 and Flux) stays the edit's, so the equality is with the
    edit's own text; the region's group still carries the whole frame (the edit's group has no weight)."""
    calls: list = []
    editor.adapter.denoiser.register_forward_hook(lambda *args: calls.append(1))
    source, white = photo(seed=1), np.ones((32, 32))
    plain = editor.edit(source, strength_map=white, prompt="a fox", seed=3, **FAST)
    n, calls[:] = len(calls), []
    region = editor.edit(source, regions=[Region(white, "a fox")], prompt="a fox", seed=3, **FAST)
    assert np.array_equal(np.asarray(region.image), np.asarray(plain.image))
    assert len(calls) == n and region.metadata["regional_text"] == 1


def test_a_region_s_text_moves_its_own_region_most_and_kept_pixels_stay(editor):
    source, left = photo(seed=2), left_half()
    where = np.maximum(box_map(box=(4, 4, 28, 28)), left)

    def run(words: str) -> np.ndarray:
        result = editor.edit(source, strength_map=box_map(box=(4, 4, 28, 28)), seed=4, prompt="a room",
                             regions=[Region(left, words)], **FAST)
        keep = where == 0
        assert np.array_equal(np.asarray(result.image)[keep], np.asarray(source)[keep])
        return np.asarray(result.image).astype(np.int16)

    a, b, again = run("a red lamp"), run("blue water"), run("a red lamp")
    assert np.array_equal(a, again)
    change = np.abs(a - b).mean(-1)
    assert change[:, :14].mean() > change[:, 18:].mean() > 0  # measured on the tiny models: about 2-3 to 1


def test_flux_refuses_a_region_s_negative_prompt_and_flow_models_region_loras(tiny_pipes, tmp_path):
    flux = Editor.from_pipe(tiny_pipes("flux-dev"))
    with pytest.raises(InputError, match="^regions: Flux models are guidance-distilled"):
        flux.edit(photo(), regions=[Region(left_half(), "a fox", negative_prompt="blur")], seed=1, **FAST)
    with pytest.raises(InputError, match="^loras: a region's own LoRA scales need LoRA layers"):
        flux.edit(photo(), regions=[Region(left_half(), loras={"style": 1.0})], seed=1, **FAST)
