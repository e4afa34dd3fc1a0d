"""The extension flags every command that loads a model shares (`pixels edit`, `pixels app`): LoRAs, an
IP-Adapter with its image encoder, a ControlNet; read from text and loaded into an editor."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..errors import InputError


def add_lora_flag(group) -> None:
    """--lora (repeatable): every command that loads a model takes it."""
    group.add_argument("--lora", dest="loras", action="append", default=[], metavar="ID|PATH[:SCALE]",
                       help="a LoRA (hub id, folder or .safetensors file) at SCALE (default 1; 0: only where a"
                            " region scales it, by its file's stem); repeat for several")


def add_extension_flags(group, *, controlnet_help: str) -> None:
    """--lora (repeatable), --ip-adapter, --image-encoder and --controlnet."""
    add_lora_flag(group)
    group.add_argument("--ip-adapter", metavar="ID|PATH[:WEIGHT_NAME]",
                       help="an IP-Adapter, e.g. h94/IP-Adapter:models/ip-adapter_sd15.safetensors: exemplars with a"
                            " condition weight prompt their region, prompt images the whole frame")
    group.add_argument("--image-encoder", metavar="ID|PATH",
                       help="the IP-Adapter's CLIP image encoder (default: its image_encoder folder)")
    group.add_argument("--controlnet", metavar="ID|PATH", help=controlnet_help)


def check_extension_flags(args: argparse.Namespace) -> None:
    """What the extension flags say on their own, before loading: every LoRA reads, an encoder has its adapter."""
    if args.image_encoder and not args.ip_adapter:
        raise InputError("the image encoder belongs to an --ip-adapter; give one", param="image_encoder")
    for text in args.loras:
        split_weight(text, "lora", scale=True)


def maybe_float(text: str) -> float | None:
    """`text` as a number, or None when it is not one."""
    try:
        return float(text)
    except ValueError:
        return None


def split_weight(text: str, param: str, *, scale: bool) -> tuple[str, str | None, float | None]:
    """ID|PATH[:SUFFIX] -> (model, weight file name or None, scale or None). A path that exists is all path;
    a file is split into its folder and its name (diffusers loads weights from a folder or a hub id)."""
    model, suffix = text, None
    if not os.path.exists(text) and ":" in text:
        model, _, suffix = text.rpartition(":")
        if scale and maybe_float(suffix) is None:
            raise InputError(f"{text!r}: expected ID|PATH[:SCALE], e.g. style.safetensors:0.8", param=param)
    if not model:
        raise InputError(f"{text!r}: no model before the ':'", param=param)
    weight_name = None if scale else suffix
    path = Path(model).expanduser()
    if path.is_file():
        if weight_name is not None:
            raise InputError(f"{text!r}: a file is its own weights; give the folder with :WEIGHT_NAME", param=param)
        model, weight_name = str(path.parent), path.name
    if not scale:
        return model, weight_name, None
    return model, weight_name, float(suffix) if suffix else 1.0


def load_extensions(args: argparse.Namespace, editor) -> None:
    """Load the LoRAs, IP-Adapter and ControlNet the flags name into a loaded editor."""
    offline = True if args.offline else None
    for text in args.loras:
        model, weight_name, scale = split_weight(text, "lora", scale=True)
        editor.load_lora(model, scale, weight_name=weight_name, allow_unsafe_pickle=args.allow_unsafe_pickle,
                         local_files_only=offline)
    if args.ip_adapter:
        model, weight_name, _ = split_weight(args.ip_adapter, "ip_adapter", scale=False)
        if weight_name is None:
            raise InputError(f"{args.ip_adapter!r}: name the weights, as h94/IP-Adapter:models/ip-adapter_sd15"
                             ".safetensors", param="ip_adapter")
        subfolder, _, name = weight_name.rpartition("/")
        editor.load_ip_adapter(model, name, subfolder=subfolder, image_encoder=args.image_encoder,
                               allow_unsafe_pickle=args.allow_unsafe_pickle, local_files_only=offline)
    if args.controlnet:
        editor.load_controlnet(args.controlnet, allow_unsafe_pickle=args.allow_unsafe_pickle, local_files_only=offline)
