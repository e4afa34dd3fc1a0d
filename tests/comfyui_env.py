"""A ComfyUI to test the PIXELS node pack against, for the ComfyUI test child process only.

`start(comfyui_path)` imports the ComfyUI source tree at `comfyui_path` on the CPU and loads the pack from
integrations/comfyui as a custom node folder; `tiny_models()` builds a randomly initialised SD 1.x-style
MODEL, CLIP and VAE from ComfyUI's own classes with tiny configurations (nothing is downloaded).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.machinery
import sys
import types
from pathlib import Path

PACK = Path(__file__).resolve().parents[1] / "integrations" / "comfyui"


def _torchvision_stand_in() -> None:
    """TEST-ONLY STAND-IN for `torchvision`, made here and nowhere else.

    ComfyUI's core imports torchvision at module level (for model families these tests never build), and the
    torchvision wheels on PyPI do not load beside the CPU build of PyTorch. This empty module satisfies those
    imports; any use of it raises, so a code path that really needed torchvision would fail loudly instead of
    passing. It is put in sys.modules of the test child process only, never in the pack."""
    def module(name: str) -> types.ModuleType:
        stand_in = types.ModuleType(name)
        stand_in.__spec__ = importlib.machinery.ModuleSpec(name, None)
        stand_in.__path__ = []

        def missing(attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)

            def fail(*args, **kwargs):
                raise RuntimeError(f"{name}.{attr} was called: torchvision is only a test-only stand-in here")
            return fail
        stand_in.__getattr__ = missing
        return stand_in

    if "torchvision" in sys.modules:
        return
    try:  # a torchvision that really loads is used as it is
        import torchvision  # noqa: F401
        return
    except Exception:
        sys.modules.pop("torchvision", None)
    root = module("torchvision")
    root.transforms = module("torchvision.transforms")
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = root, root.transforms


def start(comfyui_path: str) -> dict:
    """Import ComfyUI (CPU, no server) and load the pack the way ComfyUI loads custom_nodes/; returns
    ComfyUI's node class mappings."""
    _torchvision_stand_in()
    sys.path.insert(0, str(Path(comfyui_path).resolve()))
    sys.argv = ["main.py", "--cpu"]
    import comfy.options

    comfy.options.enable_args_parsing()
    import nodes

    asyncio.run(nodes.init_builtin_extra_nodes())
    if not asyncio.run(nodes.load_custom_node(str(PACK))):
        raise RuntimeError(f"ComfyUI could not load the node pack at {PACK}")
    return nodes.NODE_CLASS_MAPPINGS


def _init(module, seed: int) -> None:
    """Random weights, seeded (ComfyUI's layers skip initialisation): scalars and norms 1, biases 0, the rest N(0, 1/fan_in)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 0:
                p.fill_(1.0)
            elif p.ndim == 1:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=generator) / fan_in ** 0.5)


CONTEXT = 32  # the tiny text encoder's width, the UNet's cross-attention width


def tiny_models(seed: int = 0):
    """(MODEL, CLIP, VAE): ComfyUI's SD 1.x UNet, CLIP text model and KL autoencoder, tiny and random."""
    import comfy.model_patcher
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models
    import torch

    unet_config = {
        "image_size": 8, "in_channels": 4, "out_channels": 4, "model_channels": 32, "num_res_blocks": [1, 1],
        "channel_mult": [1, 2], "transformer_depth": [1, 1], "transformer_depth_output": [1, 1, 1, 1],
        "transformer_depth_middle": 1, "context_dim": CONTEXT,
        "use_spatial_transformer": True, "legacy": False, "use_linear_in_transformer": False,
        "adm_in_channels": None, "use_temporal_attention": False, "use_temporal_resblock": False,
        "dtype": torch.float32,
    }
    config = comfy.supported_models.SD15(unet_config)
    config.unet_config["num_heads"], config.unet_config["num_head_channels"] = -1, 16
    base = config.get_model({})
    _init(base.diffusion_model, seed)
    cpu = torch.device("cpu")
    model = comfy.model_patcher.ModelPatcher(base, load_device=cpu, offload_device=cpu)

    text = {"hidden_size": CONTEXT, "intermediate_size": 64, "num_attention_heads": 2, "num_hidden_layers": 1,
            "max_position_embeddings": 77, "vocab_size": 49408, "projection_dim": CONTEXT, "hidden_act": "quick_gelu",
            "layer_norm_eps": 1e-5, "bos_token_id": 0, "eos_token_id": 49407, "pad_token_id": 1}
    encoder = functools.partial(comfy.sd1_clip.SDClipModel, textmodel_json_config=text)
    target = types.SimpleNamespace(
        params={}, clip=functools.partial(comfy.sd1_clip.SD1ClipModel, clip_model=encoder),
        tokenizer=comfy.sd1_clip.SD1Tokenizer)
    clip = comfy.sd.CLIP(target, model_options={"load_device": cpu, "offload_device": cpu,
                                                "initial_device": cpu, "dtype": torch.float32})
    _init(clip.cond_stage_model, seed + 1)

    ddconfig = {"double_z": True, "z_channels": 4, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 1, 1, 1], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0}
    vae = comfy.sd.VAE(sd={}, config={"params": {"ddconfig": ddconfig, "embed_dim": 4}}, device=cpu,
                       dtype=torch.float32)
    _init(vae.first_stage_model, seed + 2)
    return model, clip, vae
