"""PIXELS Regional LoRA: a LoRA applied only inside a region's MASK, in the one model call of each step, for
ComfyUI's SD 1.x/2.x and SDXL UNets.

A LoRA adds `delta(x) = up(down(x)) · alpha / r · strength` to every layer it targets. Here each targeted layer of
the UNet adds its delta scaled per position by the region's mask, resized to the layer's grid by pixels'
`layer_grid` (area averaging, so a position wholly outside the mask gets exactly 0):

- layers whose input is the latent grid (convolutions, attention projections, feed-forwards, proj_in/out): the
  delta times the mask;
- the cross-attention keys and values, whose input is text: each region's LoRA'd keys and values are a token
  group of their own, attended on its own, and the outputs are blended per position,
  `out = A_0 + sum_n m_n · (A_n - A_0)` (A_0 the model's own);
- a resblock's time-embedding projection (no position): its delta is added by position where the resblock adds
  the time embedding to the grid.

The model-wide embeddings (the timestep MLP, SDXL's label embedding) have no position and are left as they are.
Several nodes chain: their deltas add, as several LoRAs loaded globally add. A white mask equals ComfyUI's own
LoRA loader at the same strength; a black one leaves the model's output unchanged, bit for bit. The layers are
hooked for the duration of each model call of the patched MODEL only, so the model ComfyUI shares between
clones is never changed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from comfy_api.latest import io

from pixels.core.grid import layer_grid
from pixels.errors import InputError

from .convert import to_map
from .surgery import check_fit

KEY = "pixels_regional_lora"  # the plan's key in transformer_options, and the wrappers'
STRENGTH = (-4.0, 4.0)


@dataclass(frozen=True)
class Layer:
    """One layer's LoRA factors for one node: `down` and `up` (as the LoRA file holds them), `unit` = alpha / r,
    and for a convolution its stride, padding and dilation."""

    down: torch.Tensor
    up: torch.Tensor
    unit: float
    conv: tuple | None = None
    cast: dict = field(default_factory=dict, compare=False, repr=False)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.dtype, x.device)
        if key not in self.cast:
            self.cast[key] = (self.down.to(x), self.up.to(x))
        down, up = self.cast[key]
        if self.conv is None:
            return torch.nn.functional.linear(torch.nn.functional.linear(x, down), up) * self.unit
        stride, padding, dilation = self.conv
        low = torch.nn.functional.conv2d(x, down, None, stride, padding, dilation)
        return torch.nn.functional.conv2d(low, up) * self.unit


@dataclass(frozen=True)
class Region:
    """One node: its mask (1, H, W) at the picture's size, its strength and its LoRA's layers by module path
    (relative to the diffusion model; `_target` tells their kind)."""

    mask: torch.Tensor
    strength: float
    layers: dict[str, Layer]
    cache: dict = field(default_factory=dict, compare=False, repr=False)

    def at(self, positions: int, like: torch.Tensor) -> torch.Tensor:
        """(positions,) of like's dtype and device: the mask on a layer grid of `positions` positions."""
        key = (positions, like.dtype, like.device)
        if key not in self.cache:  # the mask fits the latent (checked at every model call): every grid exists
            self.cache[key] = layer_grid(self.mask, positions)[0].to(like)
        return self.cache[key]


def _target(name: str) -> str:
    """A layer's kind from its path: cross-attention keys and values take text, a resblock's emb_layers the time
    embedding, every other targeted layer the latent grid."""
    if name.endswith(("attn2.to_k", "attn2.to_v")):
        return "text"
    if name.endswith("emb_layers.1"):
        return "time"
    return "grid"


def _layers(model, lora: dict[str, torch.Tensor], name: str) -> dict[str, Layer]:
    """The LoRA's UNet layers, by ComfyUI's own key map and loader; refuses what cannot be scaled by position."""
    import comfy.lora
    import comfy.utils
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.weight_adapter.lora import LoRAAdapter

    unet = model.get_model_object("diffusion_model")
    if not isinstance(unet, UNetModel):
        raise InputError(f"this model's diffusion model is a {type(unet).__name__}: a LoRA is applied by region"
                         " in SD 1.x/2.x and SDXL UNets only", param="model")
    patches = comfy.lora.load_lora(lora, comfy.lora.model_lora_keys_unet(model.model, {}), log_missing=False)
    layers: dict[str, Layer] = {}
    for key, patch in patches.items():
        if not key.startswith("diffusion_model.") or not key.endswith(".weight"):
            raise InputError(f"{name} patches {key}, which a region cannot scale by position: only LoRA"
                             " (up/down) weights are applied by region", param="lora_name")
        path = key[len("diffusion_model."):-len(".weight")]
        if not isinstance(patch, LoRAAdapter):
            kind = type(patch).__name__ if not isinstance(patch, tuple) else patch[0]
            raise InputError(f"{name} holds a {kind} patch for {path}; only plain LoRA (up/down) is applied by"
                             " region (load it globally with ComfyUI's LoRA loader)", param="lora_name")
        up, down, alpha, mid, dora, reshape = patch.weights
        if mid is not None or dora is not None or reshape is not None:
            raise InputError(f"{name} is a LoCon-mid, DoRA or reshaped LoRA at {path}; only plain LoRA (up/down)"
                             " is applied by region", param="lora_name")
        if path.startswith(("time_embed.", "label_emb.")):
            continue  # the model-wide embeddings have no position: left as they are (see the module)
        module = comfy.utils.get_attr(unet, path)
        if _target(path) == "time":
            resblock = comfy.utils.get_attr(unet, path.rsplit(".emb_layers.", 1)[0])
            if getattr(resblock, "use_scale_shift_norm", False):
                raise InputError(f"{name} targets {path}, a scale-shift resblock's time embedding, which a region"
                                 " cannot scale by position", param="lora_name")
        conv = None
        if isinstance(module, torch.nn.Conv2d):
            conv = (module.stride, module.padding, module.dilation)
            down = down if down.ndim == 4 else down[:, :, None, None]
            up = up if up.ndim == 4 else up[:, :, None, None]
        elif isinstance(module, torch.nn.Linear):
            down, up = down.flatten(1), up.flatten(1)
        else:
            raise InputError(f"{name} targets {path}, a {type(module).__name__}: a region scales Linear and Conv2d"
                             " layers only", param="lora_name")
        unit = 1.0 if alpha is None else float(alpha) / down.shape[0]
        layers[path] = Layer(down.float(), up.float(), unit, conv)
    if not layers:
        raise InputError(f"{name} targets no layer of this model's UNet (a LoRA for another model family, or for"
                         " the text encoder only)", param="lora_name")
    return layers


def _groups(plan: tuple[Region, ...]) -> dict[str, list[int]]:
    """Each cross-attention layer (path) whose keys or values some region's LoRA targets: those regions."""
    groups: dict[str, list[int]] = {}
    for k, region in enumerate(plan):
        for path in region.layers:
            if _target(path) == "text":
                attn = path.rsplit(".", 1)[0]
                if k not in groups.setdefault(attn, []):
                    groups[attn].append(k)
    return groups


def _grid_hook(plan: tuple[Region, ...], path: str):
    def hook(module, args, output):
        x = args[0]
        positions = math.prod(output.shape[2:]) if output.ndim == 4 else output.shape[1]
        for region in plan:
            if path in region.layers:
                scale = region.at(positions, output) * region.strength
                scale = scale.reshape(1, 1, *output.shape[2:]) if output.ndim == 4 else scale[None, :, None]
                output = output + region.layers[path].delta(x) * scale
        return output
    return hook


def _text_hook(plan: tuple[Region, ...], path: str, members: list[int]):
    """Keys or values: the model's own, then one token group per region of `members`, along the token axis."""
    def hook(module, args, output):
        parts = [output]
        for k in members:
            entry = plan[k].layers.get(path)
            parts.append(output if entry is None else output + entry.delta(args[0]) * plan[k].strength)
        return torch.cat(parts, dim=1)
    return hook


def _time_hooks(plan: tuple[Region, ...], path: str, stash: dict):
    """The time embedding's delta, kept by the projection; added by position before the resblock's second norm."""
    def keep(module, args, output):
        stash[path] = [(region, region.layers[path].delta(args[0])) for region in plan if path in region.layers]
        return None

    def add(module, args):
        grid = args[0]
        for region, delta in stash.pop(path, ()):
            scale = region.at(math.prod(grid.shape[2:]), grid) * region.strength
            grid = grid + delta.to(grid)[:, :, None, None] * scale.reshape(1, 1, *grid.shape[2:])
        return (grid, *args[1:])
    return keep, add


class GroupedAttention:
    """An attn2 replace patch: the keys and values arrive as the model's own group and one per region; each group
    is attended on its own (by the replace patch found before, or ComfyUI's attention) and blended per position."""

    def __init__(self, members: list[int], inner=None) -> None:
        self.members, self.inner = members, inner

    def __call__(self, q, k, v, extra_options):
        plan = extra_options[KEY]
        count = len(self.members) + 1
        tokens = k.shape[1] // count
        outs = []
        for g in range(count):
            kg, vg = (t[:, g * tokens:(g + 1) * tokens].contiguous() for t in (k, v))
            if self.inner is not None:
                outs.append(self.inner(q, kg, vg, extra_options))
            else:
                from comfy.ldm.modules.attention import optimized_attention
                outs.append(optimized_attention(q, kg, vg, extra_options["n_heads"],
                                                attn_precision=extra_options.get("attn_precision")))
        out = outs[0]
        for k_region, other in zip(self.members, outs[1:]):
            out = out + (other - outs[0]) * plan[k_region].at(q.shape[1], out)[None, :, None]
        return out


def _block(path: str) -> tuple[str, int, int]:
    """ComfyUI's attn2 replace key of a cross-attention layer's path: (input|middle|output, block, transformer)."""
    parts = path.split(".")
    if parts[0] == "middle_block":
        return "middle", 0, int(parts[parts.index("transformer_blocks") + 1])
    return parts[0].split("_")[0], int(parts[1]), int(parts[parts.index("transformer_blocks") + 1])


def _call(executor, x, *args, **kwargs):
    """The DIFFUSION_MODEL wrapper: the layers hooked by the plan for this call only."""
    options = args[4] if len(args) > 4 else kwargs.get("transformer_options", {})
    plan: tuple[Region, ...] = options[KEY]
    unet = executor.class_obj
    for region in plan:  # a prompt set to an area samples a crop of the latent: refused here
        check_fit(tuple(region.mask.shape[-2:]), x, "region")
    modules = dict(unet.named_modules())
    groups = _groups(plan)
    replaces = options.get("patches_replace", {}).get("attn2", {})
    for attn, members in groups.items():
        if not (isinstance(found := replaces.get(_block(attn)), GroupedAttention) and found.members == members):
            raise InputError(f"a node after PIXELS Regional LoRA replaced the cross-attention of {attn}, which"
                             " attends the regions' keys and values: put PIXELS Regional LoRA after it", param="model")
    stash: dict = {}
    handles = []
    try:
        for path in dict.fromkeys(p for region in plan for p in region.layers):
            kind, module = _target(path), modules[path]
            if kind == "grid":
                handles.append(module.register_forward_hook(_grid_hook(plan, path)))
            elif kind == "text":
                handles.append(module.register_forward_hook(_text_hook(plan, path, groups[path.rsplit(".", 1)[0]])))
            else:
                keep, add = _time_hooks(plan, path, stash)
                norm = modules[path.rsplit(".emb_layers.", 1)[0] + ".out_layers.0"]
                handles += [module.register_forward_hook(keep), norm.register_forward_pre_hook(add)]
        return executor(x, *args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()


def regional_lora(model, lora_path: str, strength: float, region) -> object:
    """A clone of `model` that applies the LoRA at `lora_path` at `strength` inside `region` (a MASK)."""
    import comfy.patcher_extension
    import comfy.utils

    name = lora_path.replace("\\", "/").rsplit("/", 1)[-1]
    if not (STRENGTH[0] <= strength <= STRENGTH[1]) or math.isnan(strength):
        raise InputError(f"strength {strength} is outside [{STRENGTH[0]:g}, {STRENGTH[1]:g}]", param="strength")
    mask = torch.from_numpy(to_map(region, "region")).float()[None]
    layers = _layers(model, comfy.utils.load_torch_file(lora_path, safe_load=True), name)
    patched = model.clone()
    options = patched.model_options.setdefault("transformer_options", {})
    plan = (*options.get(KEY, ()), Region(mask, float(strength), layers))
    options = patched.model_options["transformer_options"] = {**options, KEY: plan}
    replaces = options.get("patches_replace", {}).get("attn2", {})
    for attn, members in _groups(plan).items():
        block = _block(attn)
        found = replaces.get(block)
        inner = found.inner if isinstance(found, GroupedAttention) else found
        patched.set_model_attn2_replace(GroupedAttention(members, inner), *block)
    patched.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY)
    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, KEY, _call)
    return patched


class PixelsRegionalLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import folder_paths

        return io.Schema(
            node_id="PixelsRegionalLoRA",
            display_name="PIXELS Regional LoRA",
            category="pixels",
            description="Apply a LoRA only inside a region: every layer it targets adds its delta scaled by the"
                        " mask at that layer's grid, in the same model call (SD 1.x/2.x, SDXL). Chain several"
                        " for several LoRAs in several regions. White everywhere equals ComfyUI's own LoRA"
                        " loader; black changes nothing.",
            inputs=[
                io.Model.Input("model"),
                io.Combo.Input("lora_name", options=folder_paths.get_filename_list("loras"),
                               tooltip="a LoRA from ComfyUI's loras folder"),
                io.Float.Input("strength", default=1.0, min=STRENGTH[0], max=STRENGTH[1], step=0.01,
                               tooltip="the LoRA's strength where the mask is 1"),
                io.Mask.Input("region", tooltip="where the LoRA applies: 1 fully, 0 not at all, gray in part"
                                                " (the picture's size)"),
            ],
            outputs=[io.Model.Output(display_name="model")],
        )

    @classmethod
    def execute(cls, model, lora_name, strength, region) -> io.NodeOutput:
        import folder_paths

        return io.NodeOutput(regional_lora(model, folder_paths.get_full_path_or_raise("loras", lora_name),
                                           strength, region))
