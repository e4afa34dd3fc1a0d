"""Regional text: each region's prompt attended only by the latent positions inside the region, in the one
model call of a step (UNet families: SD 1.x/2.x and SDXL).

The text tokens of an edit are laid out as groups along the token axis: the global prompt first, then each
region's prompt (`RegionalText.tokens` gives their lengths). Every cross-attention layer attends to each
group on its own (softmax over that group's tokens only) and blends the outputs per query position by the
regions' masks, resized to the layer's grid:

    w_r(p) = m_r(p) / max(1, sum_s m_s(p))      w_global(p) = max(0, 1 - sum_s m_s(p))
    out(p) = w_global(p) · A_global(p) + sum_r w_r(p) · A_r(p)

so a position outside every region (all m = 0) gets exactly the global prompt's attention (1 · a + 0 · b =
a, bit for bit), a position inside one region exactly that region's, and gray mask values blend the two.
Overlapping regions share a position in proportion to their masks.

The processors find the edit's regions in a context variable (`regional`), set around the model call, so
nothing about an edit stays in the model between edits; with none set they call the layer's own processor
unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..core.grid import layer_grid as grid

_ACTIVE: contextvars.ContextVar[RegionalText | None] = contextvars.ContextVar("pixels_regional_text", default=None)
_GROUP: contextvars.ContextVar[int] = contextvars.ContextVar("pixels_token_group", default=0)


@dataclass(frozen=True)
class RegionalText:
    """An edit's regions for the cross-attention layers: masks (R, h, w) in [0, 1] on the latent frame (h, w)
    the model is called on, and the lengths of the token groups (global first, then one per region)."""

    masks: torch.Tensor
    tokens: tuple[int, ...]
    # what every step recomputes identically, kept for the edit: each layer's grid weights, and each layer's
    # keys and values of each token group (the text does not change between steps)
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.masks.ndim != 3 or len(self.tokens) != self.masks.shape[0] + 1:
            raise ValueError(f"RegionalText: {self.masks.shape[0]} masks for {len(self.tokens)} token groups")

    def weights(self, positions: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(R + 1, positions, 1): the blend weights of the groups at a layer of `positions` query positions."""
        key = ("weights", positions, dtype, device)
        if key not in self.cache:
            self.cache[key] = blend(self.masks, positions, device)[..., None].to(dtype)
        return self.cache[key]

    def keys_values(self, attn, k: int, group: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer `attn`'s keys and values of token group `k` (`group`, the same tensor at every step)."""
        key = ("kv", id(attn), k, group.data_ptr(), tuple(group.shape))
        if key not in self.cache:
            with token_group(k):
                self.cache[key] = (attn.to_k(group), attn.to_v(group))
        return self.cache[key]


def blend(masks: torch.Tensor, positions: int, device: torch.device) -> torch.Tensor:
    """(R + 1, positions) float32: the weights of the edit's own conditioning and of each region's at a layer
    of `positions` query positions (see the module), from the regions' masks (R, h, w)."""
    masks = grid(masks, positions).to(device=device, dtype=torch.float32)
    total = masks.sum(0, keepdim=True)
    return torch.cat([(1.0 - total).clamp(min=0.0), masks / total.clamp(min=1.0)])


@contextlib.contextmanager
def token_group(k: int) -> Iterator[None]:
    """Within the block, the layers run on token group `k`'s text (0: the edit's own; `current_group`)."""
    token = _GROUP.set(k)
    try:
        yield
    finally:
        _GROUP.reset(token)


def active() -> RegionalText | None:
    """The regions set around the model call now (`regional`), or None."""
    return _ACTIVE.get()


def current_group() -> int:
    """The token group the text layers are running on (0 outside a regional cross-attention layer)."""
    return _GROUP.get()


@contextlib.contextmanager
def regional(text: RegionalText | None) -> Iterator[None]:
    """Within the block, the cross-attention layers a `RegionalCrossAttention` wraps use `text`'s regions."""
    token = _ACTIVE.set(text)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class RegionalCrossAttention:
    """A cross-attention layer's processor, wrapped: with regions set (`regional`), each token group is attended
    on its own and the outputs are blended by the regions' masks (see the module).

    For diffusers' plain processor (`AttnProcessor2_0`) the query and output projections run once and only the
    keys, values and attention run per group, each on exactly the tensors the layer would see with that group
    alone (so a position outside every region is bit for bit the layer's output for the edit's text); any other
    processor (an IP-Adapter's) is called once per group. A group with no weight anywhere on a layer's grid is
    not attended there."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self._takes = set(inspect.signature(inner.__call__).parameters)

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb: torch.Tensor | None = None, ip_adapter_masks: torch.Tensor | None = None) -> torch.Tensor:
        extra = {}
        if temb is not None and "temb" in self._takes:
            extra["temb"] = temb
        if ip_adapter_masks is not None and "ip_adapter_masks" in self._takes:
            extra["ip_adapter_masks"] = ip_adapter_masks
        text = _ACTIVE.get()
        if text is None or encoder_hidden_states is None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, **extra)
        # IP-Adapter layers take (text tokens, [image tokens]): the groups split the text tokens only
        image = None
        if isinstance(encoder_hidden_states, tuple):
            encoder_hidden_states, image = encoder_hidden_states
        if encoder_hidden_states.shape[1] != sum(text.tokens):
            raise ValueError(f"regional text: {encoder_hidden_states.shape[1]} text tokens, expected"
                             f" {sum(text.tokens)}")
        positions = hidden_states.shape[1] if hidden_states.ndim == 3 else math.prod(hidden_states.shape[2:])
        weights = text.weights(positions, hidden_states.dtype, hidden_states.device)
        used = [k for k in range(len(text.tokens)) if bool(weights[k].any())]
        groups = encoder_hidden_states.split(list(text.tokens), dim=1)
        if image is None and attention_mask is None and hidden_states.ndim == 3 and _plain(self.inner, attn):
            keys_values = [text.keys_values(attn, k, groups[k]) for k in used]
            return _grouped(attn, hidden_states, keys_values, [weights[k] for k in used])
        out = None
        for k in used:
            states = groups[k] if image is None else (groups[k], image)
            with token_group(k):
                part = self.inner(attn, hidden_states, states, attention_mask, **extra)
            weight = weights[k] if part.ndim == 3 else weights[k].reshape(1, 1, *part.shape[2:])
            out = part * weight if out is None else out + part * weight
        return out


def _plain(processor, attn) -> bool:
    """Whether a layer runs diffusers' plain scaled-dot-product processor with nothing around the attention
    (no norms, residual or rescaling), as the cross-attention of SD's and SDXL's transformer blocks do."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    return (type(processor) is AttnProcessor2_0 and attn.spatial_norm is None and attn.group_norm is None
            and not attn.residual_connection and attn.rescale_output_factor == 1.0 and not attn.norm_cross
            and attn.norm_q is None and attn.norm_k is None)


def _grouped(attn, hidden_states: torch.Tensor, keys_values: list[tuple[torch.Tensor, torch.Tensor]],
             weights: list[torch.Tensor]) -> torch.Tensor:
    """`AttnProcessor2_0`'s computation with one query and output projection and each group's keys and values
    (`attn.to_k`, `attn.to_v` of its tokens) attended on their own, blended by `weights` ((positions, 1) each)
    before the output projection (which is linear and the weights sum to 1, so this is the blend of the layer's
    outputs)."""
    batch = hidden_states.shape[0]
    query = attn.to_q(hidden_states)
    out = None
    for (key, value), weight in zip(keys_values, weights):
        head_dim = key.shape[-1] // attn.heads
        q = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        part = F.scaled_dot_product_attention(q, key, value, attn_mask=None, dropout_p=0.0, is_causal=False)
        part = part.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = part * weight if out is None else out + part * weight
    return attn.to_out[1](attn.to_out[0](out))


def install(denoiser: torch.nn.Module) -> None:
    """Wrap every cross-attention processor of `denoiser` (a UNet) once; idempotent. With no regions set, the
    wrapped layers compute exactly what they computed before."""
    processors = denoiser.attn_processors
    if all(isinstance(p, RegionalCrossAttention) for name, p in processors.items() if name.endswith("attn2.processor")):
        return
    denoiser.set_attn_processor({
        name: RegionalCrossAttention(p) if name.endswith("attn2.processor") and
        not isinstance(p, RegionalCrossAttention) else p
        for name, p in processors.items()
    })


def token_groups(embeddings: Sequence[torch.Tensor]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The encoder states of the groups (each (B, tokens, D)) laid out along the token axis, and their lengths."""
    return torch.cat(list(embeddings), dim=1), tuple(int(e.shape[1]) for e in embeddings)


__all__ = ["RegionalCrossAttention", "RegionalText", "active", "blend", "current_group", "grid", "install", "regional",
           "token_group", "token_groups"]
