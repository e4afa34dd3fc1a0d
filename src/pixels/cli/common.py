"""What every subcommand shares: exit codes, notes on stderr, the progress bar, the argument parser, and
the one table that maps Python parameters to the flags that set them."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any

from ..core.settings import SEED, Option, options, spec_key_of
from ..errors import InputError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_PARTIAL = 3  # pixels batch: some rows failed, the others are done
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM

def flag_of(name: str, option: Option) -> str:
    """The `pixels edit` flag of a setting: its short name with dashes (`num_inference_steps` -> `--steps`)."""
    return "--" + spec_key_of(name, option).replace("_", "-")


def text_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """A library text parser (ValueError on bad text) as an argparse type, its message kept."""

    def read(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    read.__name__ = parse.__name__
    return read


# Python parameter -> the flag that sets it, so that library errors read in command-line terms
PARAMETER_FLAGS = {f.name: flag_of(f.name, option) for f, option in options()} | {
    "seed": flag_of("seed", SEED), "strength_map": "--map", "prompt_images": "--prompt-image", "refiner": "--refiner",
    "device": "--device", "dtype": "--dtype", "cpu_offload": "--cpu-offload", "max_megapixels": "--max-megapixels",
    "control": "--control", "controlnet": "--controlnet", "lora": "--lora", "loras": "--lora-here",
    "ip_adapter": "--ip-adapter",
    "image_encoder": "--image-encoder", "overwrite": "--overwrite", "allow_unsafe_pickle": "--allow-unsafe-pickle",
    "vae_tiling": "--vae-tiling", "vae_slicing": "--vae-slicing", "attention_slicing": "--attention-slicing",
    "config": "--config", "model": "--model", "spec": "--spec", "save_session": "--save-session",
    "auth": "--auth", "port": "--port", "queue_size": "--queue-size", "max_upload_mb": "--max-upload-mb",  # app
}
FALSE_FLAGS = {"check_memory": "--no-memory-check"}  # parameters whose flag turns them off
METHOD_FLAGS = {"Editor.load_controlnet()": "--controlnet", "Editor.load_ip_adapter()": "--ip-adapter",
                "Editor.load_lora()": "--lora"}  # the methods a flag calls
# `name=value` in a library message, a Python argument as a caller would write it; `Name(name=value, ...)` a call
_ARGUMENT = re.compile(r"\b([a-z][a-z0-9_]*)=('[^']*'|True|False|-?\d+(?:\.\d+)?)")
_CALL = re.compile(r"\b[A-Z]\w*\(([^()]*)\)")


def as_flag(error: InputError) -> str:
    """The error text in command-line terms: the parameter it is about as its flag (`num_inference_steps` ->
    `--steps`, `prompt_images[0]` -> `--prompt-image[0]`; parameters without a flag keep their name) and
    the arguments it suggests as flags (`overwrite=True` -> `--overwrite`)."""
    message = in_flags(error.message)
    return message if error.param is None else f"{renamed(error.param, PARAMETER_FLAGS)}: {message}"


def in_flags(text: str) -> str:
    """Every Python argument in a library message that a flag sets, written as that flag: `crop='auto'` ->
    `--crop auto`, `overwrite=True` -> `--overwrite`, `MemoryOptions(vae_tiling=True)` -> `--vae-tiling`,
    `Limits(check_memory=False)` -> `--no-memory-check`, `Editor.load_lora()` -> `--lora`."""

    def flag(name: str, value: str) -> str | None:
        if value == "False":
            return FALSE_FLAGS.get(name)
        if name not in PARAMETER_FLAGS:
            return None
        return PARAMETER_FLAGS[name] if value == "True" else f"{PARAMETER_FLAGS[name]} {value.strip(chr(39))}"

    def argument(match: re.Match) -> str:
        return flag(match[1], match[2]) or match[0]

    def call(match: re.Match) -> str:  # a call whose every argument is a flag: the flags alone
        arguments = [_ARGUMENT.fullmatch(part.strip()) for part in match[1].split(",")]
        flags = [flag(a[1], a[2]) if a is not None else None for a in arguments]
        return match[0] if None in flags else " ".join(flags)

    for method, flag_text in METHOD_FLAGS.items():
        text = text.replace(method, flag_text)
    return _ARGUMENT.sub(argument, _CALL.sub(call, text))


def as_flags(settings: dict[str, Any]) -> str:
    """Settings by name as the `pixels edit` flags that set them ("--steps 4 --guidance 0")."""
    return " ".join(f"{PARAMETER_FLAGS[k]} {v:g}" if isinstance(v, float) else f"{PARAMETER_FLAGS[k]} {v}"
                    for k, v in settings.items())


def renamed(param: str, names: dict[str, str]) -> str:
    """`param` with its first part (before any `[` or `.`) replaced by its entry in `names`, if it has one:
    ("prompt_images[0]", {"prompt_images": "--prompt-image"}) -> "--prompt-image[0]"."""
    root = re.split(r"[\[.]", param, maxsplit=1)[0]
    return names.get(root, root) + param[len(root):]


def add_model_flags(parser, *, default: str | None = None, model_help: str | None = None) -> None:
    """The flags that say which model to load and how, the same for every command that loads one: --model
    (required unless it has a `default`), --device, --dtype, --allow-unsafe-pickle and --offline."""
    parser.add_argument("--model", required=default is None, default=default,
                        metavar="ID|PATH" if default is None else f"{default}|ID|PATH",
                        help=model_help or "short name (pixels models), hub id, local diffusers folder or a single"
                                           " .safetensors checkpoint")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps", help="default auto")
    parser.add_argument("--dtype", default="auto", metavar="auto|fp32|fp16|bf16",
                        help="default auto: fp16 on GPUs (bf16 for SD3 and Flux), fp32 on the CPU")
    parser.add_argument("--allow-unsafe-pickle", action="store_true",
                        help="allow .ckpt/.bin pickle weights (they can run code: only for sources you trust)")
    parser.add_argument("--offline", action="store_true",
                        help="never contact the hub; use only local files and the cache (as HF_HUB_OFFLINE=1)")


def add_memory_flags(group) -> None:
    """The memory and speed options (`MemoryOptions`), the same for every command that loads a model."""
    group.add_argument("--attention-slicing", action="store_true", help="attention in slices (less memory)")
    group.add_argument("--vae-tiling", action="store_true", help="encode and decode large images in tiles")
    group.add_argument("--vae-slicing", action="store_true", help="encode and decode one image at a time")
    group.add_argument("--cpu-offload", choices=["model", "sequential"], default=None,
                       help="keep models on the CPU until they run (GPU only): model, or sequential (least memory)")
    group.add_argument("--channels-last", action="store_true", help="NHWC layout for the denoiser")
    group.add_argument("--compile", action="store_true", help="torch.compile the denoiser (slow first call)")


def memory_of(args: argparse.Namespace, device):
    """The `MemoryOptions` the memory flags give, checked for `device`."""
    from ..models.memory import MemoryOptions

    memory = MemoryOptions(attention_slicing=args.attention_slicing, vae_tiling=args.vae_tiling,
                           vae_slicing=args.vae_slicing, cpu_offload=args.cpu_offload,
                           channels_last=args.channels_last, compile=args.compile)
    memory.validate(device)
    return memory


def note(text: str) -> None:
    """A note on stderr; the Python arguments a library note suggests read as the flags that set them."""
    print(f"pixels: note: {in_flags(text)}", file=sys.stderr)


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


class Parser(argparse.ArgumentParser):
    """argparse, reading comma lists of numbers that start with a minus (`--crop -10,-10,100,100`) as values."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d*\.?\d+(,-?\d*\.?\d+)+$")


class Progress:
    """A denoising progress bar on a terminal; when disabled, the libraries' loading bars are silenced too."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None
        if not enabled:  # logs and CI: no bars at all
            import diffusers
            import huggingface_hub
            import transformers

            diffusers.utils.logging.disable_progress_bar()
            transformers.utils.logging.disable_progress_bar()
            huggingface_hub.utils.disable_progress_bars()

    def update(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="denoising", unit="step", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None  # the next edit gets a bar of its own
