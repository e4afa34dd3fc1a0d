"""What every subcommand shares: exit codes, notes on stderr, the progress bar, the argument parser, and
the one table that maps Python parameters to the flags that set them."""

from __future__ import annotations

import argparse
import re
import sys

from ..errors import InputError
from ..settings import SEED, flag_of, options

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_PARTIAL = 3  # pixels batch: some rows failed, the others are done
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143  # 128 + SIGINT, 128 + SIGTERM

# Python parameter -> the flag that sets it, so that library errors read in command-line terms
PARAMETER_FLAGS = {f.name: flag_of(f.name, option) for f, option in options()} | {
    "seed": SEED.flag, "strength_map": "--map", "prompt_images": "--prompt-image", "refiner": "--refiner",
    "device": "--device", "dtype": "--dtype", "cpu_offload": "--cpu-offload", "max_megapixels": "--max-megapixels",
    "control": "--control", "controlnet": "--controlnet", "lora": "--lora", "ip_adapter": "--ip-adapter",
    "image_encoder": "--image-encoder",
}


def as_flag(error: InputError) -> str:
    """The error text naming the command-line flag instead of the Python parameter it is about
    (`num_inference_steps` -> `--steps`, `prompt_images[0]` -> `--prompt-image[0]`); parameters without
    a flag of their own keep their name."""
    return str(error) if error.param is None else f"{renamed(error.param, PARAMETER_FLAGS)}: {error.message}"


def renamed(param: str, names: dict[str, str]) -> str:
    """`param` with its first part (before any `[` or `.`) replaced by its entry in `names`, if it has one:
    ("prompt_images[0]", {"prompt_images": "--prompt-image"}) -> "--prompt-image[0]"."""
    root = re.split(r"[\[.]", param, maxsplit=1)[0]
    return names.get(root, root) + param[len(root):]


def note(text: str) -> None:
    print(f"pixels: note: {text}", file=sys.stderr)


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
