"""An edit's peak memory, estimated before any model work, and the check that refuses what would not fit.

The memory estimate counts the activations that scale with the image, from the model's configuration:
the autoencoder's full-resolution layers (decode is the peak for large photos) and the denoiser's
feature maps at latent resolution (times the guidance batch). Weights are not counted: they are
loaded already, so they are not part of what the device has free. Attention is taken to be computed
without materialising the full attention matrix (PyTorch's fused attention on the CPU and on GPUs).
`benchmarks/bench_memory.py` compares the estimate with measured peaks.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import ResourceError

# Elements alive at once per full-resolution pixel and channel, and per latent cell and channel: set with
# benchmarks/bench_memory.py on the CPU so that the estimate matches the process's peak memory growth at
# 512 px (about 1.5x the live tensors, the rest being what the allocator holds): SD 1.5 and the demo model.
AUTOENCODER_FACTOR = 3.0
DENOISER_FACTOR = 4.5
GiB = 1024**3

if TYPE_CHECKING:
    import torch


def available_memory(device: torch.device) -> int | None:
    """Bytes free on `device` now, or None where it cannot be told (then nothing is refused)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def _config(module: Any) -> dict:
    config = getattr(module, "config", None)
    return dict(config) if config is not None else {}


def autoencoder_elements(autoencoder: Any, height: int, width: int, tiled: bool) -> float:
    """Elements alive at the autoencoder's peak (decoding a `height` x `width` frame)."""
    if autoencoder is None:
        return 0.0
    channels = list(_config(autoencoder).get("block_out_channels") or [128])
    full = channels[0] + (channels[1] if len(channels) > 1 else channels[0])  # the last up block and its input
    pixels = height * width
    if tiled:
        tile = int(getattr(autoencoder, "tile_sample_min_size", 512) or 512)
        pixels = min(pixels, tile * tile) + 2 * 3 * height * width / full  # one tile, plus the assembled image
    return AUTOENCODER_FACTOR * full * pixels


def denoiser_elements(denoiser: Any, cells: int, batch: int) -> float:
    """Elements alive in one call of the denoiser on `cells` latent positions, for a batch of `batch`."""
    config = _config(denoiser)
    if config.get("block_out_channels"):
        channels = list(config["block_out_channels"])
        layers = config.get("layers_per_block") or 2
        layers = max(layers) if isinstance(layers, (list, tuple)) else layers
        # the skip connections of every level are kept until the way up, plus the working tensors
        width = sum((layers + 1) * c / 4**level for level, c in enumerate(channels)) + channels[0]
    else:  # transformers: tokens of 2x2 latent cells, hidden size heads x head dim
        hidden = (config.get("num_attention_heads") or 24) * (config.get("attention_head_dim") or 64)
        patch = config.get("patch_size") or 2
        width = 4 * hidden / patch**2
    return DENOISER_FACTOR * batch * width * cells


def estimate_peak(adapter: Any, frame: tuple[int, int], batch: int, tiled: bool) -> int:
    """Bytes an edit of a padded `frame` (H, W) needs beyond the loaded weights, on the adapter's device."""
    import torch

    height, width = frame
    f = adapter.vae_scale_factor
    cells = (height // f) * (width // f)
    elements = max(autoencoder_elements(adapter.autoencoder, height, width, tiled),
                   denoiser_elements(adapter.denoiser, cells, batch))
    return int(elements * torch.finfo(adapter.dtype).bits // 8)


def cost_note(frame: tuple[int, int], native: int) -> str | None:
    """A warning when the diffused frame (H, W) is far beyond what the model was trained on: the run will
    be long (every step costs in proportion to the area) and the model works outside its training size."""
    trained = max(native, 512) ** 2
    area = frame[0] * frame[1]
    if area <= 4 * trained:
        return None
    return (f"this edit diffuses {frame[1]}x{frame[0]} pixels, {area / native ** 2:.0f}x the {native}x{native} the"
            " model was trained on: expect a long run, and Ctrl-C to take effect only between two model operations;"
            " crop='auto' diffuses only the edited area, with crop_resize='native' at the model's size")


def _gib(n: float) -> str:
    return f"{n / GiB:.1f} GiB"


def check_memory(adapter: Any, frame: tuple[int, int], batch: int, *, crop_frame: tuple[int, int] | None = None
                 ) -> None:
    """Refuse an edit of `batch` model inputs (2 per edit with guidance) whose estimated peak exceeds the free
    memory of the adapter's device, listing the options that would fit."""
    device = adapter.device
    tiled = bool(getattr(adapter.autoencoder, "use_tiling", False))
    free = available_memory(device)
    if free is None:
        return
    need = estimate_peak(adapter, frame, batch, tiled)
    if need <= free:
        return
    options = []
    if crop_frame is not None and (est := estimate_peak(adapter, crop_frame, batch, tiled)) <= free:
        options.append(f"crop='auto' (about {_gib(est)})")
    if not tiled and (est := estimate_peak(adapter, frame, batch, True)) <= free:
        options.append(f"MemoryOptions(vae_tiling=True) (about {_gib(est)})")
    scale = (free / need) ** 0.5 * 0.9
    side = (int(frame[1] * scale), int(frame[0] * scale))
    if min(side) >= 8:
        options.append(f"a source of at most {side[0]}x{side[1]} pixels")
    raise ResourceError(
        f"memory: this {frame[1]}x{frame[0]} edit needs about {_gib(need)} on {device.type} but {_gib(free)} is"
        f" free; options that would fit: {'; '.join(options) or 'a smaller source'}"
        " (or Limits(check_memory=False) to try anyway)"
    )
