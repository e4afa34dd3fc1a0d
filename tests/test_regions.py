"""Regional text in the cross-attention layers (`pixels.adapters.regions`), on a tiny random UNet.

The invariants: with no region the wrapped model computes what it computed before, bit for bit; an empty
region changes nothing, bit for bit; one region over the whole frame is exactly the model called with that
region's text; at an attention layer, positions outside a region get exactly the global text's attention and
positions inside it exactly the region's; the masks follow the UNet's grids at odd frame sizes.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from pixels.adapters.regions import RegionalCrossAttention, RegionalText, grid, install, regional, token_groups
from pixels.testing.tiny import unet_kwargs


@pytest.fixture(scope="module")
def unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return UNet2DConditionModel(**unet_kwargs()).eval()


def states(tokens: int, seed: int, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, tokens, 32, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(1)
    return torch.randn(2, 4, 12, 10, generator=generator), torch.tensor(500)


def call(unet, latents, t, encoder):
    with torch.no_grad():
        return unet(latents, t, encoder_hidden_states=encoder, return_dict=False)[0]


def test_wrapped_layers_compute_what_they_did_without_regions(unet, inputs):
    latents, t = inputs
    text = states(7, 2)
    before = call(unet, latents, t, text)
    install(unet)
    install(unet)  # idempotent: each layer wrapped once
    wrapped = [p for name, p in unet.attn_processors.items() if name.endswith("attn2.processor")]
    assert wrapped and all(isinstance(p, RegionalCrossAttention) and not isinstance(p.inner, RegionalCrossAttention)
                           for p in wrapped)
    assert not any(isinstance(p, RegionalCrossAttention) for name, p in unet.attn_processors.items()
                   if name.endswith("attn1.processor"))  # self-attention is left alone
    assert torch.equal(call(unet, latents, t, text), before)


def test_an_empty_region_changes_nothing_and_a_whole_frame_region_is_its_text(unet, inputs):
    latents, t = inputs
    install(unet)
    global_text, region_text = states(7, 2), states(5, 3)
    alone = call(unet, latents, t, global_text)
    encoder, tokens = token_groups([global_text, region_text])
    with regional(RegionalText(torch.zeros(1, 12, 10), tokens)):
        assert torch.equal(call(unet, latents, t, encoder), alone)
    only_region = call(unet, latents, t, region_text)
    with regional(RegionalText(torch.ones(1, 12, 10), tokens)):
        assert torch.equal(call(unet, latents, t, encoder), only_region)
    assert torch.equal(call(unet, latents, t, global_text), alone)  # nothing stays set after the block


def test_at_a_layer_outside_a_region_is_the_global_text_and_inside_it_the_regions():
    torch.manual_seed(4)
    attn = Attention(16, cross_attention_dim=32, heads=2, dim_head=8, processor=AttnProcessor2_0()).eval()
    hidden = torch.randn(2, 6 * 5, 16)
    global_text, region_text = states(7, 5), states(4, 6)
    mask = torch.zeros(1, 6, 5)
    mask[0, :, 3:] = 1.0  # the right two columns
    mask[0, 0, 2] = 0.5  # one gray position
    with torch.no_grad():
        plain = attn(hidden, global_text)
        only_region = attn(hidden, region_text)
        attn.set_processor(RegionalCrossAttention(attn.processor))
        encoder, tokens = token_groups([global_text, region_text])
        with regional(RegionalText(mask, tokens)):
            mixed = attn(hidden, encoder)
    flat = mask.reshape(-1)
    assert torch.equal(mixed[:, flat == 0], plain[:, flat == 0])  # bit for bit outside
    assert torch.equal(mixed[:, flat == 1], only_region[:, flat == 1])  # and inside
    gray = int((flat == 0.5).nonzero()[0])
    torch.testing.assert_close(mixed[:, gray], 0.5 * plain[:, gray] + 0.5 * only_region[:, gray])


def test_overlapping_regions_share_a_position_and_the_global_text_gets_what_is_left():
    masks = torch.tensor([[[1.0, 0.5, 0.0]], [[1.0, 0.25, 0.0]]])  # (R=2, h=1, w=3)
    weights = RegionalText(masks, (3, 2, 2)).weights(3, torch.float32, torch.device("cpu"))[..., 0]
    torch.testing.assert_close(weights, torch.tensor([[0.0, 0.25, 1.0], [0.5, 0.5, 0.0], [0.5, 0.25, 0.0]]))
    assert torch.equal(weights.sum(0), torch.ones(3))


def test_masks_follow_the_unets_grids_at_odd_frame_sizes():
    mask = torch.zeros(1, 9, 13)
    mask[0, :, 8:] = 1.0  # the right 5 of 13 columns
    assert torch.equal(grid(mask, 9 * 13), mask.reshape(1, -1))
    half = grid(mask, 5 * 7).reshape(5, 7)  # ceil(9 / 2) x ceil(13 / 2)
    assert (half[:, :4] == 0).all() and (half[:, 5:] == 1).all()  # averaging keeps outside exactly 0
    assert grid(mask, 3 * 4).shape == (1, 12)
    with pytest.raises(ValueError, match="no grid of 11 positions for a 9x13 latent frame"):
        grid(mask, 11)
    with pytest.raises(ValueError, match="1 masks for 3 token groups"):
        RegionalText(mask, (7, 5, 4))
