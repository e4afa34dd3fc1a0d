"""Regional text in joint attention (SD3 / SD3.5 and Flux): each region's prompt attended only by the image tokens
inside the region, in the one model call of a step.

The text tokens of an edit are laid out as groups along the token axis, as for the UNets (`regions`): the edit's
own first, then each region's. A joint attention layer attends image and text tokens together, so each group is
attended with the image on its own: the layer's own processor runs once per group on [image; that group's text]
(Flux: [text; image], with the rotary embedding of those positions), exactly as it runs for an edit whose text is
that group alone. The image tokens' outputs are blended per position by the regions' masks (`regions.blend`); each
group's text tokens keep their own group's output, so every group's text stream runs through the blocks as it
would alone. A position outside every region gets the layer's output for the edit's own text, bit for bit.

In Flux's single-stream blocks text and image are one sequence, [every group's text; image]: each group is
attended as [its text; image] in the same way.

The cost: the attention layers (their projections included) run once per group, the rest of the model once.
"""

from __future__ import annotations

import inspect

import torch

from . import regions


class RegionalJointAttention:
    """A joint attention layer's processor, wrapped: with regions set (`regions.regional`), the layer runs once per
    token group and the image tokens' outputs are blended by the regions' masks (see the module); with none set it
    calls the layer's own processor unchanged. `text_first`: the layer orders its sequence [text; image] (Flux)
    rather than [image; text] (SD3)."""

    def __init__(self, inner, text_first: bool) -> None:
        self.inner, self.text_first = inner, text_first
        self._rotary = "image_rotary_emb" in inspect.signature(inner.__call__).parameters

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, image_rotary_emb=None):
        text = regions.active()
        if text is None:
            return self._inner(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        if attention_mask is not None:
            raise ValueError("regional text: joint attention with an attention mask is not supported")
        total, starts = sum(text.tokens), [sum(text.tokens[:k]) for k in range(len(text.tokens))]
        if encoder_hidden_states is not None:  # two streams: the image, and the text of every group
            if encoder_hidden_states.shape[1] != total:
                raise ValueError(f"regional text: {encoder_hidden_states.shape[1]} text tokens, expected {total}")
            image, groups = hidden_states, encoder_hidden_states.split(list(text.tokens), dim=1)
        else:  # one stream (Flux's single blocks): [the text of every group; the image]
            image = hidden_states[:, total:]
            groups = hidden_states[:, :total].split(list(text.tokens), dim=1)
        positions = image.shape[1]
        weights = text.weights(positions, image.dtype, image.device)
        blended, texts = None, []
        for k, group in enumerate(groups):
            rotary = _rows(image_rotary_emb, starts[k], text.tokens[k], total, positions)
            with regions.token_group(k):
                if encoder_hidden_states is not None:
                    part, words = self._inner(attn, image, group, None, rotary)
                else:
                    out = self._inner(attn, torch.cat([group, image], dim=1), None, None, rotary)
                    words, part = out[:, :group.shape[1]], out[:, group.shape[1]:]
            texts.append(words)
            blended = part * weights[k] if blended is None else blended + part * weights[k]
        if encoder_hidden_states is not None:
            return blended, torch.cat(texts, dim=1)
        return torch.cat([*texts, blended], dim=1)

    def _inner(self, attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb):
        if self._rotary:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask)


def _rows(rotary, start: int, length: int, total: int, positions: int):
    """Flux's rotary embedding ((cos, sin), each (text + image positions, dim), text first) at the positions of one
    group's text and the image; None stays None (SD3 has none)."""
    if rotary is None:
        return None
    index = torch.cat([torch.arange(start, start + length), torch.arange(total, total + positions)])
    if isinstance(rotary, tuple):
        return tuple(r[index.to(r.device)] for r in rotary)
    return rotary[index.to(rotary.device)]


def install(denoiser: torch.nn.Module, text_first: bool) -> None:
    """Wrap every joint attention processor of `denoiser` (an SD3 or Flux transformer) once; idempotent. SD3.5's
    second, image-only attention (`attn2`) is left alone."""
    processors = denoiser.attn_processors
    joint = [name for name in processors if name.endswith(".attn.processor")]
    if all(isinstance(processors[name], RegionalJointAttention) for name in joint):
        return
    denoiser.set_attn_processor({
        name: RegionalJointAttention(p, text_first) if name in joint and not isinstance(p, RegionalJointAttention)
        else p for name, p in processors.items()
    })


__all__ = ["RegionalJointAttention", "install"]
