"""The LoRA, IP-Adapter and ControlNet flags of `pixels edit`, end to end, on a tiny random SD model.

    python examples/extensions_tiny.py [FOLDER]     # default: pixels-extensions/

It writes into FOLDER a tiny randomly initialised SD 1.x model, a LoRA, an IP-Adapter with its image
encoder and a ControlNet (the layouts of the real files, at test-suite sizes), two photos from
scikit-image, then runs and prints the `pixels edit` command that uses all three. The pictures mean
nothing (the weights are random); the command is the one to run with real weights, e.g.
`--model sd15 --ip-adapter h94/IP-Adapter:models/ip-adapter_sd15.safetensors
--controlnet lllyasviel/control_v11p_sd15_canny`.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from pixels.cli import main as pixels_main
from pixels.testing import tiny


def photos(folder: Path) -> tuple[Path, Path, Path]:
    from skimage import data

    source, exemplar, region = folder / "source.png", folder / "exemplar.png", folder / "region.png"
    Image.fromarray(data.astronaut()).resize((64, 64), Image.LANCZOS).save(source)
    Image.fromarray(data.coffee()).resize((32, 32), Image.LANCZOS).save(exemplar)
    m = np.zeros((64, 64), np.uint8)
    m[8:40, 24:56] = 255
    Image.fromarray(m).save(region)
    return source, exemplar, region


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "pixels-extensions")
    folder.mkdir(parents=True, exist_ok=True)
    pipe = tiny.build_sd(folder / "tokenizer")
    pipe.save_pretrained(folder / "model", safe_serialization=True)
    lora = tiny.write_lora(pipe, folder / "lora")
    controlnet = tiny.make_controlnet(pipe.unet)
    controlnet.save_pretrained(folder / "controlnet", safe_serialization=True)
    ip = tiny.write_ip_adapter(pipe.unet, folder / "ip-adapter")
    tiny.write_image_encoder(folder / "ip-adapter" / "image_encoder")
    source, exemplar, region = photos(folder)
    argv = ["edit", str(source), "--model", str(folder / "model"), "-o", str(folder / "edited.png"), "--overwrite",
            "-e", str(exemplar), "-m", str(region), "--condition", "0.6",
            "--lora", f"{lora}:0.8",
            "--ip-adapter", f"{ip.parent}:{ip.name}",  # its image encoder: the image_encoder folder beside it
            "--controlnet", str(folder / "controlnet"), "--control", "canny:0.7", "--control-end", "0.8",
            "--prompt", "a cup of coffee", "--steps", "10", "--seed", "1",
            "--save-session", str(folder / "session"), "--contact-sheet", str(folder / "sheet.png")]
    print("pixels " + " ".join(shlex.quote(a) for a in argv))
    return pixels_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
