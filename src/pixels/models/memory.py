"""Memory and speed options for large models, passed through to diffusers and PyTorch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError

OFFLOAD = (None, "model", "sequential")


@dataclass(frozen=True)
class MemoryOptions:
    """What to trade for memory (or speed). Every option is off by default.

    attention_slicing: compute attention in slices (less peak memory, a little slower).
    vae_tiling / vae_slicing: encode and decode large images tile by tile (tiles are blended, so the
        kept pixels stay exact only because pixels pastes them back from the source).
    cpu_offload: "model" keeps each whole model on the CPU until it runs; "sequential" moves one layer
        at a time (least memory, much slower). Needs an accelerator; the CPU path needs neither.
    channels_last: NHWC memory layout for the denoiser (faster convolutions on many GPUs).
    compile: `torch.compile` the denoiser (slow first call, faster afterwards).
    """

    attention_slicing: bool = False
    vae_tiling: bool = False
    vae_slicing: bool = False
    cpu_offload: str | None = None
    channels_last: bool = False
    compile: bool = False

    def validate(self, device: torch.device) -> None:
        if self.cpu_offload not in OFFLOAD:
            raise InputError(f"unknown value {self.cpu_offload!r}; choose model or sequential", param="cpu_offload")
        if self.cpu_offload is not None and torch.device(device).type == "cpu":
            raise InputError(
                f"{self.cpu_offload!r} offload moves models between the CPU and an accelerator, but"
                " this run is on the CPU already; drop the option or pick a GPU device", param="cpu_offload"
            )

    def load_device(self, device: torch.device) -> torch.device:
        """Where to load the weights: offloaded models start on the CPU."""
        return torch.device("cpu") if self.cpu_offload else device

    def apply(self, adapter, device: torch.device):
        """Switch the options on for a loaded model (an adapter: its pipeline, denoiser and autoencoder);
        returns it."""
        pipe, denoiser, vae = adapter.pipe, adapter.denoiser, adapter.autoencoder
        if self.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
            pipe.enable_attention_slicing()
        if self.vae_tiling and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        if self.vae_slicing and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
        if self.channels_last and denoiser is not None:
            denoiser.to(memory_format=torch.channels_last)
        if self.compile and denoiser is not None:
            denoiser.compile()
        if self.cpu_offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif self.cpu_offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        return adapter
