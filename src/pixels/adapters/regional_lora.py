"""Regional LoRA: a LoRA applied by region, in the same one model call of a step (UNet families: SD 1.x/2.x and
SDXL, the LoRAs loaded through diffusers' peft integration).

A LoRA adds `delta(x) = B(A(x)) · alpha / r · scale` to every layer it wraps. For the LoRAs a region sets a scale
of its own, the model call runs with them out of peft's active set, and each wrapped layer adds their delta
after its own output, scaled per position on layers whose input is the latent grid (the convolutions, the
attention projections, the feed-forwards):

    s(p) = s_edit · w_global(p) + sum_r s_r · w_r(p)

with the blend weights of regional text (`regions.blend`) over the regions that set scales: a position outside
every such region gets exactly the edit's scale, one inside a region that region's. The cross-attention keys and
values, whose input is text, take the scale of the token group they are computed for: a region whose scales
differ has a token group of its own (its prompt, or the edit's), attended only inside it (`regions`), so its keys
and values carry its LoRA under the same masks. A resnet's time-embedding projection has no position: it runs at
the edit's scale and its delta at each position's scale is added where the resnet adds the time embedding to the
grid (before its second norm). The model-wide embeddings (SDXL's added time and text embedding) keep the edit's
scale.

The layers find the edit's scales in a context variable (`applied`), set around the model call, so nothing
about an edit stays in the model between edits; with none set the hooks return the layer's output unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from ..errors import InputError
from . import regions

_ACTIVE: contextvars.ContextVar[RegionalLoRA | None] = contextvars.ContextVar("pixels_regional_lora", default=None)
_HOOKED = "_pixels_regional_lora"  # the attribute marking a layer whose hook is installed


@dataclass(frozen=True)
class RegionalLoRA:
    """An edit's LoRA scales by region: `adapters` (peft adapter names) at `edit` scales outside every region,
    at `scales[r]` inside region r (masks (R, h, w) on the latent frame), and at `groups[k]` on the keys and
    values of token group k (group 0: the edit's text). `layers`: the wrapped layers holding any of them, each
    with its kind (`lora_layers`)."""

    adapters: tuple[str, ...]
    edit: tuple[float, ...]
    masks: torch.Tensor
    scales: tuple[tuple[float, ...], ...]
    groups: tuple[tuple[float, ...], ...]
    layers: tuple[tuple[torch.nn.Module, str], ...] = field(repr=False)
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # each grid's scales, kept for the edit

    def at(self, positions: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """(adapters, positions) of `dtype`: each adapter's scale at every position of a layer's grid."""
        key = (positions, dtype, device)
        if key not in self.cache:
            table = torch.tensor([self.edit, *self.scales], dtype=torch.float32, device=device)  # (R + 1, A)
            self.cache[key] = (table.T @ regions.blend(self.masks, positions, device)).to(dtype)
        return self.cache[key]


def lora_layers(denoiser: torch.nn.Module, adapters: Sequence[str]) -> tuple[tuple[torch.nn.Module, str], ...]:
    """The peft LoRA layers of `denoiser` that hold any of `adapters`, each with its kind: "text" (a
    cross-attention layer's key or value projection), "time" (a resnet's time-embedding projection, whose delta
    is added by position at the resnet's second norm) or "grid" (any other: by the positions of its input). A LoRA
    fused into the weights or a DoRA one is refused: neither can be scaled by position."""
    from diffusers.models.attention_processor import Attention
    from peft.tuners.lora import LoraLayer

    kinds = {id(getattr(module, name)): "text" for module in denoiser.modules()
             if isinstance(module, Attention) and module.is_cross_attention for name in ("to_k", "to_v")}
    kinds |= {id(module.time_emb_proj): "time" for module in _resnets(denoiser)}
    found = []
    for module in denoiser.modules():
        if not isinstance(module, LoraLayer) or not any(a in module.lora_A for a in adapters):
            continue
        if module.merged:
            raise InputError("a LoRA fused into the model's weights cannot be applied by region; unfuse it",
                             param="loras")
        if any(a in getattr(module, "lora_variant", {}) or getattr(module, "use_dora", {}).get(a) for a in adapters):
            raise InputError("a DoRA (or other variant) LoRA cannot be applied by region: only a plain low-rank"
                             " delta is scaled by position", param="loras")
        found.append((module, kinds.get(id(module), "grid")))
    return tuple(found)


def _resnets(denoiser: torch.nn.Module) -> list[torch.nn.Module]:
    """The resnets that add their time-embedding projection to the grid before their second norm."""
    from diffusers.models.resnet import ResnetBlock2D

    return [module for module in denoiser.modules() if isinstance(module, ResnetBlock2D)
            and module.time_emb_proj is not None and module.time_embedding_norm == "default"]


def install(denoiser: torch.nn.Module, layers: Sequence[tuple[torch.nn.Module, str]]) -> None:
    """Hook every layer once, and the second norm of each resnet whose time projection is one of them
    (idempotent): with no regional scales set, a hooked layer computes what it did."""
    for module, kind in layers:
        if not hasattr(module, _HOOKED):
            module.register_forward_hook(_after_layer(kind))
            setattr(module, _HOOKED, True)
    timed = {id(module) for module, kind in layers if kind == "time"}
    for resnet in _resnets(denoiser):
        if id(resnet.time_emb_proj) in timed and not hasattr(resnet.norm2, _HOOKED):
            resnet.norm2.register_forward_pre_hook(_time_by_position(resnet))  # the grid with the time added
            setattr(resnet.norm2, _HOOKED, True)


@contextlib.contextmanager
def applied(plan: RegionalLoRA | None) -> Iterator[None]:
    """Within the block, `plan`'s adapters are out of peft's active set on its layers and the hooks add them
    by region; peft's own state is restored after."""
    if plan is None:
        yield
        return
    saved = [(module, module._active_adapter) for module, _ in plan.layers]
    token = _ACTIVE.set(plan)
    try:
        for module, active in saved:
            names = [active] if isinstance(active, str) else list(active)
            module._active_adapter = [name for name in names if name not in plan.adapters]
        yield
    finally:
        _ACTIVE.reset(token)
        for module, active in saved:
            module._active_adapter = active


def _after_layer(kind: str):
    def hook(module, args, output):
        plan = _ACTIVE.get()
        if plan is None or not args:
            return None
        x = args[0]
        time = kind == "time" and x.ndim == 2
        if time:
            plan.cache[("time", id(module))] = stash = {}
        if kind == "text":
            scales = plan.groups[regions.current_group()]
        elif x.ndim == 3:  # (batch, positions, channels): a transformer block's tokens
            scales = plan.at(output.shape[1], output.dtype, output.device)[..., None]
        elif x.ndim == 4:  # (batch, channels, height, width): a convolution
            scales = plan.at(math.prod(output.shape[2:]), output.dtype, output.device).reshape(
                len(plan.adapters), 1, *output.shape[2:])
        else:  # no positions: the time embedding
            scales = plan.edit
        for k, adapter in enumerate(plan.adapters):
            if adapter not in module.lora_A or not time and isinstance(scales[k], float) and scales[k] == 0.0:
                continue
            lora_a, lora_b = module.lora_A[adapter], module.lora_B[adapter]
            unit = module.lora_alpha[adapter] / (math.sqrt(module.r[adapter]) if module.use_rslora[adapter]
                                                 else module.r[adapter])
            delta = lora_b(lora_a(module.lora_dropout[adapter](x.to(lora_a.weight.dtype)))).to(output.dtype)
            if time:
                stash[k] = delta * unit
            output = output + delta * (scales[k] * unit)
        return output
    return hook


def _time_by_position(resnet: torch.nn.Module):
    """A resnet's second norm's pre-hook: the grid it normalises has the time embedding (at the edit's scales)
    added; this adds each adapter's time delta at every position's scale less the edit's."""
    def hook(module, args):
        plan = _ACTIVE.get()
        stash = None if plan is None else plan.cache.pop(("time", id(resnet.time_emb_proj)), None)
        if not stash or not args or args[0].ndim != 4:
            return None
        grid = args[0]
        scales = plan.at(math.prod(grid.shape[2:]), grid.dtype, grid.device)
        for k, delta in stash.items():
            extra = (scales[k] - plan.edit[k]).reshape(1, 1, *grid.shape[2:])
            grid = grid + delta[:, :, None, None] * extra
        return (grid, *args[1:])
    return hook


__all__ = ["RegionalLoRA", "applied", "install", "lora_layers"]
